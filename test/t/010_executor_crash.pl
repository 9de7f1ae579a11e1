# An executor killed with SIGKILL in the middle of an attempt.
#
# The postmaster answers a backend crash by restarting every backend, so
# the node goes through crash recovery.  Afterwards the interrupted attempt
# must be recorded as 'crashed', its work (rolled back with the crash) must
# not be visible, and the retry policy must run the job again to success.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'executor_crash',
	max_workers => 2,
	extra_conf => q{
# Cluster.pm turns this off; this test is about the restart after a crash.
restart_after_crash = on
# A claim must be durable when the handler starts.  With the WAL writer
# napping, a claim committed without waiting for its WAL flush would be lost
# in the crash every time, not only when the timing is unlucky.
wal_writer_delay = 10s
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint, attempt int);
-- Records its attempt, and only on attempt 1 sleeps long enough to be
-- killed, so that the retry completes quickly.
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    n int := (job_engine.context() ->> 'attempt')::int;
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(), n);
    IF n = 1 THEN
        PERFORM pg_sleep((a ->> 'sleep')::float8);
    END IF;
    RETURN jsonb_build_object('attempt', n);
END
$$;
SELECT job_engine.register_handler('h', 'h(jsonb)'::regprocedure,
                                   backoff_base => '100 ms');
});

my $job = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('h', '{"sleep": 20}')});
like($job, qr/^\d+$/, 'job submitted');

ok( $node->poll_query_until(
		'postgres', qq{
SELECT j.state = 'running' AND a.outcome = 'running' AND a.worker_pid IS NOT NULL
  FROM job_engine.jobs j
  JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = j.attempts
 WHERE j.id = $job}),
	'attempt 1 is running');

my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM job_engine.attempts WHERE job_id = $job AND attempt = 1");
like($pid, qr/^\d+$/, "attempt 1 runs in process $pid");
is( $node->safe_psql(
		'postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'job_engine executor',
	'that process is an executor');

my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, 'executor killed with SIGKILL');

# The postmaster restarts every backend; wait until it is back and serving.
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
ok($node->poll_query_until('postgres', 'SELECT true'),
	'server accepts connections after crash recovery');

# The claim of attempt 1 committed before the handler started, so the
# attempt survives the crash, attributed to the killed process, and is
# recovered as crashed (rather than vanishing and running again as a new
# attempt 1).
ok( $node->poll_query_until(
		'postgres', qq{
SELECT coalesce((SELECT outcome <> 'running' OR worker_pid <> $pid
                   FROM job_engine.attempts WHERE job_id = $job AND attempt = 1), true)}),
	'attempt 1 is no longer running in the killed process');
is( $node->safe_psql(
		'postgres',
		"SELECT worker_pid || ' ' || outcome FROM job_engine.attempts WHERE job_id = $job AND attempt = 1"
	),
	"$pid crashed",
	'attempt 1 is still attributed to the killed process, and recorded as crashed');

ok( $node->poll_query_until(
		'postgres',
		"SELECT state IN ('succeeded', 'failed', 'aborted') FROM job_engine.jobs WHERE id = $job"
	),
	'job reaches a terminal state after the crash');

is( $node->safe_psql(
		'postgres',
		"SELECT attempt || ':' || outcome FROM job_engine.attempts WHERE job_id = $job ORDER BY attempt"
	),
	"1:crashed\n2:succeeded",
	'attempt 1 crashed, attempt 2 succeeded');
is($node->safe_psql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $job"),
	'succeeded', 'job succeeded');
is($node->safe_psql('postgres', "SELECT attempts FROM job_engine.jobs WHERE id = $job"),
	'2', 'job took 2 attempts');
is( $node->safe_psql(
		'postgres', "SELECT message FROM job_engine.attempts WHERE job_id = $job AND attempt = 1"
	) ne '',
	1,
	'the crashed attempt carries a message');
like($node->safe_psql('postgres', "SELECT last_error FROM job_engine.jobs WHERE id = $job"),
	qr/^worker crashed: .+ \(attempt 1\)$/,
	'last_error reads "worker crashed: ... (attempt 1)", with no placeholder for the missing SQLSTATE');
is( $node->safe_psql(
		'postgres', "SELECT string_agg(job_id || ':' || attempt, ',') FROM effects"),
	"$job:2",
	'exactly one effect, from attempt 2 (attempt 1 rolled back with the crash)');
is( $node->safe_psql(
		'postgres', "SELECT result ->> 'attempt' FROM job_engine.jobs WHERE id = $job"),
	'2', 'result comes from attempt 2');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM job_engine.jobs WHERE state = 'running'"),
	'0',
	'no job left running');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM job_engine.attempts WHERE outcome = 'running'"),
	'0',
	'no attempt left running');

$node->stop;
done_testing();

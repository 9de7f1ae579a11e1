# A handler that terminates its own executor (FATAL) on every attempt.
#
# A FATAL exit is an orderly backend exit, not a crash, so the postmaster
# does not restart the server: the supervisor alone must notice that the
# executor went away, record the attempt as 'crashed', apply the retry
# policy and start a replacement executor.  After max_attempts the job must
# fail for good, while other jobs keep running.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('fatal_handler', max_workers => 2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint, attempt int);
CREATE FUNCTION suicide(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    PERFORM pg_terminate_backend(pg_backend_pid());
    -- The termination is processed at the next interrupt check.
    PERFORM pg_sleep(30);
    RETURN '{}';
END
$$;
CREATE FUNCTION fine(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('suicide', 'suicide(jsonb)'::regprocedure,
                                   max_attempts => 3, backoff_base => '50 ms');
SELECT job_engine.register_handler('fine', 'fine(jsonb)'::regprocedure);
});

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'"
	),
	'supervisor is running');
my $supervisor = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'");

my $log_offset = -s $node->logfile;

my $bad = $node->safe_psql('postgres', "SELECT job_engine.submit('suicide')");
my $first_good = $node->safe_psql('postgres',
	"SELECT min(id) FROM job_engine.submit_many('fine', array_fill('{}'::jsonb, ARRAY[10])) AS s(id)"
);

# Other jobs keep being served while the bad job goes through its attempts.
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) >= 1 FROM job_engine.attempts WHERE job_id = $bad AND outcome = 'crashed'"
	),
	'the bad job has crashed at least once');
my $more_good = $node->safe_psql('postgres',
	"SELECT min(id) FROM job_engine.submit_many('fine', array_fill('{}'::jsonb, ARRAY[10])) AS s(id)"
);

ok( $node->poll_query_until(
		'postgres',
		"SELECT state IN ('succeeded', 'failed', 'aborted') FROM job_engine.jobs WHERE id = $bad"
	),
	'the bad job reaches a terminal state');
is($node->safe_psql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $bad"),
	'failed', 'the bad job failed');
is($node->safe_psql('postgres', "SELECT attempts FROM job_engine.jobs WHERE id = $bad"),
	'3', 'after exactly max_attempts = 3 attempts');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) FROM job_engine.attempts WHERE job_id = $bad"
	),
	'1:crashed,2:crashed,3:crashed',
	'all three attempts are recorded as crashed');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM job_engine.attempts WHERE job_id = $bad AND finished_at IS NULL"),
	'0',
	'every crashed attempt has a finish time');
isnt($node->safe_psql('postgres', "SELECT last_error FROM job_engine.jobs WHERE id = $bad"),
	'', 'the job carries a last error');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects WHERE job_id = $bad"),
	'0', 'the crashed attempts left no effects');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 20 FROM job_engine.jobs WHERE id >= $first_good AND handler = 'fine' AND state = 'succeeded'"
	),
	'the other jobs all succeed');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM effects WHERE job_id >= $first_good"),
	'20',
	'each of them has its effect once');

# A job submitted after the failure runs too, which proves the executors
# went through claims since then; the failed job must not have run again.
my $last = $node->safe_psql('postgres', "SELECT job_engine.submit('fine')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $last"),
	'a job submitted later succeeds');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM job_engine.attempts WHERE job_id = $bad"),
	'3',
	'the failed job never runs again');

is( $node->safe_psql(
		'postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'"),
	$supervisor,
	'the same supervisor is still running');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'job_engine executor'"
	),
	'both executors are running again');

my $log = slurp_file($node->logfile, $log_offset);
unlike(
	$log,
	qr/terminating any other active server processes|all server processes terminated/,
	'no crash restart of the server');
like(
	$log,
	qr/terminating background worker "job_engine executor" due to administrator command/,
	'the executors exited through FATAL');

$node->stop;
done_testing();

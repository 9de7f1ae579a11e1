# No transaction of an ordinary role stalls the engine's own bookkeeping
# beyond a short, bounded wait (issue 12 §3, second bullet).
#
# alice and bob are ordinary roles; the node has two executors, so that
# alice's jobs can occupy all of them.  alice holds a transaction open in a
# background session while:
#
#  1. it submits a job depending on her two running jobs J1 (1 s) and J2
#     (60 s): J1's executor records J1 within 10 s, bob's job still runs,
#     and a superuser's abort(J2) returns within 5 s;
#  2. it aborts her own two running jobs (1 s each) without committing:
#     bob's job still runs within 15 s;
#  3. it has purged her finished jobs without committing, when the
#     supervisor purges per job_engine.retention (a supervisor restarted
#     here, which purges at once): the supervisor still recovers bob's
#     attempt whose executor was killed, within 15 s;
#  4. (alice as application admin, granted configure_queue) it reconfigures
#     a queue with a concurrency limit, whose row the claim locks: bob's job
#     in another queue still runs within 15 s.
#  5. Locks a plain role might take directly on the engine's tables are
#     refused (42501): they hold today; guarded here.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('bounded_waits', max_workers => 2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE FUNCTION nap(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(COALESCE((a ->> 's')::float8, 0));
    RETURN a;
END
$$;
SELECT job_engine.register_handler('nap', 'nap(jsonb)', max_attempts => 1);
GRANT EXECUTE ON FUNCTION job_engine.configure_queue TO alice;
});

# Submits a nap job as `role` and returns its id.
sub submit_as
{
	my ($role, $args) = @_;
	$args //= '';
	return $node->safe_psql('postgres',
		"SET ROLE $role; SELECT job_engine.submit('nap', $args)");
}

sub state_is
{
	my ($job, $states) = @_;
	return "SELECT state IN ($states) FROM job_engine.jobs WHERE id = $job";
}

sub within { return JobEngineBounds::within($node, 'postgres', @_); }

# Leaves no job running or waiting (alice's session is gone by then).
sub clear_jobs
{
	$node->safe_psql('postgres', q{
SELECT count(job_engine.abort(id, 'test cleanup')) FROM job_engine.jobs
 WHERE state IN ('created', 'running', 'retrying')});
	ok(defined within(30, "SELECT NOT EXISTS (SELECT FROM job_engine.workers WHERE state = 'busy')"),
		'cleanup: both executors are idle again');
}

###############################################################################
# 1. submit(depends_on) on running jobs, left uncommitted
###############################################################################

my $j1 = submit_as('alice', q{'{"s": 1}'});
my $j2 = submit_as('alice', q{'{"s": 60}'});
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($j1, $j2) AND state = 'running'"),
	'depends_on: alice\'s two jobs run');
my $alice = $node->background_psql('postgres');
$alice->query_safe(
	"SET ROLE alice; BEGIN; SELECT job_engine.submit('nap', depends_on => ARRAY[$j1, $j2]::bigint[])");
my $b1 = submit_as('bob', q{'{"s": 0}'});

ok(defined within(10, state_is($j1, "'succeeded'")),
	'depends_on held open: the executor records J1 within 10 s');
ok(defined within(15, state_is($b1, "'succeeded'")),
	'depends_on held open: bob\'s job still runs within 15 s');
my ($secs, $rc) = JobEngineBounds::timed(
	sub {
		return $node->psql('postgres',
			"SET statement_timeout = '8s'; SELECT job_engine.abort($j2, 'stop')");
	});
ok($rc == 0 && $secs < 5,
	sprintf('depends_on held open: a superuser\'s abort(J2) returns within 5 s (%.1f s, status %d)', $secs, $rc));

$alice->query_safe('ROLLBACK');
clear_jobs();

###############################################################################
# 2. abort() of running jobs, left uncommitted
###############################################################################

my $j3 = submit_as('alice', q{'{"s": 1}'});
my $j4 = submit_as('alice', q{'{"s": 1}'});
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($j3, $j4) AND state = 'running'"),
	'open abort: alice\'s two jobs run');
$alice->query_safe(
	"BEGIN; SELECT job_engine.abort($j3, 'maybe'); SELECT job_engine.abort($j4, 'maybe')");
my $b2 = submit_as('bob', q{'{"s": 0}'});
ok(defined within(15, state_is($b2, "'succeeded'")),
	'open abort: bob\'s job still runs within 15 s while alice\'s aborts of her running jobs are uncommitted');
$alice->query_safe('ROLLBACK');
clear_jobs();

###############################################################################
# 3. purge(), left uncommitted, against the supervisor's retention purge
###############################################################################

my $j5 = submit_as('alice', q{'{"s": 0}'});
ok(defined within(30, state_is($j5, "'succeeded'")), 'open purge: alice\'s job finished');
$alice->query_safe("BEGIN; SELECT job_engine.purge('0')");
$node->safe_psql('postgres', q{
ALTER SYSTEM SET job_engine.retention = 1;
SELECT pg_reload_conf();
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE backend_type = 'job_engine supervisor' AND datname = 'postgres';
});
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.workers WHERE database = 'postgres'"),
	'open purge: a new supervisor and its executors started');
my $b3 = submit_as('bob', q{'{"s": 60}'});
ok(defined within(30, state_is($b3, "'running'")), 'open purge: bob\'s job runs');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM job_engine.workers WHERE job_id = $b3");
ok(defined within(15, state_is($b3, "'failed', 'retrying', 'succeeded'")),
	'open purge: the supervisor recovers bob\'s attempt whose executor died, within 15 s');
$alice->query_safe('ROLLBACK');
$node->safe_psql('postgres', q{
ALTER SYSTEM RESET job_engine.retention;
SELECT pg_reload_conf();
});
clear_jobs();

###############################################################################
# 4. configure_queue() of a limited queue, left uncommitted
###############################################################################

$node->safe_psql('postgres', q{SELECT job_engine.configure_queue('limited', concurrency => 1)});
$node->safe_psql('postgres', q{SET ROLE bob;
SELECT job_engine.submit('nap', '{"s": 0}', queue => 'limited', run_at => now() + interval '2 seconds', priority => -1)});
$alice->query_safe("BEGIN; SELECT job_engine.configure_queue('limited', concurrency => 2)");
my $b4 = submit_as('bob', q{'{"s": 0}', run_at => now() + interval '3 seconds'});
ok(defined within(15, state_is($b4, "'succeeded'")),
	'open configure_queue: bob\'s job in another queue still runs within 15 s');
$alice->query_safe('ROLLBACK');
clear_jobs();

###############################################################################
# 5. direct locks on the engine's tables
###############################################################################

for my $stmt (
	'LOCK TABLE job_engine.queues IN ROW EXCLUSIVE MODE',
	'LOCK TABLE job_engine.handlers IN SHARE MODE',
	'LOCK TABLE job_engine.jobs IN SHARE MODE',
	'SELECT 1 FROM job_engine.jobs FOR SHARE',
	'SELECT 1 FROM job_engine.queues FOR UPDATE')
{
	my ($rc2, $out, $err) = $node->psql('postgres', "SET ROLE alice; BEGIN; $stmt; ROLLBACK;",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/42501/, "a plain role cannot take the lock: $stmt (42501)");
}

$alice->quit;
done_testing();

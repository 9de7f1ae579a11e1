# What pg_stat_activity shows of job_engine's processes
# (docs/monitoring.md, "In pg_stat_activity"):
#
#  a. An executor's usename is the owner it serves, here a NOLOGIN role,
#     while it runs that owner's job (not the bootstrap superuser its
#     connection started as); its backend_type and application_name say
#     what it is.
#  b. From PostgreSQL 17, each process waits on a named wait event of its
#     own (wait_event_type Extension): the launcher JobEngineLauncherMain,
#     a supervisor JobEngineSupervisorMain, an idle executor
#     JobEngineExecutorIdle.  Before 17 an extension cannot name its wait
#     events, and those tests are skipped.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('executor_activity', max_workers => 2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE app_user NOLOGIN;
CREATE FUNCTION public.nap(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(300);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('nap', 'public.nap(jsonb)'::regprocedure,
                                   max_attempts => 1, timeout => '10 min');
});

# -- a. usename -----------------------------------------------------------------
my $job = $node->safe_psql('postgres',
	q{SET ROLE app_user; SELECT job_engine.submit('nap')});
ok( $node->poll_query_until(
		'postgres', "SELECT EXISTS (SELECT FROM job_engine.workers WHERE job_id = $job)"),
	"app_user's job runs");
# The executor took its owner when it claimed the job, before it started it.
is( $node->safe_psql(
		'postgres', qq{
SELECT a.usename || ' / ' || a.backend_type || ' / ' || a.application_name
  FROM pg_stat_activity a JOIN job_engine.workers w USING (pid)
 WHERE w.job_id = $job}),
	'app_user / job_engine executor / job_engine executor',
	'the executor running it shows its owner as usename, and what it is');
is( $node->safe_psql(
		'postgres', qq{
SET ROLE app_user;
SELECT a.query IS NOT NULL AND a.query <> '<insufficient privilege>'
  FROM pg_stat_activity a
 WHERE a.pid = (SELECT pid FROM job_engine.workers WHERE job_id = $job)}),
	't', "the owner sees what its executor does, as it would see a session of its own");
is($node->safe_psql('postgres', "SELECT job_engine.abort($job, 'done')"),
	't', 'the job is aborted');

# -- b. wait events ---------------------------------------------------------------
SKIP:
{
	skip 'named wait events need PostgreSQL 17 or later (WaitEventExtensionNew); '
	  . 'before 17 every one shows as "Extension"', 3
	  if $node->safe_psql('postgres', 'SHOW server_version_num') < 170000;

	for my $case (
		[ 'job_engine launcher', 'JobEngineLauncherMain' ],
		[ 'job_engine supervisor', 'JobEngineSupervisorMain' ],
		[ 'job_engine executor', 'JobEngineExecutorIdle' ])
	{
		my ($type, $event) = @$case;
		# Each wakes now and then: polled until seen asleep.
		ok( $node->poll_query_until(
				'postgres', qq{
SELECT EXISTS (SELECT FROM pg_stat_activity
                WHERE backend_type = '$type' AND wait_event_type = 'Extension'
                  AND wait_event = '$event')}),
			"a $type waits on $event");
	}
}

done_testing();

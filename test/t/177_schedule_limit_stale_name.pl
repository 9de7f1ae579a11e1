# job_engine.max_schedules_per_role holds against a schedule() whose check
# of the name it schedules is stale (docs/reference.md, schedule): a name
# the role had when its transaction's snapshot was taken, unscheduled and
# committed since, is a new schedule, counted under the role's lock, not a
# replacement let through uncounted.  Under REPEATABLE READ the snapshot
# predates the unschedule(); in READ COMMITTED the name was looked up before
# the lock, while another call that adds a schedule held it.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('schedule_limit', pg_cron => 1);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION job_engine;
CREATE ROLE mallory LOGIN;
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('h', 'h(jsonb)');
ALTER ROLE mallory SET job_engine.max_schedules_per_role = 2;
CREATE FUNCTION sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
});

my $schedules = q{SELECT string_agg(jobname, ' ' ORDER BY jobname) FROM cron.job WHERE username = 'mallory'};
# A superuser sets the limit for the session, then becomes mallory.
my $as_mallory = q{SET job_engine.max_schedules_per_role = 2; SET ROLE mallory;};
$node->safe_psql('postgres',
	qq{$as_mallory SELECT job_engine.schedule('s1', '0 6 * * *', 'h'); SELECT job_engine.schedule('s2', '0 6 * * *', 'h')});
is($node->safe_psql('postgres', $schedules), 's1 s2', 'mallory is at her limit of 2');

# REPEATABLE READ: the snapshot still shows s1 when the call looks for it.
my $stale = $node->background_psql('postgres');
$stale->query_safe("$as_mallory BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
$node->safe_psql('postgres',
	qq{$as_mallory SELECT job_engine.unschedule('s1'); SELECT job_engine.schedule('s3', '0 6 * * *', 'h')});
is( $stale->query_safe(q{SELECT sqlstate_of($$SELECT job_engine.schedule('s1', '0 6 * * *', 'h')$$)}),
	'54000',
	'under REPEATABLE READ, scheduling again a name unscheduled since the snapshot is a new schedule: 54000');
$stale->query_safe('COMMIT');
is($node->safe_psql('postgres', $schedules), 's2 s3', '... and mallory still has 2 schedules');
# Back to s2 and s3 whatever happened above, for the next case.
$node->safe_psql('postgres',
	q{SELECT cron.unschedule(jobid) FROM cron.job WHERE username = 'mallory' AND jobname NOT IN ('s2', 's3')});

# READ COMMITTED: the name is found while an unschedule() of it is open;
# once that commits, the call inserts a new row.  A call adding another
# name meanwhile must count it.
my $unscheduler = $node->background_psql('postgres');
my $replacer = $node->background_psql('postgres');
my $adder = $node->background_psql('postgres');
my $replacer_pid = $replacer->query_safe('SELECT pg_backend_pid()');
my $adder_pid = $adder->query_safe('SELECT pg_backend_pid()');
$unscheduler->query_safe("$as_mallory BEGIN; SELECT job_engine.unschedule('s2')");
$replacer->query_until(qr/sent/, qq{$as_mallory BEGIN;
\\echo sent
SELECT sqlstate_of(\$\$SELECT job_engine.schedule('s2', '1 6 * * *', 'h')\$\$) AS s2;
});
ok( $node->poll_query_until(
		'postgres', qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $replacer_pid}),
	'scheduling s2 again waits for the open unschedule of s2');
$unscheduler->query_safe('COMMIT');
$adder->query_until(qr/sent/, qq{$as_mallory BEGIN;
\\echo sent
SELECT sqlstate_of(\$\$SELECT job_engine.schedule('s4', '0 6 * * *', 'h')\$\$) AS s4;
});
ok( $node->poll_query_until(
		'postgres', qq{
SELECT query LIKE '%''s4''%' AND (wait_event_type = 'Lock' OR state = 'idle in transaction')
  FROM pg_stat_activity WHERE pid = $adder_pid}),
	'a new schedule s4 is asked for while s2 is scheduled again');
$replacer->query_until(qr/committed/, "COMMIT;\n\\echo committed\n");
$adder->query_until(qr/committed/, "COMMIT;\n\\echo committed\n");
my $now = $node->safe_psql('postgres', $schedules);
ok($now eq 's2 s3' || $now eq 's3 s4', "mallory has 2 schedules, not 3 ($now)");

$stale->quit;
$unscheduler->quit;
$replacer->quit;
$adder->quit;
done_testing();

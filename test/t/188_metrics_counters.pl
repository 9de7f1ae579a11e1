# The counters of metrics() (docs/monitoring.md, "Counters") across the two
# events a pgTAP test cannot make: an executor that dies in the middle of
# an attempt, whose attempt crash recovery records crashed (counted as
# crashed, not failed), and a server restart, after which the counters
# start again from zero while the gauges, read from the table, do not.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('metrics_counters', max_workers => 2);

$node->safe_psql(
	'postgres', JobEngineNode::dies_once_handler_sql() . q{
CREATE EXTENSION job_engine;
SELECT job_engine.register_handler('dies_once', 'dies_once(jsonb)'::regprocedure,
                                   max_attempts => 2, backoff_base => '50 ms');
SELECT job_engine.configure_queue('parked');
SELECT job_engine.pause_queue('parked');
});

# The value of sample NAME{database="postgres"[,LABELS]} of metrics().
sub sample
{
	my ($name, $labels) = @_;
	my $prefix =
	  $name . '{database="postgres"' . (defined $labels ? ",$labels" : '') . '} ';
	return $node->safe_psql(
		'postgres', qq{
SELECT substring(l FROM ' (\\S+)\$')
  FROM regexp_split_to_table(job_engine.metrics(), E'\\n') AS l
 WHERE starts_with(l, '$prefix')});
}

my $job = $node->safe_psql('postgres', q{SELECT job_engine.submit('dies_once')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $job"),
	'the job whose first executor died succeeds at its second attempt');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(outcome::text, ',' ORDER BY attempt) FROM job_engine.attempts WHERE job_id = $job"),
	'crashed,succeeded',
	'its attempts are recorded crashed, then succeeded');
is( join(',',
		map { sample('job_engine_attempts_total', "outcome=\"$_\"") }
		  qw(crashed failed succeeded)),
	'1,0,1',
	'attempts_total: the attempt recovery recorded counts as crashed, not failed');
is( join(',',
		sample('job_engine_jobs_created_total'),
		sample('job_engine_jobs_finished_total', 'state="succeeded"'),
		sample('job_engine_job_duration_seconds_count')),
	'1,1,1',
	'one job created, one succeeded, one duration');

# A waiting job in a paused queue, then a restart.
$node->safe_psql('postgres',
	q{SELECT job_engine.submit('dies_once', queue => 'parked')});
is(sample('job_engine_jobs_created_total'), '2', 'two jobs created before the restart');
$node->restart;
is( join(',',
		sample('job_engine_jobs_created_total'),
		sample('job_engine_jobs_finished_total', 'state="succeeded"'),
		sample('job_engine_attempts_total', 'outcome="crashed"')),
	'0,0,0',
	'after a restart the counters start again from zero');
is( $node->safe_psql(
		'postgres', q{
SELECT substring(l FROM ' (\S+)$')
  FROM regexp_split_to_table(job_engine.metrics(), E'\n') AS l
 WHERE starts_with(l, 'job_engine_jobs{database="postgres",queue="parked",state="created"} ')}),
	'1',
	'the gauge of waiting jobs, read from the table, still counts the parked job');

$node->stop;
done_testing();

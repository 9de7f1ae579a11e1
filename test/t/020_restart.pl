# Server restarts while attempts are running: an immediate stop (no
# shutdown at all, like a power cut) and a clean fast restart.
#
# Either way, after the restart no job may stay 'running': each interrupted
# attempt is recorded as 'crashed' and retried, every job ends 'succeeded',
# and every job's effect is there exactly once (the interrupted attempts'
# writes were rolled back).
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $njobs = 20;

my $node = JobEngineNode::new_node('restart', max_workers => 2);

# The handler slow() records its effect and sleeps a['sleep'] seconds, capped
# by knobs.max_sleep.  The cap is read when the attempt starts: lowering it
# lets the jobs that are queued behind the interrupted ones drain quickly
# without shortening the attempts that are already running.
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint, attempt int);
}
	  . JobEngineNode::slow_handler_sql(2) . q{
SELECT job_engine.register_handler('slow', 'slow(jsonb)'::regprocedure,
                                   max_attempts => 5, backoff_base => '100 ms');
});

# Submits a batch of jobs, waits until both executors are inside an attempt,
# lets $restart interrupt them, then checks the outcome of the batch.
sub check_restart
{
	my ($name, $restart) = @_;

	$node->safe_psql('postgres', 'UPDATE knobs SET max_sleep = 2');
	my $first = $node->safe_psql(
		'postgres', qq{
SELECT min(id) FROM job_engine.submit_many('slow',
        array_fill('{"sleep": 2}'::jsonb, ARRAY[$njobs])) AS s(id)});
	my $batch = "id >= $first";

	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 2 FROM job_engine.jobs j
  JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = j.attempts
 WHERE j.$batch AND j.state = 'running' AND a.outcome = 'running'}),
		"$name: two attempts are running");
	my $running = $node->safe_psql(
		'postgres', qq{
SELECT string_agg(id::text, ',' ORDER BY id) FROM job_engine.jobs
 WHERE $batch AND state = 'running'});
	note "$name: interrupting jobs $running";

	# The running attempts keep sleeping; whatever runs next is quick.
	$node->safe_psql('postgres', 'UPDATE knobs SET max_sleep = 0');
	$restart->();

	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 0 FROM job_engine.jobs
 WHERE $batch AND state NOT IN ('succeeded', 'failed', 'aborted')}),
		"$name: every job reaches a terminal state");

	is( $node->safe_psql(
			'postgres', qq{
SELECT state || ' ' || count(*) FROM job_engine.jobs WHERE $batch GROUP BY state}),
		"succeeded $njobs",
		"$name: all $njobs jobs succeeded");
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM job_engine.jobs WHERE state = 'running'"),
		'0',
		"$name: no job stays running");
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM job_engine.attempts WHERE outcome = 'running'"),
		'0',
		"$name: no attempt stays running");
	is( $node->safe_psql(
			'postgres', qq{
SELECT string_agg(DISTINCT job_id::text, ',' ORDER BY job_id::text)
  FROM job_engine.attempts WHERE job_id >= $first AND outcome = 'crashed'}),
		join(',', sort split(/,/, $running)),
		"$name: the interrupted jobs have a crashed attempt");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch
   AND (SELECT count(*) FROM job_engine.attempts a
         WHERE a.job_id = j.id AND a.outcome = 'crashed')
       <> CASE WHEN j.id IN ($running) THEN 1 ELSE 0 END}),
		'0',
		"$name: only the interrupted attempts crashed, once each");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch AND j.id IN ($running)
   AND (j.attempts <> 2
        OR (SELECT string_agg(outcome::text, ',' ORDER BY attempt)
              FROM job_engine.attempts a WHERE a.job_id = j.id) <> 'crashed,succeeded')}),
		'0',
		"$name: each interrupted job crashed once, then succeeded on attempt 2");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch
   AND (SELECT count(*) FROM effects e WHERE e.job_id = j.id) <> 1}),
		'0',
		"$name: each job's effect is there exactly once");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM effects e JOIN job_engine.jobs j ON j.id = e.job_id
 WHERE j.$batch AND e.attempt <> j.attempts}),
		'0',
		"$name: every effect comes from the job's successful attempt");
	return;
}

check_restart(
	'immediate stop',
	sub {
		$node->stop('immediate');
		$node->start;
	});

check_restart('fast restart', sub { $node->restart; });

$node->stop;
done_testing();

# Too few background worker slots for every database's executors: the slots
# are shared out between the databases, one executor each before any gets a
# second (issue 16, "Silent misconfiguration"), and the shortage is said in
# the server log once a minute while it lasts and in job_engine.status().
#
# max_worker_processes = 6 holds the logical replication launcher, our
# launcher, the two supervisors and two executors, where 2 × 3 are
# configured.  Parallel query is off, so that no query of the test takes a
# slot.  postgres gets the extension first and takes both slots; once app
# has it too, postgres gives one up.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'slot_sharing',
	databases => 'postgres,app',
	max_workers => 3,
	max_worker_processes => 6,
	extra_conf => "max_parallel_workers = 0\n");

my $handler_sql = q{
CREATE EXTENSION job_engine;
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('h', 'h(jsonb)'::regprocedure);
};

sub executors
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{
SELECT count(*) FROM pg_stat_activity
 WHERE backend_type = 'job_engine executor' AND datname = '$db'});
}

sub job_runs
{
	my ($db, $name) = @_;
	return JobEngineNode::job_succeeds($node, $db, 'h', $name);
}

sub warnings_for
{
	my ($db) = @_;
	my $log = slurp_file($node->logfile);
	my @lines = ($log =~ /WARNING:  job_engine: database "$db" runs \d+ of its 3 executors/g);
	return scalar(@lines);
}

$node->safe_psql('postgres', 'CREATE DATABASE app');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'}),
	'both databases have their supervisor');

$node->safe_psql('postgres', $handler_sql);
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'job_engine executor'}),
	'postgres alone takes both free slots');
job_runs('postgres', 'postgres alone');

$node->safe_psql('app', $handler_sql);
ok( $node->poll_query_until(
		'postgres', q{
SELECT string_agg(datname || ':' || n, ',' ORDER BY datname)
  FROM (SELECT datname, count(*) AS n FROM pg_stat_activity
         WHERE backend_type = 'job_engine executor' GROUP BY datname) e},
		'app:1,postgres:1'),
	'once app has the extension, each database runs one executor');
job_runs('app', 'shared');
job_runs('postgres', 'shared');

is( $node->safe_psql('app',
		q{SELECT executors_running || ' of ' || executors_configured || ': ' || coalesce(problem, '') FROM job_engine.status()}),
	'1 of 3: 1 of 3 executors run: see the server log (max_worker_processes)',
	'status() in app shows the executors running and configured');

# Said at once, then again a minute later, for both databases: polled.
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
sleep(1)
  while (warnings_for('app') < 2 || warnings_for('postgres') < 2) && time() < $deadline;
cmp_ok(warnings_for('app'), '>=', 2, 'app: the shortage is said repeatedly');
cmp_ok(warnings_for('postgres'), '>=', 2, 'postgres: the shortage is said repeatedly');
is(executors('app') . ' ' . executors('postgres'), '1 1', 'the shares stay even meanwhile');
job_runs('app', 'later');

$node->stop;
done_testing();

# Our workers end quietly when they are asked to: DROP EXTENSION, DROP
# DATABASE (with and without FORCE), a database taken out of
# job_engine.databases, a restart and a smart stop leave no ERROR or FATAL
# line of job_engine's workers in the server log, and no "exited with exit
# code 1" line of theirs from the postmaster (issue 16, "Logs and psql").
# A launcher terminated by hand while the server runs is still restarted.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my @dbs = qw(postgres app gone forced);
my $node = JobEngineNode::new_node(
	'clean_exits',
	databases => join(',', @dbs),
	max_workers => 2);

my $handler_sql = q{
CREATE EXTENSION job_engine;
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('h', 'h(jsonb)'::regprocedure);
};
$node->safe_psql('postgres', "CREATE DATABASE $_") for grep { $_ ne 'postgres' } @dbs;
$node->safe_psql($_, $handler_sql) for @dbs;

sub job_runs
{
	my ($db, $name) = @_;
	return JobEngineNode::job_succeeds($node, $db, 'h', $name);
}

# Waits until the given databases have a supervisor and, where the extension
# is installed, both executors, and nothing else of ours runs.
sub workers_are
{
	my ($name, %executors) = @_;
	my $expected = join(',', map { "$_:1:$executors{$_}" } sort keys %executors);
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT coalesce(string_agg(datname || ':' || sup || ':' || exe, ',' ORDER BY datname), '')
  FROM (SELECT datname,
               count(*) FILTER (WHERE backend_type = 'job_engine supervisor') AS sup,
               count(*) FILTER (WHERE backend_type = 'job_engine executor') AS exe
          FROM pg_stat_activity WHERE backend_type LIKE 'job_engine %'
           AND backend_type <> 'job_engine launcher'
         GROUP BY datname) w},
			$expected),
		"$name: workers run as expected ($expected)");
	return;
}

# The lines of the server log since $offset that tell of our workers ending
# badly: an ERROR, FATAL or PANIC of theirs (their application_name is in
# the log line prefix, and the FATAL of a termination names them), or the
# postmaster saying one exited with a non-zero code.
sub trouble_since
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	return join("\n",
		grep { (/\b(?:ERROR|FATAL|PANIC):/ && /job_engine/) || /"job_engine [a-z]+" \(PID \d+\) exited with exit code [^0]/ }
		  split /\n/, $log);
}

workers_are('start', map { $_ => 2 } @dbs);
job_runs($_, 'start') for @dbs;

# --- DROP EXTENSION -----------------------------------------------------------

my $offset = -s $node->logfile;
$node->safe_psql('app', 'DROP EXTENSION job_engine');
workers_are('DROP EXTENSION', postgres => 2, app => 0, gone => 2, forced => 2);
job_runs('postgres', 'after DROP EXTENSION');
is(trouble_since($offset), '', 'DROP EXTENSION: no worker of ours ended badly');

# --- DROP DATABASE, without and with FORCE ------------------------------------

$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP DATABASE gone');
$node->safe_psql('postgres', 'DROP DATABASE forced WITH (FORCE)');
workers_are('DROP DATABASE', postgres => 2, app => 0);
job_runs('postgres', 'after DROP DATABASE');
is(trouble_since($offset), '', 'DROP DATABASE: no worker of ours ended badly');

# --- a database no longer listed: a reload, then the restart it needs ---------

$offset = -s $node->logfile;
$node->safe_psql('app', q{
CREATE EXTENSION job_engine;
SELECT job_engine.register_handler('h', 'h(jsonb)'::regprocedure);
});
workers_are('extension back in app', postgres => 2, app => 2);
$node->adjust_conf('postgresql.conf', 'job_engine.databases', "'postgres'");
$node->reload;
job_runs('app', 'after the reload');
$node->restart;
workers_are('restart without app', postgres => 2);
job_runs('postgres', 'after the restart');
is(trouble_since($offset), '', 'restart: no worker of ours ended badly');

# --- a smart stop -----------------------------------------------------------------

$offset = -s $node->logfile;
$node->stop('smart');
is(trouble_since($offset), '', 'smart stop: no worker of ours ended badly');
$node->start;
workers_are('started again', postgres => 2);

# --- terminated by hand, the launcher is restarted ---------------------------------

my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine launcher'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'job_engine launcher' AND pid <> $launcher}),
	'a launcher terminated while the server runs is restarted');
job_runs('postgres', 'after the launcher restarted');

$offset = -s $node->logfile;
$node->stop('fast');
is(trouble_since($offset), '', 'fast stop: no worker of ours ended badly');

done_testing();

# A database named in job_engine.databases through its whole life: it does
# not exist yet, is created, gets the extension, loses it, gets it back, and
# is dropped while our workers are connected to it.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = JobEngineNode::new_node(
	'database_lifecycle',
	databases => 'postgres,later_db',
	max_workers => 2);

my $handler_sql = q{
CREATE TABLE IF NOT EXISTS effects (job_id bigint, attempt int);
CREATE OR REPLACE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    RETURN jsonb_build_object('db', current_database());
END
$$;
SELECT job_engine.register_handler('h', 'h(jsonb)'::regprocedure);
};

$node->safe_psql('postgres', "CREATE EXTENSION job_engine; $handler_sql");

# Submits a job in $db and waits for it to succeed.
sub job_runs
{
	my ($db, $name) = @_;
	my $id = $node->safe_psql($db, "SELECT job_engine.submit('h')");
	ok( $node->poll_query_until(
			$db,
			"SELECT state IN ('succeeded', 'failed', 'aborted') FROM job_engine.jobs WHERE id = $id"
		),
		"$name: job $id in $db finishes");
	is($node->safe_psql($db, "SELECT state FROM job_engine.jobs WHERE id = $id"),
		'succeeded', "$name: job $id in $db succeeded");
	is($node->safe_psql($db, "SELECT count(*) FROM effects WHERE job_id = $id"),
		'1', "$name: its effect is there once");
	return;
}

# Our processes connected to $db, by type.
sub workers_in
{
	my ($db) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT backend_type || ' ' || count(*) FROM pg_stat_activity
 WHERE datname = '$db' AND backend_type LIKE 'job_engine %'
 GROUP BY backend_type ORDER BY backend_type});
}

# --- later_db does not exist yet ---------------------------------------------

# Let the launcher go through several rounds (it looks at its databases
# about once a second) while later_db is missing.
ok( $node->poll_query_until(
		'postgres', q{
SELECT now() - backend_start > interval '3 seconds' FROM pg_stat_activity
 WHERE backend_type = 'job_engine launcher'}),
	'launcher has been running for a few seconds');
job_runs('postgres', 'missing later_db');
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine launcher'");

my $log = slurp_file($node->logfile);
unlike($log, qr/FATAL:.*later_db/, 'no FATAL about the missing database');
unlike($log, qr/(ERROR|FATAL|PANIC):/, 'no errors at all in the server log');
unlike(
	$log,
	qr/background worker "job_engine [a-z]+" \(PID \d+\) exited with exit code [^0]/,
	'no worker of ours exited with an error');

# --- later_db is created, then gets the extension ----------------------------

$node->safe_psql('postgres', 'CREATE DATABASE later_db');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE datname = 'later_db' AND backend_type = 'job_engine supervisor'}),
	'a supervisor serves later_db once it exists');
is(workers_in('later_db'), 'job_engine supervisor 1',
	'without the extension, no executors run in later_db');

$node->safe_psql('later_db', "CREATE EXTENSION job_engine; $handler_sql");
job_runs('later_db', 'extension created');

# --- DROP EXTENSION, then CREATE EXTENSION again -----------------------------

ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 2 FROM pg_stat_activity
 WHERE datname = 'later_db' AND backend_type = 'job_engine executor'}),
	'two executors serve later_db');
$node->safe_psql('later_db', 'DROP EXTENSION job_engine');
pass('DROP EXTENSION job_engine succeeds');
is( $node->safe_psql(
		'later_db', q{
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'job_engine'}),
	'0',
	'the tables and views of job_engine are gone');
# Job ids start over with the new extension.
$node->safe_psql('later_db', 'TRUNCATE effects');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 0 FROM pg_stat_activity
 WHERE datname = 'later_db' AND backend_type = 'job_engine executor'}),
	'executors of later_db stop after the extension is dropped');
is(workers_in('later_db'), 'job_engine supervisor 1',
	'the supervisor waits for the extension');

$node->safe_psql('later_db', "CREATE EXTENSION job_engine; $handler_sql");
pass('CREATE EXTENSION job_engine succeeds again');
job_runs('later_db', 'extension re-created');

# --- DROP DATABASE while our workers are connected ---------------------------

ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 3 FROM pg_stat_activity
 WHERE datname = 'later_db' AND backend_type LIKE 'job_engine %'}),
	'supervisor and two executors are connected to later_db');
my $log_offset = -s $node->logfile;
my $t0 = time();
my ($rc, $stdout, $stderr) =
  $node->psql('postgres', 'DROP DATABASE later_db', timeout => 60);
my $elapsed = time() - $t0;
is($rc, 0, 'DROP DATABASE later_db (without FORCE) succeeds')
  or diag $stderr;
cmp_ok($elapsed, '<', 5, sprintf('... within a few seconds (%.2f s)', $elapsed));
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM pg_database WHERE datname = 'later_db'"),
	'0',
	'later_db is gone');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_stat_activity
 WHERE datname = 'later_db'}),
	'0',
	'nothing of ours is left in later_db');

# Jobs of the other database are not disturbed, and the launcher waits for
# later_db quietly again.
job_runs('postgres', 'after DROP DATABASE');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'job_engine supervisor' AND datname = 'postgres'}),
	'the supervisor of postgres still runs');

# --- later_db comes back ------------------------------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE later_db');
$node->safe_psql('later_db', "CREATE EXTENSION job_engine; $handler_sql");
job_runs('later_db', 'database re-created');

$log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/FATAL:.*later_db/, 'no FATAL about later_db after the drop');
# Our workers in later_db were asked to stop (SIGTERM) while idle: they left
# quietly, with no FATAL and exit code 0 (test/t/197_clean_exits.pl).
my @bad = ($log =~ /^.*\b(?:ERROR|FATAL|PANIC):.*$/mg);
is(join("\n", @bad), '', 'no errors in the server log since the DROP DATABASE');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'job_engine launcher'"),
	$launcher,
	'the same launcher has been running all along');

$node->stop;
done_testing();

# Settings are read as they are written (docs/reference.md, Settings).
#
# job_engine.databases names databases as pg_database spells them: a name
# with capitals is served, a name listed twice is served once.  A listed
# database that cannot be served (it does not exist, differs only in case
# from the one that does, does not allow connections, or is invalid) is
# waited for quietly, said once in the server log, and served as soon as it
# can be.  A database that stops allowing connections while served keeps
# its running executors and starts no new ones, without a restart loop.
# An invalid value or an unknown name of a job_engine setting stops the
# server from starting, as for PostgreSQL's own settings, and the lack of
# background worker slots is said once.  schedule() says in a NOTICE that
# pg_cron reads the cron expression in another time zone than the
# session's, and in a WARNING that pg_cron cannot connect to run it.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $handler_sql = q{
CREATE TABLE effects (job_id bigint);
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id());
    RETURN jsonb_build_object('db', current_database());
END
$$;
SELECT job_engine.register_handler('h', 'h(jsonb)');
};

# poll_until(CODE): calls CODE every 0.1 s until it returns true, for at
# most the tests' default timeout; returns whether it did.  Unlike
# wait_for_log, a miss fails one test instead of ending the file.
sub poll_until
{
	my ($code) = @_;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		return 1 if $code->();
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# How many times the server log of $node matches $re after $offset.
sub log_count
{
	my ($node, $re, $offset) = @_;
	my @hits = (slurp_file($node->logfile, $offset) =~ /$re/g);
	return scalar @hits;
}

# Waits until the server log has $re after $offset.
sub logged
{
	my ($node, $re, $offset) = @_;
	return poll_until(sub { log_count($node, $re, $offset) > 0 });
}

# Waits until $seconds have passed on the server's clock, so that a worker
# that would repeat a message once a second has had the time to.
sub let_seconds_pass
{
	my ($node, $seconds) = @_;
	my $start = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	return $node->poll_query_until('postgres',
		"SELECT clock_timestamp() > '$start'::timestamptz + interval '$seconds s'");
}

# Our processes of type $type ('supervisor', 'executor') connected to $db.
sub workers
{
	my ($node, $type, $db) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM pg_stat_activity
 WHERE backend_type = 'job_engine $type' AND datname = '$db'});
}

# Submits a job in $db and waits for it to succeed.
sub job_runs
{
	my ($node, $db, $name) = @_;
	my $id = $node->safe_psql($db, "SELECT job_engine.submit('h')");
	ok( poll_until(
			sub {
				$node->safe_psql($db, "SELECT state FROM job_engine.jobs WHERE id = $id") eq
				  'succeeded';
			}),
		"$name: job $id in $db succeeds");
	return;
}

###############################################################################
# job_engine.databases
###############################################################################

my $node = JobEngineNode::new_node('configuration', pg_cron => 1, max_workers => 1);

# The databases exist before they are listed: then nothing races the
# launcher while they are prepared.  broken is made invalid the way an
# interrupted DROP DATABASE leaves a database.
$node->safe_psql(
	'postgres', q{
CREATE DATABASE "MyApp";
CREATE DATABASE other;
CREATE DATABASE noconn ALLOW_CONNECTIONS false;
CREATE DATABASE broken;
CREATE DATABASE app;
CREATE DATABASE unlisted;
UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'broken';
});
for my $db ('postgres', 'MyApp', 'app')
{
	$node->safe_psql($db, "CREATE EXTENSION job_engine; $handler_sql");
}

$node->adjust_conf('postgresql.conf', 'job_engine.databases',
	q{'postgres,MyApp,postgres,nosuch,Other,noconn,broken,app'});
my $log_offset = -s $node->logfile;
$node->restart;

# --- a name with capitals ----------------------------------------------------

job_runs($node, 'MyApp', 'MyApp listed as written');

# --- listed databases that cannot be served ----------------------------------

ok(logged($node, qr/LOG:  job_engine: database "nosuch" does not exist/, $log_offset),
	'a listed database that does not exist is logged');
ok( logged(
		$node,
		qr/WARNING:  job_engine: database "Other" does not exist\n.*DETAIL:  .*"other" differs only in case/,
		$log_offset),
	'a listed name that differs from a database only in case is a WARNING naming that database');
ok( logged(
		$node, qr/LOG:  job_engine: database "noconn" does not allow connections/,
		$log_offset),
	'a listed database that does not allow connections is logged');
ok(logged($node, qr/WARNING:  job_engine: database "broken" is invalid/, $log_offset),
	'a listed invalid database is a WARNING');
let_seconds_pass($node, 3);
for my $db ('nosuch', 'Other', 'noconn', 'broken')
{
	is(log_count($node, qr/job_engine: database "$db" /, $log_offset),
		1, "$db is logged once, not every second");
}
is(log_count($node, qr/FATAL:  .*"(noconn|broken)"/, $log_offset),
	0, 'no supervisor tries to connect to noconn or broken');
is(workers($node, 'supervisor', 'postgres'), 1,
	'postgres, listed twice, has one supervisor');

$node->safe_psql('postgres', 'ALTER DATABASE noconn ALLOW_CONNECTIONS true');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor' AND datname = 'noconn'"),
	'noconn is served once it allows connections');
$node->safe_psql('postgres',
	"UPDATE pg_database SET datconnlimit = -1 WHERE datname = 'broken'");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor' AND datname = 'broken'"),
	'broken is served once it is valid');

# --- a served database stops allowing connections ----------------------------

job_runs($node, 'app', 'app served');
$log_offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
ALTER DATABASE app ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE backend_type = 'job_engine executor' AND datname = 'app';
});
ok( logged(
		$node,
		qr/LOG:  job_engine: database "app" does not allow connections, starting no executors/,
		$log_offset),
	'the supervisor says that it starts no executors in app');
let_seconds_pass($node, 3);
is(log_count($node, qr/FATAL:  .*"app"/, $log_offset),
	0, 'no executor tries to connect to app meanwhile');
is(log_count($node, qr/job_engine: database "app" does not allow connections/, $log_offset),
	1, '... which is said once');
is(workers($node, 'supervisor', 'app'), 1, 'the supervisor of app stays');
$node->safe_psql('postgres', 'ALTER DATABASE app ALLOW_CONNECTIONS true');
job_runs($node, 'app', 'connections allowed again');

# --- a database that is not listed -------------------------------------------

my ($rc, $stdout, $stderr) = $node->psql('unlisted', 'CREATE EXTENSION job_engine');
is($rc, 0, 'CREATE EXTENSION job_engine in a database that is not listed succeeds');
like(
	$stderr,
	qr/WARNING:  job_engine does not serve database "unlisted"/,
	'... with a WARNING that its jobs will not run');
($rc, $stdout, $stderr) = $node->psql('MyApp', 'DROP EXTENSION job_engine CASCADE; CREATE EXTENSION job_engine');
unlike($stderr, qr/does not serve/, 'CREATE EXTENSION in a served database says nothing');

# --- list syntax of ALTER SYSTEM ----------------------------------------------

($rc, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET job_engine.databases = 'postgres', 'MyApp'});
is($rc, 0, 'ALTER SYSTEM SET job_engine.databases takes a list of names')
  or diag $stderr;
like(slurp_file($node->data_dir . '/postgresql.auto.conf'),
	qr/job_engine.databases = 'postgres, MyApp'/, '... and keeps them as written');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET job_engine.databases');

###############################################################################
# job_engine.log_failures takes the levels of auto_explain.log_level
###############################################################################

for my $level ('debug5', 'debug1', 'DEBUG2')
{
	($rc, $stdout, $stderr) = $node->psql('postgres',
		"ALTER SYSTEM SET job_engine.log_failures = '$level'");
	is($rc, 0, "log_failures accepts $level") or diag $stderr;
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET job_engine.log_failures');

###############################################################################
# schedule() and pg_cron's time zone
###############################################################################

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
($rc, $stdout, $stderr) = $node->psql('postgres',
	q{SET TimeZone = 'Asia/Kolkata'; SELECT job_engine.schedule('kolkata', '0 9 * * *', 'h')});
is($rc, 0, 'schedule() in a session in Asia/Kolkata succeeds') or diag $stderr;
like(
	$stderr,
	qr/NOTICE:  pg_cron reads the cron expression "0 9 \* \* \*" in time zone GMT, not in Asia\/Kolkata/,
	'... with a NOTICE that pg_cron reads the expression in GMT');
like($stderr, qr/DETAIL:  Asia\/Kolkata is 05:30:00 ahead of GMT/, '... and the offset');
# The node listens on a Unix socket only and pg_cron uses no background
# workers: no run could connect, which schedule() says at once.
like(
	$stderr,
	qr/WARNING:  pg_cron cannot connect to this server to run the schedule\n.*\nHINT:  Set cron\.use_background_workers = on/s,
	'... and a WARNING that pg_cron could not connect to run it');
($rc, $stdout, $stderr) = $node->psql('postgres',
	q{SET TimeZone = 'UTC'; SELECT job_engine.schedule('utc', '0 9 * * *', 'h')});
is($rc, 0, 'schedule() in a session in UTC succeeds') or diag $stderr;
unlike($stderr, qr/NOTICE/, '... without a NOTICE');

$node->stop;

###############################################################################
# Invalid settings stop the server from starting
###############################################################################

my $refused = JobEngineNode::new_node('refused');
$refused->stop;

# $name: the server does not start with these lines in postgresql.conf, and
# its log says why ($why).
sub refuses_to_start
{
	my ($name, $lines, $why) = @_;
	my $offset = -s $refused->logfile;
	$refused->append_conf('postgresql.conf', $lines);
	my $started = $refused->start(fail_ok => 1);
	ok(!$started, "$name: the server does not start");
	like(slurp_file($refused->logfile, $offset), $why, "$name: the log says why");
	$refused->stop if $started;
	return;
}

refuses_to_start(
	'a trailing comma in job_engine.databases',
	"job_engine.databases = 'postgres,'\n",
	qr/FATAL:  invalid value for parameter "job_engine.databases": "postgres,"/);
$refused->adjust_conf('postgresql.conf', 'job_engine.databases', q{'postgres'});
refuses_to_start(
	'job_engine.max_workers out of range',
	"job_engine.max_workers = 100\n",
	qr/FATAL:  100 is outside the valid range for parameter "job_engine.max_workers"/);
$refused->adjust_conf('postgresql.conf', 'job_engine.max_workers', undef);
refuses_to_start(
	'a misspelt job_engine setting',
	"job_engine.databse = 'app'\n",
	qr/FATAL:  unrecognized configuration parameter "job_engine.databse"/);
$refused->adjust_conf('postgresql.conf', 'job_engine.databse', undef);

###############################################################################
# Too few background worker slots are said once
###############################################################################

# The launcher and the logical replication launcher take both slots.
$refused->adjust_conf('postgresql.conf', 'max_worker_processes', 2);
my $offset = -s $refused->logfile;
ok($refused->start(fail_ok => 1), 'with valid settings the server starts');
ok( logged(
		$refused, qr/WARNING:  job_engine: could not start supervisor for database "postgres"/,
		$offset),
	'a supervisor without a worker slot is a WARNING');
let_seconds_pass($refused, 3);
is(log_count($refused, qr/could not start supervisor/, $offset),
	1, '... said once, not every second');
$refused->stop;

done_testing();

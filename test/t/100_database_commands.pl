# The database commands that need a database to themselves, run while
# job_engine's workers are connected to it: DROP DATABASE, CREATE DATABASE
# ... TEMPLATE, ALTER DATABASE ... RENAME TO and ALTER DATABASE ... SET
# TABLESPACE (every caller of CountOtherDBBackends in PostgreSQL 15's
# dbcommands.c).
#
#  1. A command that PostgreSQL refuses (not the owner, no CREATEDB, inside a
#     transaction block or a function, the current database, a template,
#     a subscription, a name taken...) leaves the workers alone: the
#     supervisor keeps its pid and a running attempt goes on.  alice and
#     carol are plain login roles (carol with CREATEDB); dave owns app.
#  2. A DROP DATABASE cancelled while it waits for the workers to leave, or
#     failing later, does not leave the engine down: the workers come back.
#  3. The commands allowed to the caller succeed: the workers step aside and
#     come back when the command is done (or rolled back).  A renamed
#     database is not served; a warning says so once.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'database_commands',
	databases => 'postgres,app,doomed',
	max_workers => 2);

# Seconds within which the workers must be back after a command; the
# launcher looks at its databases about once a second.
my $back_within = 20;

my $schema_sql = q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint, attempt int);
} . JobEngineNode::slow_handler_sql(600) . q{
SELECT job_engine.register_handler('slow', 'slow(jsonb)'::regprocedure);
};

$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE carol LOGIN CREATEDB;
CREATE ROLE dave LOGIN CREATEDB;
CREATE DATABASE other;
CREATE DATABASE app OWNER dave;
});
my $ts_dir = PostgreSQL::Test::Utils::tempdir();
$node->safe_psql('postgres', "CREATE TABLESPACE ts LOCATION '$ts_dir'");
$node->safe_psql('postgres', $schema_sql);
$node->safe_psql('app', $schema_sql);

# Runs $query in $db as $user (a login of its own, not SET ROLE); returns
# "SQLSTATE: message" of the first error, or "ok".  Notices and warnings
# are appended to @$messages when given.
sub run_as
{
	my ($user, $db, $query, $messages) = @_;
	my ($out, $err) = ('', '');
	$node->psql(
		$db, "\\set VERBOSITY verbose\n$query",
		connstr => $node->connstr($db) . " user=$user",
		stdout => \$out,
		stderr => \$err,
		timeout => $PostgreSQL::Test::Utils::timeout_default);
	push @$messages, $err if $messages;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+([^\n]*)/ ? "$1: $2" : 'ok';
}

# Polls until $query in $db returns 't', for at most $seconds.
sub within
{
	my ($seconds, $db, $query) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		return 1 if $node->safe_psql($db, $query) eq 't';
		usleep(100_000);
	}
	diag "not within $seconds s: $query";
	return 0;
}

my $serving_sql = q{
SELECT count(*) FILTER (WHERE backend_type = 'job_engine supervisor') = 1
   AND count(*) FILTER (WHERE backend_type = 'job_engine executor') = 2
  FROM pg_stat_activity WHERE datname = current_database()};

# The engine serves $db: its supervisor and both executors are connected
# and a new job runs there.
sub serves
{
	my ($db, $name) = @_;
	ok(within($back_within, $db, $serving_sql),
		"$name: supervisor and executors of $db are back");
	$node->safe_psql($db, 'UPDATE knobs SET max_sleep = 0');
	my $id = $node->safe_psql($db, q{SELECT job_engine.submit('slow', '{"sleep": 0}')});
	ok( within(
			$back_within, $db,
			"SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
		"$name: a new job in $db succeeds");
	return;
}

# Our processes connected to $db (empty when none).
sub workers_in
{
	my ($db) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity
 WHERE datname = '$db' AND backend_type LIKE 'job_engine %'});
}

# A job sleeping for ten minutes in $db, once its attempt runs.
sub long_job
{
	my ($db) = @_;
	$node->safe_psql($db, 'UPDATE knobs SET max_sleep = 600');
	my $id = $node->safe_psql($db, q{SELECT job_engine.submit('slow', '{"sleep": 600}')});
	ok( within(
			$PostgreSQL::Test::Utils::timeout_default, $db,
			"SELECT state = 'running' FROM job_engine.jobs WHERE id = $id"),
		"long job $id runs in $db");
	return $id;
}

# What must not change while PostgreSQL refuses a command: the supervisor
# of $db and the attempt running the long job.
sub engine_state
{
	my ($db, $job) = @_;
	return $node->safe_psql(
		$db, qq{
SELECT 'supervisor ' || coalesce((SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                                   WHERE datname = current_database()
                                     AND backend_type = 'job_engine supervisor'), 'none')
       || ', attempt ' || a.attempt || ' ' || a.outcome || ' in ' || a.worker_pid
  FROM job_engine.attempts a WHERE a.job_id = $job ORDER BY a.attempt DESC LIMIT 1});
}

# --- 1. refused commands leave the workers alone -----------------------------

ok(within($PostgreSQL::Test::Utils::timeout_default, $_, $serving_sql),
	"the engine serves $_")
  for qw(postgres app);
ok( within(
		$PostgreSQL::Test::Utils::timeout_default, 'postgres', q{
SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'doomed'}),
	'doomed does not exist yet');
my %long = (postgres => long_job('postgres'), app => long_job('app'));
my %state = map { $_ => engine_state($_, $long{$_}) } qw(postgres app);
like($state{$_}, qr/^supervisor \d+, attempt 1 running in \d+$/,
	"$_: supervisor and running attempt noted")
  for qw(postgres app);

# [target database, role, database connected to, command, expected error]
my @refused = (
	# DROP DATABASE
	[ 'postgres', 'alice', 'other', 'DROP DATABASE postgres', qr/^42501: must be owner of database postgres/ ],
	[ 'app', 'alice', 'other', 'DROP DATABASE app', qr/^42501: must be owner/ ],
	[ 'app', 'alice', 'other', 'DROP DATABASE app WITH (FORCE)', qr/^42501: must be owner/ ],
	[ 'app', 'carol', 'other', 'DROP DATABASE app', qr/^42501: must be owner/ ],
	[ 'app', 'postgres', 'other', "BEGIN;\nDROP DATABASE app;", qr/^25001: DROP DATABASE cannot run inside a transaction block/ ],
	[ 'app', 'dave', 'other', "BEGIN;\nDROP DATABASE app WITH (FORCE);", qr/^25001:/ ],
	[ 'app', 'postgres', 'other', q{DO $$BEGIN EXECUTE 'DROP DATABASE app'; END$$}, qr/^25001: DROP DATABASE cannot be executed from a function/ ],
	[ 'app', 'dave', 'app', 'DROP DATABASE app', qr/^55006: cannot drop the currently open database/ ],
	[ 'app', 'postgres', 'other', "ALTER DATABASE app IS_TEMPLATE true;\nDROP DATABASE app;", qr/^42809: cannot drop a template database/ ],
	[ 'app', 'postgres', 'other', 'DROP DATABASE app', qr/^55006: database "app" is being used by logical replication subscription/, 'subscription' ],
	# CREATE DATABASE ... TEMPLATE
	[ 'app', 'alice', 'other', 'CREATE DATABASE copy TEMPLATE app', qr/^42501: permission denied to create database/ ],
	[ 'app', 'carol', 'other', 'CREATE DATABASE copy TEMPLATE app', qr/^42501: permission denied to copy database "app"/ ],
	# (PostgreSQL 16 on: "must be able to SET ROLE")
	[ 'app', 'dave', 'other', 'CREATE DATABASE copy TEMPLATE app OWNER alice', qr/^42501: must be (?:member of role|able to SET ROLE) "alice"/ ],
	[ 'app', 'dave', 'other', "BEGIN;\nCREATE DATABASE copy TEMPLATE app;", qr/^25001: CREATE DATABASE cannot run inside a transaction block/ ],
	[ 'app', 'dave', 'other', 'CREATE DATABASE other TEMPLATE app', qr/^42P04: database "other" already exists/ ],
	[ 'app', 'dave', 'other', 'CREATE DATABASE copy TEMPLATE app TABLESPACE ts', qr/^42501: permission denied for tablespace ts/ ],
	# ALTER DATABASE ... RENAME TO
	[ 'app', 'alice', 'other', 'ALTER DATABASE app RENAME TO app2', qr/^42501: must be owner/ ],
	[ 'app', 'dave', 'app', 'ALTER DATABASE app RENAME TO app2', qr/^0A000: current database cannot be renamed/ ],
	[ 'app', 'dave', 'other', 'ALTER DATABASE app RENAME TO other', qr/^42P04: database "other" already exists/ ],
	[ 'app', 'postgres', 'other', "ALTER ROLE dave NOCREATEDB;\nSET ROLE dave;\nALTER DATABASE app RENAME TO app2;", qr/^42501: permission denied to rename database/ ],
	# ALTER DATABASE ... SET TABLESPACE
	[ 'app', 'alice', 'other', 'ALTER DATABASE app SET TABLESPACE ts', qr/^42501: must be owner/ ],
	[ 'app', 'dave', 'other', 'ALTER DATABASE app SET TABLESPACE ts', qr/^42501: permission denied for tablespace ts/ ],
	[ 'app', 'postgres', 'app', 'ALTER DATABASE app SET TABLESPACE ts', qr/^55006: cannot change the tablespace of the currently open database/ ],
	[ 'app', 'postgres', 'other', "BEGIN;\nALTER DATABASE app SET TABLESPACE ts;", qr/^25001: ALTER DATABASE SET TABLESPACE cannot run inside a transaction block/ ],
	[ 'app', 'postgres', 'other', 'ALTER DATABASE app SET TABLESPACE pg_default', qr/^ok$/ ],
	[ 'app', 'postgres', 'other', 'ALTER DATABASE app SET TABLESPACE pg_global', qr/^22023: pg_global cannot be used as default tablespace/ ],
);

for my $case (@refused)
{
	my ($db, $role, $from, $sql, $expected, $setup) = @$case;
	my $name = "$role in $from: " . ($sql =~ s/\n/ /gr);
	if (($setup // '') eq 'subscription')
	{
		# A subscription that never connects: dropdb refuses its database.
		$node->safe_psql('app',
			"CREATE SUBSCRIPTION sub CONNECTION 'dbname=nowhere' PUBLICATION p WITH (connect = false)");
		$name .= ' (app has a subscription)';
	}
	like(run_as($role, $from, $sql), $expected, "$name: PostgreSQL's answer");
	is(engine_state($db, $long{$db}), $state{$db}, "$name: the workers of $db were left alone");
	$node->safe_psql(
		'postgres', q{
ALTER DATABASE app IS_TEMPLATE false;
ALTER ROLE dave CREATEDB;
});
	$node->safe_psql(
		'app', q{
DO $$BEGIN
  IF EXISTS (SELECT FROM pg_subscription WHERE subname = 'sub') THEN
    ALTER SUBSCRIPTION sub SET (slot_name = NONE);
    DROP SUBSCRIPTION sub;
  END IF;
END$$});
}

# The report: every 0.3 s alice tries again while jobs run.
for my $i (1 .. 5)
{
	like(run_as('alice', 'other', 'DROP DATABASE postgres'),
		qr/^42501:/, "alice's DROP DATABASE postgres, try $i, is refused");
	usleep(300_000);
}
is(engine_state('postgres', $long{postgres}), $state{postgres},
	'after five refused tries the workers of postgres are the same');

for my $db (qw(postgres app))
{
	$node->safe_psql($db, "SELECT job_engine.abort($long{$db}, 'test over')");
	ok( within(
			$PostgreSQL::Test::Utils::timeout_default, $db,
			"SELECT state = 'aborted' FROM job_engine.jobs WHERE id = $long{$db}"),
		"$db: the long job is aborted");
	is( $node->safe_psql(
			$db,
			"SELECT string_agg(attempt || ' ' || outcome, ',') FROM job_engine.attempts WHERE job_id = $long{$db}"
		),
		'1 aborted',
		"$db: the long job ran one attempt, never interrupted by a refused command");
}

# --- 2. a DROP DATABASE that is cancelled or fails ----------------------------

# The statement timeout expires while the guard waits for the workers.
like(
	run_as(
		'postgres', 'other',
		"SET statement_timeout = '1ms';\nDROP DATABASE app;"),
	qr/^57014: canceling statement due to statement timeout/,
	'DROP DATABASE app with statement_timeout 1ms is cancelled');
serves('app', 'after the cancelled DROP DATABASE');

# Another session in app: DROP DATABASE passes every check, the workers step
# aside, then PostgreSQL gives up on the other session after 5 s.
my $stay = $node->background_psql('app');
like(run_as('dave', 'other', 'DROP DATABASE app'),
	qr/^55006: database "app" is being accessed by other users/,
	'DROP DATABASE app fails while another session is connected');
serves('app', 'after the failed DROP DATABASE');
$stay->quit;

# --- 3. commands allowed to the caller work ------------------------------------

ok(within($back_within, 'app', $serving_sql), 'the engine serves app');
is(run_as('postgres', 'other', 'CREATE DATABASE app_copy TEMPLATE app'),
	'ok', 'superuser: CREATE DATABASE app_copy TEMPLATE app');
serves('app', 'after CREATE DATABASE TEMPLATE app');
is(workers_in('app_copy'), '', 'the copy is not served');

is(run_as('dave', 'other', 'CREATE DATABASE dave_copy TEMPLATE app STRATEGY file_copy'),
	'ok', 'dave, the owner: CREATE DATABASE dave_copy TEMPLATE app');
serves('app', "after dave's copy");

$node->safe_psql('postgres', 'ALTER DATABASE app IS_TEMPLATE true');
is(run_as('carol', 'other', 'CREATE DATABASE carol_copy TEMPLATE app'),
	'ok', 'carol, with CREATEDB, copies app once it is a template');
$node->safe_psql('postgres', 'ALTER DATABASE app IS_TEMPLATE false');
serves('app', "after carol's copy");

is(run_as('postgres', 'other', 'ALTER DATABASE app SET TABLESPACE ts'),
	'ok', 'ALTER DATABASE app SET TABLESPACE ts');
is( $node->safe_psql(
		'postgres',
		"SELECT spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE datname = 'app'"
	),
	'ts',
	'app is in tablespace ts');
serves('app', 'after SET TABLESPACE ts');
$node->safe_psql('postgres', 'GRANT CREATE ON TABLESPACE pg_default TO dave');
is(run_as('dave', 'other', 'ALTER DATABASE app SET TABLESPACE pg_default'),
	'ok', 'dave moves app back to pg_default');
serves('app', 'after SET TABLESPACE pg_default');

my $log_offset = -s $node->logfile;
my @messages;
is(run_as('dave', 'other', 'ALTER DATABASE app RENAME TO app_renamed', \@messages),
	'ok', 'dave: ALTER DATABASE app RENAME TO app_renamed');
like(
	join('', @messages),
	qr/WARNING:  [0-9A-Z]{5}: job_engine does not serve database "app_renamed"/,
	'a warning says the renamed database is not served');
is(workers_in('app_renamed'), '', 'no worker of ours is in app_renamed');
is(run_as('dave', 'other', 'ALTER DATABASE app_renamed RENAME TO app'),
	'ok', 'renamed back to app');
serves('app', 'after renaming it back');
my $log = slurp_file($node->logfile, $log_offset);
my @warnings = ($log =~ /job_engine does not serve database "app_renamed"/g);
is(scalar @warnings, 1, 'the server log says it once');

is( run_as(
		'dave', 'other',
		"BEGIN;\nALTER DATABASE app RENAME TO app_tmp;\nROLLBACK;"),
	'ok',
	'a rename inside a transaction block, rolled back');
serves('app', 'after the rolled back rename');

# Rolled back to a savepoint, while the transaction stays open.
my $txn = $node->background_psql(
	'other',
	on_error_stop => 0,
	extra_params => [ '-U', 'dave' ]);
$txn->query('BEGIN');
$txn->query('SAVEPOINT s');
$txn->query('ALTER DATABASE app RENAME TO app_tmp');
is($txn->query("SELECT count(*) FROM pg_database WHERE datname = 'app_tmp'"),
	'1', 'a rename inside a savepoint');
$txn->query('ROLLBACK TO SAVEPOINT s');
serves('app', 'after the rename is rolled back to its savepoint, the transaction open');
$txn->query('COMMIT');
$txn->quit;
unlike(slurp_file($node->logfile, $log_offset),
	qr/does not serve database "app_tmp"/,
	'renames rolled back are not warned about');

# The owner, not a superuser, drops a served database, with and without FORCE.
for my $drop ('DROP DATABASE doomed WITH (FORCE)', 'DROP DATABASE doomed')
{
	$node->safe_psql('postgres', 'CREATE DATABASE doomed OWNER dave');
	ok( within(
			$PostgreSQL::Test::Utils::timeout_default, 'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE datname = 'doomed' AND backend_type = 'job_engine supervisor'}),
		'a supervisor serves doomed');
	is(run_as('dave', 'other', $drop), 'ok', "dave: $drop");
	is( $node->safe_psql(
			'postgres', "SELECT count(*) FROM pg_database WHERE datname = 'doomed'"),
		'0', 'doomed is gone');
}
serves('postgres', 'at the end');

$node->stop;
done_testing();

# Recurring Commands through pg_cron (docs/reference.md, Schedules), in a
# cluster where pg_cron is preloaded and installed.
#
# A plain role schedules a handler: the pg_cron job belongs to that role
# and its database, and its command, run as that role, submits the handler
# with the given args, and the job names the schedule.  Scheduling a name
# again replaces the role's own schedule.  The schedules view lists a
# role's schedules, and no other role's.  A schedule may run in another
# database; DROP DATABASE of it, and DROP EXTENSION job_engine, remove the
# schedules left with nothing to run.  Errors have specific SQLSTATEs, and
# schedule names and args are data, never SQL: hostile ones are stored
# verbatim and the command built from them runs nothing else.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('schedule', pg_cron => 1);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION job_engine;
CREATE ROLE app LOGIN;
CREATE ROLE other LOGIN;
CREATE ROLE colleague LOGIN;
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
REVOKE ALL ON FUNCTION h(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION h(jsonb) TO app, colleague;
SELECT job_engine.register_handler('h', 'h(jsonb)');
-- A table the scheduling role owns, so that injected SQL running as that
-- role could drop it.
CREATE TABLE x (v int);
ALTER TABLE x OWNER TO app;
-- The SQLSTATE raised by `sql`, NULL if it succeeds (run as the caller).
CREATE FUNCTION sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
});

# Runs `sql` as role app (SET ROLE in the same session).
sub as_app
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE app;\n$sql");
}

# Runs the command of pg_cron job `name` the way pg_cron would: the stored
# text, executed as is by the job's role (app).  The text is read as the
# superuser (pg_cron 1.4 grants no access to its schema) and handed over
# through a setting, quoted by psql.
sub run_command_as_app
{
	my ($name_literal) = @_;
	return $node->safe_psql(
		'postgres', qq{SELECT command AS cmd FROM cron.job WHERE jobname = $name_literal \\gset
SET ROLE app;
SELECT set_config('je_test.command', :'cmd', false) IS NOT NULL AS ok \\gset
DO \$do\$
BEGIN
    EXECUTE current_setting('je_test.command');
END
\$do\$;});
}

###############################################################################
# schedule
###############################################################################

my $cron_id = as_app(q{SELECT job_engine.schedule('nightly', '0 3 * * *', 'h', '{"k": 1}')});
like($cron_id, qr/^\d+$/, 'schedule returns the pg_cron job id');

is( $node->safe_psql(
		'postgres',
		"SELECT jobname || '|' || schedule || '|' || username || '|' || database || '|' || active
           FROM cron.job WHERE jobid = $cron_id"),
	'nightly|0 3 * * *|app|postgres|true',
	'cron.job has the schedule under its name, run as app in database postgres, active');
my $command =
  $node->safe_psql('postgres', "SELECT command FROM cron.job WHERE jobid = $cron_id");
like($command, qr/\bjob_engine\.submit_from_schedule\(/,
	"the command submits through job_engine.submit_from_schedule ($command)");

run_command_as_app(q{'nightly'});
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) || '|' || min(owner::text) || '|' || min(args::text) || '|' || min(handler)
            FROM job_engine.jobs}),
	'1|app|{"k": 1}|h',
	'running the command as app submits one job of handler h, owned by app, with args {"k": 1}');
is(as_app(q{SELECT schedule FROM job_engine.jobs WHERE handler = 'h'}),
	'nightly', 'the job names the schedule that submitted it (jobs.schedule)');
ok( $node->poll_query_until(
		'postgres', q{SELECT state = 'succeeded' FROM job_engine.jobs WHERE handler = 'h'}),
	'the job runs and succeeds');
is($node->safe_psql('postgres', q{SELECT result FROM job_engine.jobs WHERE handler = 'h'}),
	'{"k": 1}', 'the handler received the scheduled args');

###############################################################################
# errors
###############################################################################

is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('broken', 'not a cron line', 'h')$$)}),
	'22023', 'an invalid cron expression is 22023');
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('broken', '61 * * * *', 'h')$$)}),
	'22023', 'a cron field out of range is 22023');
SKIP:
{
	my $cron_version = $node->safe_psql('postgres',
		q{SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'});
	skip "pg_cron $cron_version takes intervals of seconds", 1
	  unless $cron_version =~ /^1\.[0-4](?:\D|$)/;
	$node->psql(
		'postgres',
		q{SET ROLE app; SELECT job_engine.schedule('broken', '30 seconds', 'h')},
		stderr => \my $stderr);
	like(
		$stderr,
		qr/HINT:  Intervals of seconds need pg_cron 1\.5 or later; this database has pg_cron \Q$cron_version\E\./,
		"'30 seconds' on pg_cron $cron_version: the hint names the versions");
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname = 'broken'}),
	'0', 'the invalid schedules left nothing in cron.job');

###############################################################################
# the same name again
###############################################################################

is(as_app(q{SELECT job_engine.schedule('nightly', '0 4 * * *', 'h', '{"k": 2}')}),
	$cron_id, 'scheduling the same name again returns the same pg_cron job id');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) || '|' || min(schedule) || '|' || min(command) FROM cron.job WHERE jobname = 'nightly'}),
	q{1|0 4 * * *|SELECT job_engine.submit_from_schedule('nightly', 'h', '{"k": 2}'::jsonb)},
	'... and replaces the schedule: one row, the new cron expression and args');

is(
	$node->safe_psql(
		'postgres',
		q{SET ROLE colleague; SELECT job_engine.schedule('nightly', '0 5 * * *', 'h', '{"c": 1}') <> }
		  . $cron_id),
	't', "another role's schedule of the same name is another pg_cron job");
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(username || ' ' || schedule, ', ' ORDER BY username) FROM cron.job WHERE jobname = 'nightly'}),
	'app 0 4 * * *, colleague 0 5 * * *',
	"... and app's schedule of that name is untouched");

# A role has at most job_engine.max_schedules_per_role schedules (a superuser
# sets it, per session or per role): each costs pg_cron a worker at every
# run.  Replacing one does not count; superusers have no limit.
is( $node->safe_psql(
		'postgres', q{SET job_engine.max_schedules_per_role = 2; SET ROLE colleague;
SELECT job_engine.schedule('c2', '0 6 * * *', 'h') > 0;
SELECT sqlstate_of($$SELECT job_engine.schedule('c3', '0 6 * * *', 'h')$$);
SELECT job_engine.schedule('nightly', '0 7 * * *', 'h') > 0;
RESET ROLE;
SELECT job_engine.schedule('s2', '0 6 * * *', 'h') > 0 AND job_engine.schedule('s3', '0 6 * * *', 'h') > 0
   AND job_engine.schedule('s4', '0 6 * * *', 'h') > 0;
SELECT job_engine.unschedule('s2') AND job_engine.unschedule('s3') AND job_engine.unschedule('s4');}),
	"t\n54000\nt\nt\nt",
	'a third schedule of a role limited to 2 is 54000; replacing one is not; a superuser has no limit');
$node->psql(
	'postgres',
	q{SET job_engine.max_schedules_per_role = 2; SET ROLE colleague; SELECT job_engine.schedule('c3', '0 6 * * *', 'h')},
	stderr => \my $limit_stderr);
like(
	$limit_stderr,
	qr/ERROR:  role colleague has 2 schedules, the most job_engine.max_schedules_per_role allows\n.*HINT:  Remove one with job_engine.unschedule\(\)/s,
	'... saying so, with a hint');
my ($rc_set) = $node->psql('postgres', q{SET ROLE colleague; SET job_engine.max_schedules_per_role = 1000});
isnt($rc_set, 0, 'a plain role cannot raise its own limit');
$node->safe_psql('postgres', q{SET ROLE colleague; SELECT job_engine.unschedule('c2'); SELECT job_engine.schedule('nightly', '0 5 * * *', 'h', '{"c": 1}')});

# Concurrent calls of one role cannot pass the limit together.  The first
# call's transaction stays open until the second call is seen waiting (or
# done, which is the bug): the second must wait for it, then count its
# schedule and refuse a third.  Under REPEATABLE READ the second call's
# snapshot may predate the first's commit: it must count it all the same.
$node->safe_psql('postgres', q{CREATE ROLE racer LOGIN; GRANT EXECUTE ON FUNCTION h(jsonb) TO racer});
# query_safe() fails on any message: the WARNING of this socket-only node,
# whose pg_cron could not connect to run the schedules, is not the point here.
my $as_racer = q{SET client_min_messages = error; SET job_engine.max_schedules_per_role = 2; SET ROLE racer;};
my $racer_schedules = q{SELECT string_agg(jobname, ' ' ORDER BY jobname) FROM cron.job WHERE username = 'racer'};
$node->safe_psql('postgres', "$as_racer SELECT job_engine.schedule('r1', '0 6 * * *', 'h')");
my $first = $node->background_psql('postgres');
my $second = $node->background_psql('postgres');
my $second_pid = $second->query_safe('SELECT pg_backend_pid()');
$first->query_safe("$as_racer BEGIN; SELECT job_engine.schedule('r2', '0 6 * * *', 'h')");
$second->query_until(qr/sent/, qq{$as_racer BEGIN;
\\echo sent
SELECT sqlstate_of(\$\$SELECT job_engine.schedule('r3', '0 6 * * *', 'h')\$\$) AS r3;
});
ok( $node->poll_query_until(
		'postgres', qq{
SELECT query LIKE '%''r3''%' AND (wait_event_type = 'Lock' OR state = 'idle in transaction')
  FROM pg_stat_activity WHERE pid = $second_pid}),
	"racer's second schedule() waits (or has returned) while the first's transaction is open");
$first->query_safe('COMMIT');
like($second->query_until(qr/committed/, "COMMIT;\n\\echo committed\n"),
	qr/^54000$/m, '... and once the first commits, the second is refused: 54000');
is($node->safe_psql('postgres', $racer_schedules), 'r1 r2', 'racer has 2 schedules, not 3');

$node->safe_psql('postgres', q{SET ROLE racer; SELECT job_engine.unschedule('r2')});
$second->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
$node->safe_psql('postgres', "$as_racer SELECT job_engine.schedule('r2', '0 6 * * *', 'h')");
is( $second->query_safe(
		q{SELECT sqlstate_of($$SELECT job_engine.schedule('r3', '0 6 * * *', 'h')$$)}),
	'54000',
	"under REPEATABLE READ, a schedule committed after the transaction's snapshot counts too: 54000");
$second->query_safe('COMMIT');
is($node->safe_psql('postgres', $racer_schedules), 'r1 r2', '... and racer still has 2');
$first->quit;
$second->quit;
$node->safe_psql('postgres',
	q{SET ROLE racer; SELECT job_engine.unschedule('r1'); SELECT job_engine.unschedule('r2')});

# A pg_cron job of app's own, made without job_engine, under the name.
$node->safe_psql('postgres',
	q{SELECT cron.schedule_in_database('vacuuming', '0 1 * * *', 'VACUUM x', 'postgres', 'app')});
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('vacuuming', '0 2 * * *', 'h')$$)}),
	'42710', "scheduling the name of the role's pg_cron job that is no job_engine schedule is 42710");
$node->psql(
	'postgres',
	q{SET ROLE app; SELECT job_engine.schedule('vacuuming', '0 2 * * *', 'h')},
	stderr => \my $vacuuming_stderr);
like(
	$vacuuming_stderr,
	qr/ERROR:  pg_cron job "vacuuming" of role app is not a job_engine schedule\n.*HINT:  Pick another name/s,
	'... saying so, with a hint');
is(as_app(q{SELECT job_engine.unschedule('vacuuming')}),
	'f', 'unschedule does not remove a pg_cron job that is no job_engine schedule');
is($node->safe_psql('postgres', q{SELECT schedule || '|' || command FROM cron.job WHERE jobname = 'vacuuming'}),
	'0 1 * * *|VACUUM x', '... which stays as it was');

###############################################################################
# the schedules view
###############################################################################

# A schedule made by release 1.0, whose command calls submit() itself.
$node->safe_psql('postgres',
	q{SELECT cron.schedule_in_database('legacy', '0 6 * * *',
          format('SELECT job_engine.submit(%L, %L::jsonb)', 'h', '{"q": "it''s"}'), 'postgres', 'app')});

is( as_app(
		q{SELECT string_agg(concat_ws('|', name, owner, database, cron, handler, args, queue, active,
                                     cron_job_id IS NOT NULL, last_run_status), E'\n' ORDER BY name)
            FROM job_engine.schedules}),
	qq{legacy|app|postgres|0 6 * * *|h|{"q": "it's"}|default|t|t\nnightly|app|postgres|0 4 * * *|h|{"k": 2}|default|t|t},
	"app sees its own schedules in the view, 1.0's too, and neither colleague's nor a pg_cron job that is no schedule");
is($node->safe_psql('postgres', q{SET ROLE other; SELECT count(*) FROM job_engine.schedules}),
	'0', 'a role without schedules sees none');
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(owner || ' ' || name, ', ' ORDER BY owner, name) FROM job_engine.schedules}),
	'app legacy, app nightly, colleague nightly',
	"a superuser sees every role's schedules");

# A role that may use pg_cron itself (GRANT USAGE ON SCHEMA cron, as pg_cron's
# documentation has it) can store a command shaped like job_engine's whose
# args are no JSON.  It is no schedule: the view leaves it out for every
# reader, instead of failing for those who may see it (superusers and the
# database's owner).
$node->safe_psql('postgres', q{GRANT USAGE ON SCHEMA cron TO other});
$node->safe_psql(
	'postgres', q~SET ROLE other;
SELECT cron.schedule('forged', '0 5 * * *',
    $$SELECT job_engine.submit_from_schedule('forged', 'h', 'not json'::jsonb)$$);
SELECT cron.schedule('forged deep', '0 5 * * *',
    format('SELECT job_engine.submit_from_schedule(%L, %L, %L::jsonb)',
           'forged deep', 'h', repeat('[', 100000)));
SELECT cron.schedule('forged legacy', '0 5 * * *',
    $$SELECT job_engine.submit('h', '{"unfinished": '::jsonb)$$)~);
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(owner || ' ' || name, ', ' ORDER BY owner, name) FROM job_engine.schedules}),
	'app legacy, app nightly, colleague nightly',
	"a pg_cron job of another role shaped like a schedule but with args that are no JSON leaves the superuser's view working");
is($node->safe_psql('postgres', q{SET ROLE other; SELECT count(*) FROM job_engine.schedules}),
	'0', '... and is no schedule for its owner either');
$node->safe_psql('postgres',
	q{SELECT cron.unschedule(jobid) FROM cron.job WHERE username = 'other'; REVOKE USAGE ON SCHEMA cron FROM other});
$node->safe_psql('postgres', q{GRANT app TO other});
is($node->safe_psql('postgres', q{SET ROLE other; SELECT string_agg(name, ', ' ORDER BY name) FROM job_engine.schedules}),
	'legacy, nightly', "a member of app sees app's schedules");
$node->safe_psql('postgres', q{REVOKE app FROM other});
is($node->safe_psql('postgres', q{SET ROLE colleague; SELECT job_engine.unschedule('nightly')}),
	't', "colleague's schedule is removed");
is(as_app(q{SELECT job_engine.unschedule('legacy')}), 't', "unschedule removes 1.0's schedule");
is( $node->safe_psql(
		'postgres',
		q{SET ROLE other; SELECT sqlstate_of($$SELECT job_engine.schedule('nightly', '0 3 * * *', 'h')$$)}),
	'42501',
	"a role without EXECUTE on the handler's function cannot schedule it (42501)");

###############################################################################
# unschedule
###############################################################################

is( $node->safe_psql('postgres', q{SET ROLE other; SELECT job_engine.unschedule('nightly')}),
	'f', "another role cannot unschedule app's schedule: false");
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname = 'nightly'}),
	'1', '... and the schedule stays');
is(as_app(q{SELECT job_engine.unschedule('nightly')}), 't', 'unschedule returns true');
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job WHERE jobid = $cron_id"),
	'0', 'unschedule removed the cron.job row');
is(as_app(q{SELECT job_engine.unschedule('nightly')}), 'f',
	'unschedule of a name already removed returns false');
is(as_app(q{SELECT job_engine.unschedule('no such schedule')}), 'f',
	'unschedule of an unknown name returns false');

###############################################################################
# hostile names and args
###############################################################################

# Dollar quoting keeps the hostile strings intact on their way in.
my $hostile_name = q{$n$nightly'); DROP TABLE x; -- "quoted" \\$n$};
my $hostile_args =
  q{$a${"s": "'; DROP TABLE x; --", "q": "it's \"quoted\"", "b": "\\\\'"}$a$};

my $hostile_id =
  as_app("SELECT job_engine.schedule($hostile_name, '0 3 * * *', 'h', $hostile_args)");
like($hostile_id, qr/^\d+$/, 'a hostile schedule name and args are accepted');
is( $node->safe_psql(
		'postgres', "SELECT jobname = $hostile_name FROM cron.job WHERE jobid = $hostile_id"),
	't', 'the schedule name is stored verbatim');
is($node->safe_psql('postgres', "SELECT username FROM cron.job WHERE jobid = $hostile_id"),
	'app', 'the hostile schedule runs as app');
is( as_app(
		"SELECT name = $hostile_name AND args = ${hostile_args}::jsonb FROM job_engine.schedules WHERE cron_job_id = $hostile_id"
	),
	't', 'the schedules view shows the hostile name and args verbatim');

run_command_as_app($hostile_name);
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) || '|' || bool_and(args = ${hostile_args}::jsonb) || '|' || bool_and(owner = 'app')
           FROM job_engine.jobs WHERE handler = 'h' AND args ? 's'"),
	'1|true|true',
	'its command submits one job with the args verbatim, owned by app');
is($node->safe_psql('postgres', q{SELECT to_regclass('public.x') IS NOT NULL}),
	't', 'table x still exists: the command ran no injected SQL');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM job_engine.jobs WHERE handler = 'h'}),
	'2', 'and submitted nothing else');

is(as_app("SELECT job_engine.unschedule($hostile_name)"),
	't', 'the hostile schedule is unscheduled by its name');

# A handler name that would close the submit call and append a statement if
# it were pasted into the command unquoted.
my $hostile_handler = q{$h$h'); DROP TABLE x; --$h$};
$node->safe_psql('postgres',
	"SELECT job_engine.register_handler($hostile_handler, 'h(jsonb)')");
my $handler_id = as_app(
	"SELECT job_engine.schedule('odd handler', '0 3 * * *', $hostile_handler, '{\"n\": 3}')");
like($handler_id, qr/^\d+$/, 'a handler with a hostile name is scheduled');
run_command_as_app(q{'odd handler'});
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) || '|' || bool_and(args = '{\"n\": 3}') || '|' || bool_and(owner = 'app')
           FROM job_engine.jobs WHERE handler = $hostile_handler"),
	'1|true|true',
	'its command submits one job of that handler, owned by app');
is($node->safe_psql('postgres', q{SELECT to_regclass('public.x') IS NOT NULL}),
	't', 'table x still exists: the handler name was not spliced into SQL');
is(as_app(q{SELECT job_engine.unschedule('odd handler')}), 't', 'that schedule is removed too');
is($node->safe_psql('postgres', q{SELECT string_agg(jobname, ', ') FROM cron.job}),
	'vacuuming', "no schedule is left, only app's own pg_cron job");

###############################################################################
# schedules for another database
###############################################################################

$node->safe_psql('postgres', q{CREATE DATABASE appdb OWNER app});
$node->safe_psql('postgres', q{CREATE DATABASE locked; REVOKE CONNECT ON DATABASE locked FROM PUBLIC});

my $other_db_id = as_app(
	q{SELECT job_engine.schedule('elsewhere', '0 3 * * *', 'remote_handler', '{"r": 1}', database => 'appdb')});
like($other_db_id, qr/^\d+$/,
	"schedule(database => 'appdb') takes a handler of that database, unknown here");
is( $node->safe_psql(
		'postgres', "SELECT username || '|' || database || '|' || command FROM cron.job WHERE jobid = $other_db_id"),
	q{app|appdb|SELECT job_engine.submit_from_schedule('elsewhere', 'remote_handler', '{"r": 1}'::jsonb)},
	'its pg_cron job runs as app in database appdb');
is( as_app(
		q{SELECT concat_ws('|', database, handler, args, queue IS NULL) FROM job_engine.schedules WHERE name = 'elsewhere'}),
	'appdb|remote_handler|{"r": 1}|t',
	'the schedules view lists it, with no queue (the handler is appdb\'s)');
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('elsewhere', '0 3 * * *', 'h')$$)}),
	'42710', "the same name for another database than its schedule's is 42710");
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('x', '0 3 * * *', 'h', database => 'no_such_db')$$)}),
	'3D000', 'a database that does not exist is 3D000');
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('x', '0 3 * * *', 'h', database => 'locked')$$)}),
	'42501', 'a database the role may not connect to is 42501');
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('x', '0 3 * * *', 'no_such_handler', database => 'postgres')$$)}),
	'42883', 'naming this database checks the handler as before');

# As for jobs, a database's owner sees the schedules that run in it.
$node->safe_psql('postgres', q{CREATE DATABASE teamdb OWNER colleague});
as_app(q{SELECT job_engine.schedule('for the team', '0 3 * * *', 'h', database => 'teamdb')});
is( $node->safe_psql(
		'postgres',
		q{SET ROLE colleague; SELECT string_agg(owner || ' ' || name || '@' || database, ', ' ORDER BY name) FROM job_engine.schedules}
	),
	'app for the team@teamdb',
	"the owner of teamdb sees app's schedule that runs in it, and none of app's others");
is(as_app(q{SELECT job_engine.unschedule('for the team')}), 't', 'that schedule is removed');

###############################################################################
# DROP DATABASE and DROP EXTENSION remove the schedules they leave behind
###############################################################################

$node->safe_psql('postgres',
	q{SELECT cron.schedule_in_database('appdb maintenance', '0 1 * * *', 'VACUUM', 'appdb', 'app')});
$node->psql('postgres', q{SET ROLE other; DROP DATABASE appdb}, stderr => \my $dropdb_stderr);
like($dropdb_stderr, qr/must be owner of database appdb/,
	'DROP DATABASE by a role that does not own it fails');
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job WHERE jobid = $other_db_id"),
	'1', '... and its schedule stays');
$node->safe_psql('postgres', q{SET ROLE app; DROP DATABASE appdb});
is( $node->safe_psql('postgres', q{SELECT string_agg(jobname, ', ' ORDER BY jobname) FROM cron.job WHERE database = 'appdb'}),
	'appdb maintenance',
	"DROP DATABASE appdb by its owner removed its schedule, not the pg_cron job job_engine did not make");

$node->safe_psql('postgres', q{CREATE DATABASE keptdb; GRANT CONNECT ON DATABASE keptdb TO app});
as_app(q{SELECT job_engine.schedule('kept', '0 3 * * *', 'h', database => 'keptdb')});
as_app(q{SELECT job_engine.schedule('here', '0 3 * * *', 'h')});
$node->safe_psql('postgres', q{DROP EXTENSION job_engine CASCADE});
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(jobname || '@' || database, ', ' ORDER BY jobname) FROM cron.job}),
	'appdb maintenance@appdb, kept@keptdb, vacuuming@postgres',
	"DROP EXTENSION job_engine removed this database's schedules, not those running in keptdb nor other pg_cron jobs");

$node->stop;
done_testing();

# Recurring Commands through pg_cron (docs/reference.md, Schedules), in a
# cluster where pg_cron is preloaded and installed.
#
# A plain role schedules a handler: the pg_cron job belongs to that role
# and its database, and its command, run as that role, submits the handler
# with the given args.  Errors have specific SQLSTATEs, and schedule names
# and args are data, never SQL: hostile ones are stored verbatim and the
# command built from them runs nothing else.
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
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
REVOKE ALL ON FUNCTION h(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION h(jsonb) TO app;
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
like($command, qr/\bjob_engine\.submit\(/, "the command submits through job_engine.submit ($command)");

run_command_as_app(q{'nightly'});
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) || '|' || min(owner::text) || '|' || min(args::text) || '|' || min(handler)
            FROM job_engine.jobs}),
	'1|app|{"k": 1}|h',
	'running the command as app submits one job of handler h, owned by app, with args {"k": 1}');
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
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname = 'broken'}),
	'0', 'the invalid schedules left nothing in cron.job');
is( as_app(q{SELECT sqlstate_of($$SELECT job_engine.schedule('nightly', '0 4 * * *', 'h', '{"k": 2}')$$)}),
	'42710', 'scheduling the same name twice is 42710');
is( $node->safe_psql(
		'postgres', q{SELECT schedule || '|' || command FROM cron.job WHERE jobname = 'nightly'}),
	"0 3 * * *|$command",
	'the refused duplicate left the first schedule unchanged');
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
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'),
	'0', 'no schedule is left');

$node->stop;
done_testing();

# Schedules whatever the caller's session settings (docs/reference.md,
# Schedules).  The internal functions that read pg_cron's commands back
# (patterns with backslashes, the unquoting of literals) run in the
# caller's session: with standard_conforming_strings = off, which any role
# may set, a backslash in a plain string literal is an escape, and those
# functions must still read them as they were written.  So a role whose
# session has it off still sees, replaces and removes its own schedules.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('schedule_settings', pg_cron => 1);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION job_engine;
CREATE ROLE app LOGIN;
CREATE FUNCTION h(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('h', 'h(jsonb)');
});

# Runs `sql` as role app in a session with standard_conforming_strings off;
# returns the exit code, stdout and stderr.
sub as_app_nonstandard
{
	my ($sql) = @_;
	my ($stdout, $stderr);
	my $ret = $node->psql(
		'postgres',
		"SET ROLE app;\nSET standard_conforming_strings = off;\nSET escape_string_warning = off;\n$sql",
		stdout => \$stdout,
		stderr => \$stderr);
	return ($ret, $stdout, $stderr);
}

$node->safe_psql('postgres',
	q{SET ROLE app; SELECT job_engine.schedule('nightly', '0 3 * * *', 'h', '{"path": "C:\\\\tmp"}')});

my ($ret, $out, $err) = as_app_nonstandard(
	q{SELECT name || ' ' || cron || ' ' || handler || ' ' || args::text FROM job_engine.schedules});
is($ret, 0, 'the schedules view reads with standard_conforming_strings off') or diag($err);
is($out, 'nightly 0 3 * * * h {"path": "C:\\\\tmp"}',
	'the schedule is listed with its args, backslash included');

($ret, $out, $err) = as_app_nonstandard(
	q{SELECT job_engine.schedule('nightly', '0 4 * * *', 'h') IS NOT NULL});
is($ret, 0, 'scheduling the name again replaces the schedule') or diag($err);
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || min(schedule) FROM cron.job WHERE jobname = 'nightly'}),
	'1 0 4 * * *', 'one pg_cron job, with the new cron expression');

($ret, $out, $err) = as_app_nonstandard(q{SELECT job_engine.unschedule('nightly')});
is($ret, 0, 'unschedule runs with standard_conforming_strings off') or diag($err);
is($out, 't', 'unschedule removes the schedule');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job}), '0', 'no pg_cron job is left');

$node->stop;
done_testing();

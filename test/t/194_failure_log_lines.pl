# The server log line of each failed attempt (src/failure_log.c,
# docs/monitoring.md "Failure log lines"):
#
#  a. It names the job, handler, database, attempt, SQLSTATE and message,
#     and what follows: "retrying at <time>", "giving up after N
#     attempt(s)" (saying so when the handler does not retry the SQLSTATE).
#  b. An aborted attempt's line gives the reason passed to abort(); a
#     crashed attempt's, logged by crash recovery, says so, with no SQLSTATE.
#  c. A flood of failures in one database (a dependency down) logs at most
#     job_engine.log_failures_limit lines per 10 s, then a line saying how
#     many were not logged; the attempts table keeps every one.
#  d. Past that bound, the first failure of each other owner in the window
#     is still logged: a role's flood does not hide another role's failures.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $limit = 8;
my $node = JobEngineNode::new_node(
	'failure_log',
	databases => 'postgres,flood',
	max_workers => 2,
	extra_conf => "job_engine.log_failures_limit = $limit\n");

my $setup = JobEngineNode::dies_once_handler_sql() . q{
CREATE EXTENSION job_engine;
CREATE FUNCTION down(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dependency down' USING ERRCODE = '08006';
END
$$;
CREATE FUNCTION bad_input(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bad input %', a ->> 'n' USING ERRCODE = '22023';
END
$$;
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(300);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('dies_once', 'dies_once(jsonb)'::regprocedure,
                                   max_attempts => 2, backoff_base => '50 ms');
SELECT job_engine.register_handler('down', 'down(jsonb)'::regprocedure,
                                   max_attempts => 2, backoff_base => '50 ms');
SELECT job_engine.register_handler('bad_input', 'bad_input(jsonb)'::regprocedure,
                                   max_attempts => 3);
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)'::regprocedure,
                                   timeout => '10 min');
};
$node->safe_psql('postgres', $setup);
$node->safe_psql('postgres', 'CREATE DATABASE flood');
$node->safe_psql('flood', $setup);

my $log_offset = -s $node->logfile;

# The log written since the test started.
sub log_since_start
{
	return slurp_file($node->logfile, $log_offset);
}

# Waits (bounded) until the log matches $re; returns whether it did.
sub wait_for_line
{
	my ($re) = @_;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		return 1 if log_since_start() =~ $re;
		usleep(100_000);
	}
	return 0;
}

# -- a. retrying, then giving up ----------------------------------------------
my $down = $node->safe_psql('postgres', q{SELECT job_engine.submit('down')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $down"),
	'the failing job fails after its two attempts');
my $ts = qr/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d/;
ok( wait_for_line(
		qr/job_engine: job $down \(handler down, database "postgres"\) attempt 1 failed: SQLSTATE 08006: dependency down; retrying at $ts\n/
	),
	'attempt 1: database, job, handler, attempt, SQLSTATE, message and when it is retried')
  or diag log_since_start();
ok( wait_for_line(
		qr/job_engine: job $down \(handler down, database "postgres"\) attempt 2 failed: SQLSTATE 08006: dependency down; giving up after 2 attempt\(s\)\n/
	),
	'attempt 2: giving up after 2 attempts');

my $bad = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('bad_input', '{"n": 7}')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $bad"),
	'the job failing with 22023 fails at once');
ok( wait_for_line(
		qr/job_engine: job $bad \(handler bad_input, database "postgres"\) attempt 1 failed: SQLSTATE 22023: bad input 7; giving up after 1 attempt\(s\): the handler does not retry SQLSTATE 22023\n/
	),
	'an error the handler does not retry: giving up, saying why');

# -- b. an abort and its reason -----------------------------------------------
my $sleeper = $node->safe_psql('postgres', q{SELECT job_engine.submit('sleeper')});
ok( $node->poll_query_until(
		'postgres', "SELECT EXISTS (SELECT FROM job_engine.workers WHERE job_id = $sleeper)"),
	'the sleeping job runs');
is( $node->safe_psql(
		'postgres', "SELECT job_engine.abort($sleeper, 'operator stop: queue drained')"),
	't', 'it is aborted with a reason');
ok( wait_for_line(
		qr/job_engine: job $sleeper \(handler sleeper, database "postgres"\) attempt 1 aborted: SQLSTATE 57014: canceling statement due to user request; aborted by job_engine.abort\(\): operator stop: queue drained\n/
	),
	'the abort line gives the reason passed to abort()');

my $dies = $node->safe_psql('postgres', q{SELECT job_engine.submit('dies_once')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $dies"),
	'the job whose first executor died succeeds at its second attempt');
ok( wait_for_line(
		qr/job_engine: job $dies \(handler dies_once, database "postgres"\) attempt 1 crashed: executor process \d+ exited while the attempt was running; retrying at $ts\n/
	),
	'the crashed attempt: no SQLSTATE, what happened, and when it is retried');

# A crash that uses up the last attempt gives up like any last failure: the
# retry policy was applied, so the line must not say it could not be.
my $dies_last = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('dies_once', max_attempts => 1)});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $dies_last"),
	'the job whose only attempt crashed fails');
ok( wait_for_line(
		qr/job_engine: job $dies_last \(handler dies_once, database "postgres"\) attempt 1 crashed: executor process \d+ exited while the attempt was running; giving up after 1 attempt\(s\)\n/
	),
	'a crash of the last attempt: giving up, with no claim that the policy failed')
  or diag log_since_start();

# -- c. a flood in one database ----------------------------------------------
my $n = 30;
$node->safe_psql('flood',
	"SELECT job_engine.submit('down', max_attempts => 1) FROM generate_series(1, $n)");
ok( $node->poll_query_until(
		'flood', "SELECT count(*) = $n FROM job_engine.jobs WHERE state = 'failed'"),
	"all $n failing jobs of the flood failed");
is( $node->safe_psql(
		'flood',
		"SELECT count(*) FROM job_engine.attempts WHERE outcome = 'failed' AND sqlstate = '08006'"),
	$n, 'the attempts table records every failed attempt');

# Lines logged and counted as not logged for database flood.
sub flood_counts
{
	my $log = log_since_start();
	my $logged = () =
	  $log =~ /job_engine: job \d+ \(handler down, database "flood"\) attempt 1 failed: /g;
	my ($summaries, $unlogged) = (0, 0);
	while ($log =~
		/job_engine: (\d+) further failed attempt\(s\) in database "flood" not logged in the last \d+ s\n/g)
	{
		$summaries++;
		$unlogged += $1;
	}
	return ($logged, $summaries, $unlogged);
}

# The last window's count is logged by the supervisor once it has passed.
my ($logged, $summaries, $unlogged);
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	($logged, $summaries, $unlogged) = flood_counts();
	last if $logged + $unlogged >= $n;
	usleep(100_000);
}
is($logged + $unlogged, $n,
	'every failure is either logged or counted in a line saying how many were not');
ok($summaries >= 1 && $logged < $n,
	"the flood is not logged line by line: $logged lines, then $summaries saying $unlogged were not");
like(log_since_start(),
	qr/DETAIL:  At most job_engine.log_failures_limit \($limit\) failure lines are logged per database every 10 s; job_engine.attempts records every attempt./,
	'the line says the rule');

# -- d. one role's flood does not hide another role's failure --------------------
# Any role may submit failing jobs.  Within the window a flood of one role
# has filled, the first failure of another role is still logged.
$node->safe_psql('flood', q{CREATE ROLE flooder; CREATE ROLE bystander});
$node->safe_psql(
	'flood', qq{SET ROLE flooder;
SELECT job_engine.submit('down', max_attempts => 1) FROM generate_series(1, $n);
RESET ROLE;
SET ROLE bystander;
SELECT job_engine.submit('bad_input', '{"n": "bystander"}', max_attempts => 1);});
ok( $node->poll_query_until(
		'flood', "SELECT count(*) = 0 FROM job_engine.jobs WHERE state <> 'failed'"),
	"the flood of role flooder and the job of role bystander failed");
ok( wait_for_line(
		qr/job_engine: job \d+ \(handler bad_input, database "flood"\) attempt 1 failed: SQLSTATE 22023: bad input bystander;/
	),
	"the failure of role bystander is logged, though role flooder's flood filled the window");

done_testing();

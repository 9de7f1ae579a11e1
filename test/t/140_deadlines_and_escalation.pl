# Deadlines are enforced, and the supervisor's escalation (SIGTERM to an
# executor) ends exactly the attempt it is meant for.
#
#  a. job_engine.default_timeout applies to a handler registered without a
#     timeout.
#  b. A handler with timeout '1 second' that swallows every cancel: after
#     the deadline plus job_engine.abort_grace the supervisor terminates
#     its executor; the attempt is recorded failed with 57014, saying the
#     deadline passed and the executor was terminated; a new executor
#     replaces it.
#  c. A handler that swallows its timeout's cancel and then returns does
#     not succeed: its attempt fails with 57014.
#  d. In a group-commit queue, a job whose handler swallows the cancel of
#     its abort, or of its timeout, gets its executor terminated: the jobs
#     of the group whose handlers had finished are not recorded crashed;
#     their attempt, rolled back with the group, is recorded as such and
#     they run again, at once and without costing them an attempt.
#  e. PREPARE TRANSACTION of a transaction that aborted a running job is
#     refused, and interrupts nothing.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'deadlines',
	max_workers => 2,
	extra_conf => q{
job_engine.default_timeout = 1s
job_engine.abort_grace = 500ms
# Escalation must not wait for the executors' safety-net poll.
job_engine.poll_interval = 60s
max_prepared_transactions = 2
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint NOT NULL, attempt int NOT NULL);
CREATE FUNCTION effect() RETURNS void LANGUAGE sql AS $$
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int)
$$;
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM effect();
    PERFORM pg_sleep((a ->> 's')::float8);
    RETURN a;
END
$$;
-- Writes, then swallows every cancel for two minutes at most.
CREATE FUNCTION stubborn(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM effect();
    WHILE clock_timestamp() < t0 + interval '2 minutes' LOOP
        BEGIN
            PERFORM pg_sleep(0.05);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
    END LOOP;
    RETURN '{"outlived": true}';
END
$$;
-- Swallows the first cancel, then returns.
CREATE FUNCTION swallow_once(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM effect();
    BEGIN
        PERFORM pg_sleep(60);
    EXCEPTION WHEN query_canceled THEN
        NULL;
    END;
    RETURN '{"returned": true}';
END
$$;
CREATE FUNCTION quick(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM effect();
    RETURN '{"done": true}';
END
$$;
CREATE FUNCTION gated(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(140140);
    RETURN '{"passed": true}';
END
$$;
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('stubborn_deadline', 'stubborn(jsonb)', max_attempts => 1,
                                   timeout => '1 second');
SELECT job_engine.register_handler('swallow_once', 'swallow_once(jsonb)', max_attempts => 1,
                                   timeout => '300 ms');
SELECT job_engine.register_handler('quick', 'quick(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('gated', 'gated(jsonb)', max_attempts => 1,
                                   timeout => '10 minutes');
SELECT job_engine.register_handler('g_quick', 'quick(jsonb)', queue => 'g', max_attempts => 1);
SELECT job_engine.register_handler('g_stubborn', 'stubborn(jsonb)', queue => 'g', max_attempts => 1,
                                   timeout => '10 minutes');
SELECT job_engine.register_handler('g_stubborn_deadline', 'stubborn(jsonb)', queue => 'g',
                                   max_attempts => 1, timeout => '1 second');
SELECT job_engine.configure_queue('g', group_commit => 8);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Runs the boolean query $sql every 100 ms until it is true; false if
# $seconds pass first.
sub holds_within
{
	my ($seconds, $sql) = @_;
	my $give_up = time + $seconds;
	until ((sql($sql) // '') eq 't')
	{
		return 0 if time > $give_up;
		usleep(100_000);
	}
	return 1;
}

sub attempts_of
{
	my ($job) = @_;
	return sql(qq{
SELECT string_agg(concat_ws(' ', attempt, outcome, sqlstate), ', ' ORDER BY attempt)
  FROM job_engine.attempts WHERE job_id = $job});
}

sub executors
{
	return sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'job_engine executor'});
}

sub running_on
{
	my ($job) = @_;
	return "SELECT EXISTS (SELECT FROM job_engine.workers WHERE job_id = $job)";
}

ok(holds_within(30, "SELECT count(*) = 2 FROM job_engine.workers"), 'two executors run');

# ---------------------------------------------------------------------------
# a. job_engine.default_timeout
# ---------------------------------------------------------------------------
{
	my $job = sql(q{SELECT job_engine.submit('sleeper', '{"s": 60}')});
	ok(holds_within(15, "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $job"),
		'default_timeout: a handler without a timeout of its own is stopped');
	is(attempts_of($job), '1 failed 57014', 'default_timeout: its attempt failed with 57014');
	cmp_ok(
		sql(qq{SELECT extract(epoch FROM finished_at - started_at) FROM job_engine.attempts
              WHERE job_id = $job}), '<', 10,
		'default_timeout: after about job_engine.default_timeout (1 s), not its 60 s sleep');
}

# ---------------------------------------------------------------------------
# b. a deadline the handler ignores
# ---------------------------------------------------------------------------
{
	my $log_offset = -s $node->logfile;
	my $job = sql(q{SELECT job_engine.submit('stubborn_deadline')});
	ok(holds_within(15, running_on($job)), 'deadline: the stubborn job runs');
	my $pid = sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $job");
	ok(holds_within(15, "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $job"),
		'deadline: the job ends, although its handler swallows every cancel');
	is(attempts_of($job), '1 failed 57014', 'deadline: its attempt is recorded failed with 57014');
	like(
		sql("SELECT message FROM job_engine.attempts WHERE job_id = $job"),
		qr/deadline.*executor process $pid was terminated/,
		'deadline: the message says the deadline passed and the executor was terminated');
	cmp_ok(
		sql(qq{SELECT extract(epoch FROM finished_at - started_at) FROM job_engine.attempts
              WHERE job_id = $job}), '<', 10,
		'deadline: within the timeout (1 s) and job_engine.abort_grace (0.5 s), give or take');
	ok(holds_within(15, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)"),
		"deadline: executor $pid is gone");
	is(sql("SELECT count(*) FROM effects WHERE job_id = $job"), '0',
		"deadline: the handler's writes were rolled back");
	ok(holds_within(15, "SELECT count(*) = 2 FROM job_engine.workers"),
		'deadline: a new executor replaces it');
	my $next = sql(q{SELECT job_engine.submit('quick')});
	ok(holds_within(15, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $next"),
		'deadline: new jobs run');
	like(slurp_file($node->logfile, $log_offset), qr/job $job ran past its deadline/,
		'deadline: the server log says why the executor was terminated');
}

# ---------------------------------------------------------------------------
# c. a handler that swallows its timeout and returns
# ---------------------------------------------------------------------------
{
	my $job = sql(q{SELECT job_engine.submit('swallow_once')});
	ok(holds_within(15, "SELECT state IN ('succeeded', 'failed') FROM job_engine.jobs WHERE id = $job"),
		'swallowed timeout: the job ends');
	is(sql("SELECT state FROM job_engine.jobs WHERE id = $job"), 'failed',
		'swallowed timeout: it failed: returning after the deadline is no success');
	is(attempts_of($job), '1 failed 57014', 'swallowed timeout: its attempt failed with 57014');
	is(sql("SELECT count(*) FROM effects WHERE job_id = $job"), '0',
		"swallowed timeout: the handler's writes were rolled back");
}

# ---------------------------------------------------------------------------
# d. escalation in a group
# ---------------------------------------------------------------------------

# Takes the advisory lock 140140 in a session of its own and submits a
# 'gated' job, which waits for it.  Returns the session and the job once the
# job waits; $name names that check.
sub gated_job
{
	my ($name) = @_;
	my $gate = $node->background_psql('postgres');
	$gate->query_safe('SELECT pg_advisory_lock(140140)');
	my $job = sql(q{SELECT job_engine.submit('gated')});
	ok( holds_within(
			15, qq{
SELECT EXISTS (SELECT FROM job_engine.workers w JOIN pg_locks l ON l.pid = w.pid
                WHERE w.job_id = $job AND l.locktype = 'advisory' AND NOT l.granted)}),
		$name);
	return ($gate, $job);
}

# The other executor waits, with a gated job, until the end of this part:
# resume_queue() wakes every idle executor, and two might each claim one job
# of what is meant to be one group.  The group's executor may be replaced
# meanwhile, never the held one.
my ($hold, $held) = gated_job('group: the other executor is held, so that one claim takes each group');

# Submits a quick job and then a stubborn one ($handler) to the paused group
# queue, so that one claim, by the one executor left free, takes both, the
# quick one first.  Returns their ids once the stubborn one runs, the quick
# one's handler finished.
sub group_with_stubborn
{
	my ($name, $handler) = @_;
	sql(q{SELECT job_engine.pause_queue('g')});
	my ($quick, $stubborn) = split /\|/, sql(qq{
SELECT job_engine.submit('g_quick'), job_engine.submit('$handler')});
	sql(q{SELECT job_engine.resume_queue('g')});
	ok(holds_within(15, running_on($stubborn)), "$name: the stubborn job, second of its group, runs");
	is(sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $quick"),
		sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $stubborn"),
		"$name: the quick job ran first, in the same group");
	return ($quick, $stubborn);
}

# The quick job of a group whose executor was terminated: its attempt was
# rolled back with the group and it ran again.
sub quick_job_ran_again
{
	my ($name, $quick, $pid) = @_;
	ok(holds_within(15, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $quick"),
		"$name: the quick job succeeds");
	is(attempts_of($quick), '1 failed 40000, 2 succeeded',
		"$name: its first attempt, rolled back with the group, is not recorded crashed");
	like(
		sql("SELECT message FROM job_engine.attempts WHERE job_id = $quick AND attempt = 1"),
		qr/rolled back with its group: executor process $pid was terminated/,
		"$name: ... and says why");
	is(sql("SELECT max_attempts FROM job_engine.jobs WHERE id = $quick"), '2',
		"$name: the lost attempt did not cost it one of its attempts (max_attempts 1 + 1)");
	is(sql("SELECT string_agg(attempt::text, ',') FROM effects WHERE job_id = $quick"), '2',
		"$name: its work is committed once, by its second attempt");
	return;
}

{
	my ($quick, $stubborn) = group_with_stubborn('group abort', 'g_stubborn');
	my $pid = sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $stubborn");
	is(sql("SELECT job_engine.abort($stubborn, 'stop')"), 't', 'group abort: the stubborn job is aborted');
	ok(holds_within(15, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)"),
		"group abort: its executor $pid is terminated after job_engine.abort_grace");
	quick_job_ran_again('group abort', $quick, $pid);
	is(attempts_of($stubborn), '1 aborted', 'group abort: the stubborn job stays aborted');
	is(sql("SELECT count(*) FROM effects WHERE job_id = $stubborn"), '0',
		"group abort: the stubborn job's writes were rolled back");
}

{
	my ($quick, $stubborn) = group_with_stubborn('group deadline', 'g_stubborn_deadline');
	my $pid = sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $stubborn");
	ok(holds_within(15, "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $stubborn"),
		'group deadline: the stubborn job ends after its deadline');
	is(attempts_of($stubborn), '1 failed 57014', 'group deadline: its attempt is recorded failed with 57014');
	quick_job_ran_again('group deadline', $quick, $pid);
}

$hold->query_safe('SELECT pg_advisory_unlock(140140)');
$hold->quit;
ok(holds_within(15, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $held"),
	'group: the held executor goes on once released');

is(sql("SELECT count(*) FROM job_engine.attempts WHERE outcome = 'crashed'"), '0',
	'no attempt of this test was recorded crashed');

# ---------------------------------------------------------------------------
# e. PREPARE TRANSACTION after an abort
# ---------------------------------------------------------------------------
{
	my ($gate, $job) = gated_job('prepare: the gated job runs and waits');
	# With notify on, PostgreSQL itself refuses to prepare the abort's NOTIFY.
	my ($rc, $out, $err) = $node->psql(
		'postgres', qq{
SET job_engine.notify = off;
BEGIN;
SELECT job_engine.abort($job, 'two-phase');
PREPARE TRANSACTION 't140';
SELECT 'after';
});
	like($err, qr/cannot PREPARE a transaction that aborted a running job/,
		'prepare: PREPARE TRANSACTION is refused');
	# (Only a build that let it through leaves one to clean up.)
	$node->psql('postgres', q{ROLLBACK PREPARED 't140'});
	$gate->query_safe('SELECT pg_advisory_unlock(140140)');
	ok(holds_within(15, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $job"),
		'prepare: the job was not interrupted and succeeds');
	is(attempts_of($job), '1 succeeded', 'prepare: on its first attempt');
	$gate->quit;
}

$node->stop;
done_testing();

# Deadlines are enforced, and recording an outcome never kills an executor
# (issue 12 §4; §5, last bullet).
#
#  1. job_engine.default_timeout (1 s here) applies to a handler registered
#     without a timeout: a 5 s handler fails with 57014 within 4 s.
#  2. A retryable failure of an attempt far into a job's retries, with a
#     large backoff_base: the backoff exponent is capped (at the documented
#     40), so the delay does not overflow; the executor records the job's
#     real error (40001) and goes on, the same process.  The attempt count
#     is set by hand (as a superuser) to get there without 1000 real
#     attempts.
#  3. A handler with timeout '1 second' that catches query_canceled in a
#     loop is ended within timeout + job_engine.abort_grace (1 s) + 5 s of
#     slack, recorded as timed out (failed, 57014), and its executor is
#     replaced: the next job runs.
#
# One executor, so that "its executor" is the only one.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'deadlines',
	max_workers => 1,
	extra_conf => "job_engine.default_timeout = '1s'\njob_engine.abort_grace = '1s'\n");

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((a ->> 's')::float8);
    RETURN a;
END
$$;
CREATE FUNCTION flaky(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'real error' USING ERRCODE = '40001';
END
$$;
-- Swallows every cancel, for up to 60 s.
CREATE FUNCTION stubborn(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    WHILE clock_timestamp() < t0 + interval '60 seconds' LOOP
        BEGIN
            PERFORM pg_sleep(0.1);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
    END LOOP;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('flaky', 'flaky(jsonb)', max_attempts => 2000,
                                   backoff_base => '1 year', backoff_max => '99 years');
SELECT job_engine.register_handler('stubborn', 'stubborn(jsonb)', max_attempts => 1,
                                   timeout => '1 second');
});

sub sql1 { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

ok(defined within(30, 'SELECT count(*) = 1 FROM job_engine.workers'), 'the executor runs');

###############################################################################
# 1. default_timeout
###############################################################################

my $slow = sql1(q{SELECT job_engine.submit('sleeper', '{"s": 5}')});
ok(defined within(4, "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $slow"),
	'default_timeout: a handler without its own timeout is stopped after job_engine.default_timeout (1 s)');
is(sql1("SELECT sqlstate FROM job_engine.attempts WHERE job_id = $slow"), '57014',
	'default_timeout: ... its attempt failed with 57014');
ok(defined within(10, "SELECT state <> 'running' FROM job_engine.jobs WHERE id = $slow"),
	'default_timeout: (the job has ended)');

###############################################################################
# 2. backoff overflow while recording a failure
###############################################################################

my $pid_before = sql1('SELECT pid FROM job_engine.workers');
my $flaky = sql1(q{SELECT job_engine.submit('flaky', '{}', run_at => now() + interval '1 day')});
sql1(qq{UPDATE job_engine._jobs SET attempts = 1000, run_at = now() WHERE id = $flaky});
ok(defined within(15, "SELECT state <> 'created' AND state <> 'running' FROM job_engine.jobs WHERE id = $flaky"),
	'backoff: the attempt far into the retries is recorded');
is( sql1(qq{SELECT concat_ws(' | ', outcome, sqlstate, message) FROM job_engine.attempts
          WHERE job_id = $flaky AND attempt = 1001}),
	'failed | 40001 | real error',
	'backoff: the job\'s real error is recorded, not a crash of the executor');
is( sql1(qq{SELECT state || ' ' || (run_at BETWEEN now() AND now() + interval '99 years' * 1.1)
           FROM job_engine.jobs WHERE id = $flaky}),
	'retrying true',
	'backoff: the job waits for its next attempt, at most backoff_max (plus jitter) away');
is(sql1('SELECT pid FROM job_engine.workers'), $pid_before,
	'backoff: the executor did not exit while recording the outcome');
sql1(qq{SELECT job_engine.abort($flaky, 'done')});

###############################################################################
# 3. a handler that swallows its timeout's cancel
###############################################################################

my $stubborn = sql1(q{SELECT job_engine.submit('stubborn', '{}')});
ok(defined within(30, "SELECT state = 'running' FROM job_engine.jobs WHERE id = $stubborn"),
	'stubborn: the job runs');
my $stubborn_pid = sql1("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $stubborn");
ok(defined within(7, "SELECT state <> 'running' FROM job_engine.jobs WHERE id = $stubborn"),
	'stubborn: a handler swallowing its timeout is ended within timeout + abort_grace + 5 s');
is( sql1(qq{SELECT concat_ws(' | ', j.state, a.outcome, a.sqlstate) FROM job_engine.jobs j
          JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = $stubborn}),
	'failed | failed | 57014',
	'stubborn: ... recorded as timed out (failed, 57014)');
# Unblock the executor when the deadline was not enforced (abort escalates).
sql1(qq{SELECT job_engine.abort($stubborn, 'test cleanup')});
my $next = sql1(q{SELECT job_engine.submit('sleeper', '{"s": 0}')});
ok(defined within(15, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $next"),
	'stubborn: the next job runs');
isnt(sql1("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $next"), $stubborn_pid,
	'stubborn: ... on a new executor: the one that ran the stubborn handler was replaced');

done_testing();

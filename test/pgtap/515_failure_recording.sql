-- 515_failure_recording.sql: recording a failed attempt never kills its
-- executor nor loses the job's real error (src/outcome.c), and the backoff
-- exponent is capped at 40 as documented (job_engine_internal._backoff).
--
-- A trigger on job_engine._jobs that refuses to move the t515 jobs to
-- 'retrying' makes the usual recording fail, the same way every time.
-- Objects are named t515.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(18);

DROP TRIGGER IF EXISTS t515_no_retry ON job_engine._jobs;
CALL pg_temp.drop_handlers('t515_', '0 seconds');
DELETE FROM job_engine.queues WHERE name IN ('t515', 't515_group');
DROP SCHEMA IF EXISTS t515 CASCADE;
CREATE SCHEMA t515;
CREATE TABLE t515.effects (job_id bigint);
CREATE FUNCTION t515.fail(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the real error' USING ERRCODE = '40001', DETAIL = 'What went wrong.',
                                           HINT = 'What to do.';
END
$$;
CREATE FUNCTION t515.ok(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t515.effects VALUES (job_engine.current_job_id());
    RETURN '{"ok": true}';
END
$$;
CREATE FUNCTION t515.no_retry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'retrying' AND starts_with(NEW.handler, 't515_') THEN
        RAISE EXCEPTION 'retries are refused today' USING ERRCODE = '55P99';
    END IF;
    RETURN NEW;
END
$$;
DO $$
BEGIN
    PERFORM job_engine.register_handler('t515_fail', 't515.fail(jsonb)', queue => 't515',
                                        max_attempts => 3, backoff_base => '10 ms', backoff_max => '10 ms');
    PERFORM job_engine.register_handler('t515_far', 't515.fail(jsonb)', queue => 't515',
                                        max_attempts => 3, backoff_base => '1 year', backoff_max => '1 year');
    PERFORM job_engine.register_handler('t515_ok', 't515.ok(jsonb)', queue => 't515_group',
                                        max_attempts => 1);
    PERFORM job_engine.configure_queue('t515_group', group_commit => 4);
END
$$;

-- The backoff: 2^(n-1) stops growing at n = 41 -------------------------------------------
SELECT ok(job_engine_internal._backoff(41, '1 millisecond', '100 years')
            BETWEEN interval '1 millisecond' * 2 ^ 40 AND interval '1 millisecond' * 2 ^ 40 * 1.1,
    '_backoff: attempt 41 waits backoff_base * 2^40 (plus jitter)');
SELECT ok(job_engine_internal._backoff(50, '1 millisecond', '100 years')
            BETWEEN interval '1 millisecond' * 2 ^ 40 AND interval '1 millisecond' * 2 ^ 40 * 1.1,
    '_backoff: so does attempt 50: the exponent is capped at 40');
SELECT lives_ok($$SELECT job_engine_internal._backoff(1001, '1 year', '1 year')$$,
    '_backoff: a large backoff_base at attempt 1001 does not overflow');
SELECT ok(extract(epoch FROM job_engine_internal._backoff(1001, '1 year', '1 year'))
            BETWEEN extract(epoch FROM interval '1 year') AND extract(epoch FROM interval '1 year') * 1.1,
    '_backoff: ... and waits backoff_max (plus jitter)');

-- A job on its 1001st attempt with a backoff_base of a year --------------------------------
SELECT job_engine.pause_queue('t515') IS NULL AS paused \gset
SELECT job_engine.submit('t515_far', max_attempts => 2000) AS far \gset
-- As if a thousand attempts had failed before (a superuser's shortcut).
UPDATE job_engine._jobs SET attempts = 1000 WHERE id = :far;
SELECT job_engine.resume_queue('t515') IS NULL AS resumed \gset
SELECT is(pg_temp.await_state(:far, 'retrying'), 'retrying',
    'attempt 1001: the failure is recorded and the job waits to retry');
SELECT is((SELECT outcome || ' ' || sqlstate || ' ' || message FROM job_engine.attempts
            WHERE job_id = :far AND attempt = 1001),
    'failed 40001 the real error', 'attempt 1001: with its real error');
SELECT ok((SELECT run_at BETWEEN now() + interval '360 days' AND now() + interval '1 year' * 1.1 + interval '1 day'
             FROM job_engine.jobs WHERE id = :far),
    'attempt 1001: to run again backoff_max (a year) later');
SELECT is(job_engine.abort(:far, 'enough'), true, 'attempt 1001: aborted to clean up');

-- Recording fails: the attempt keeps its real error --------------------------------------
CREATE TRIGGER t515_no_retry BEFORE UPDATE ON job_engine._jobs
    FOR EACH ROW EXECUTE FUNCTION t515.no_retry();

SELECT job_engine.submit('t515_fail') AS failing \gset
SELECT is(pg_temp.await_state(:failing, 'failed'), 'failed',
    'recording refused: the job ends failed, the retry policy could not be applied');
SELECT is(pg_temp.history(:failing), 'failed: 1 failed 40001',
    'recording refused: its attempt is recorded failed, with the handler''s SQLSTATE, not crashed');
SELECT is((SELECT message || ' | ' || detail || ' | ' || hint FROM job_engine.attempts WHERE job_id = :failing),
    'the real error | What went wrong. | What to do.',
    'recording refused: ... and the handler''s message, detail and hint');
SELECT ok((SELECT context LIKE '%retries are refused today%55P99%' FROM job_engine.attempts WHERE job_id = :failing),
    'recording refused: the context says why the failure could not be recorded as usual');
SELECT is((SELECT state FROM job_engine.workers
            WHERE pid = (SELECT worker_pid FROM job_engine.attempts WHERE job_id = :failing)), 'idle',
    'recording refused: the executor that recorded it is still there');

-- The same in a group: the other jobs of the group keep their outcome.  Both
-- wait in the paused queue, and one executor alone is free to claim when it
-- is resumed, so one claim takes them as a group.
SELECT pg_temp.hold_other_executors('t515', 515000) IS NULL AS holding \gset
SELECT ok(pg_temp.poll('pg_temp.others_held(515000)'),
    'group: every executor but one is held, so that one claim takes the group');
SELECT job_engine.register_handler('t515_fail', 't515.fail(jsonb)', queue => 't515_group',
                                   max_attempts => 3, backoff_base => '10 ms', backoff_max => '10 ms') IS NULL AS registered \gset
SELECT job_engine.pause_queue('t515_group') IS NULL AS paused \gset
CREATE TEMP TABLE ids AS
SELECT job_engine.submit('t515_fail') AS failing, job_engine.submit('t515_ok') AS ok;
SELECT job_engine.resume_queue('t515_group') IS NULL AS resumed \gset
SELECT is(pg_temp.await_state((SELECT failing FROM ids), 'failed') || ' / ' || pg_temp.history((SELECT failing FROM ids)),
    'failed / failed: 1 failed 40001',
    'group: the failing job is recorded failed with its own error');
SELECT is(pg_temp.await_state((SELECT ok FROM ids), 'succeeded') || ' / ' || pg_temp.history((SELECT ok FROM ids)),
    'succeeded / succeeded: 1 succeeded',
    'group: the other job of the group succeeds on its first attempt');
SELECT is((SELECT count(*) FROM t515.effects WHERE job_id = (SELECT ok FROM ids)), 1::bigint,
    'group: its work is committed once');
SELECT is((SELECT count(DISTINCT worker_pid) FROM job_engine.attempts
            WHERE job_id IN ((SELECT failing FROM ids), (SELECT ok FROM ids))), 1::bigint,
    'group: both ran in the one executor left free, claimed as one group');
SELECT pg_advisory_unlock(515000) AS released \gset

DROP TRIGGER t515_no_retry ON job_engine._jobs;
CALL pg_temp.drop_handlers('t515_');
DELETE FROM job_engine.queues WHERE name IN ('t515', 't515_group');
DROP SCHEMA t515 CASCADE;

SELECT * FROM finish();

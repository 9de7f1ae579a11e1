-- Delayed jobs and abort(), with workers really running: a job does not
-- start before its run_at, and abort() stops waiting and running jobs.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(25);

CALL pg_temp.drop_handlers('tap_delay', '0 seconds');
DROP SCHEMA IF EXISTS tap_delay CASCADE;
CREATE SCHEMA tap_delay;
CREATE TABLE tap_delay.side (job_id bigint);
CREATE FUNCTION tap_delay.stamp(args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('ran_at', clock_timestamp())
$$;
-- Writes a row, then sleeps: the row must vanish if the job is aborted.
CREATE FUNCTION tap_delay.long(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tap_delay.side VALUES (job_engine.current_job_id());
    PERFORM pg_sleep((args->>'seconds')::double precision);
    RETURN '"finished"';
END
$$;

SELECT job_engine.register_handler('tap_delay_stamp', 'tap_delay.stamp(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_delay_long', 'tap_delay.long(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset

-- a delayed job ----------------------------------------------------------------------
SELECT job_engine.submit('tap_delay_stamp', run_at => clock_timestamp() + interval '2 seconds') AS delayed \gset
SELECT job_engine.submit('tap_delay_stamp') AS immediate \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :immediate)),
    'a job submitted without run_at runs');
SELECT ok((SELECT clock_timestamp() >= run_at
                  OR (state = 'created' AND attempts = 0 AND started_at IS NULL)
             FROM job_engine.jobs WHERE id = :delayed),
    'a job not yet due is still waiting once a job submitted after it has run');
SELECT ok((SELECT clock_timestamp() >= run_at FROM job_engine.jobs WHERE id = :delayed)
          OR NOT EXISTS (SELECT 1 FROM job_engine.attempts WHERE job_id = :delayed),
    'and has no attempt');
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :delayed)),
    'the delayed job runs once it is due');
SELECT ok((SELECT a.started_at >= j.run_at AND (j.result->>'ran_at')::timestamptz >= j.run_at
             FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
            WHERE j.id = :delayed),
    'its attempt did not start before run_at');
SELECT is((SELECT attempts FROM job_engine.jobs WHERE id = :delayed), 1, 'it ran once');

-- aborting a waiting job ----------------------------------------------------------------
SELECT job_engine.submit('tap_delay_stamp', run_at => now() + interval '1 hour') AS waiting \gset
SELECT is(job_engine.abort(:waiting, 'no longer wanted'), true, 'abort() of a waiting job returns true');
SELECT row_eq(format($$SELECT state, abort_reason, attempts, started_at FROM job_engine.jobs WHERE id = %s$$, :waiting),
    ROW('aborted'::job_engine.job_state, 'no longer wanted'::text, 0, NULL::timestamptz),
    'the job is aborted at once with its reason, never having started');
SELECT ok((SELECT finished_at IS NOT NULL FROM job_engine.jobs WHERE id = :waiting), 'it has finished_at');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :waiting), 0::bigint, 'no attempt ran');
SELECT is(job_engine.abort(:waiting, 'again'), false, 'aborting it again returns false');

-- a job due now, aborted in the submitting transaction, never runs
BEGIN;
SELECT job_engine.submit('tap_delay_stamp') AS aborted_early \gset
SELECT ok(job_engine.abort(:aborted_early, 'changed my mind'), 'abort in the submitting transaction');
COMMIT;

-- aborting a running job --------------------------------------------------------------------
SELECT job_engine.submit('tap_delay_long', '{"seconds": 30}') AS running \gset
SELECT ok(pg_temp.wait_until(format($$SELECT EXISTS (SELECT 1 FROM job_engine.attempts a
                                                         JOIN pg_stat_activity s ON s.pid = a.worker_pid
                                                        WHERE a.job_id = %s AND a.outcome = 'running'
                                                          AND s.wait_event = 'PgSleep')$$, :running)),
    'the long job is running its handler');
SELECT (SELECT worker_pid FROM job_engine.attempts WHERE job_id = :running) AS running_pid \gset
SELECT is(job_engine.abort(:running, 'taking too long'), true, 'abort() of a running job returns true');
SELECT row_eq(format($$SELECT state, abort_reason, attempts FROM job_engine.jobs WHERE id = %s$$, :running),
    ROW('aborted'::job_engine.job_state, 'taking too long'::text, 1),
    'the running job is aborted at once with its reason');
SELECT row_eq(format($$SELECT outcome, finished_at IS NOT NULL FROM job_engine.attempts WHERE job_id = %s$$, :running),
    ROW('aborted'::job_engine.attempt_outcome, true), 'its attempt is recorded aborted');
SELECT ok(pg_temp.wait_until(format($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity
                                                          WHERE pid = %s AND wait_event = 'PgSleep')
                                        AND NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)$$,
                                    :running_pid, :running), '10 seconds'),
    'the executor stops the handler well before it would have finished');
SELECT is((SELECT count(*) FROM tap_delay.side WHERE job_id = :running), 0::bigint,
    'the work of the aborted attempt was rolled back');
SELECT is((SELECT result FROM job_engine.jobs WHERE id = :running), NULL::jsonb, 'the aborted job has no result');

-- the executor is still usable, and the aborted jobs were never retried
SELECT job_engine.submit('tap_delay_long', '{"seconds": 0}') AS after \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :after)),
    'a job submitted after the abort runs');
SELECT is((SELECT count(*) FROM tap_delay.side WHERE job_id = :after), 1::bigint, 'and commits its work');
SELECT results_eq(format($$SELECT state::text, attempts FROM job_engine.jobs WHERE id IN (%s, %s, %s) ORDER BY id$$,
                         :waiting, :aborted_early, :running),
    $$VALUES ('aborted', 0), ('aborted', 0), ('aborted', 1)$$,
    'the aborted jobs stayed aborted and were not retried');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id IN (:waiting, :aborted_early)), 0::bigint,
    'no attempt of a job aborted while waiting ever ran');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :running), 1::bigint,
    'the aborted running job has its one attempt');
SELECT is(job_engine.abort(:running, 'again'), false, 'aborting it again returns false');

CALL pg_temp.drop_handlers('tap_delay');
DROP SCHEMA tap_delay CASCADE;
SELECT * FROM finish();

-- 230_compensation.sql: register_handler(..., compensate_with)
-- (docs/architecture.md, Contract; docs/reference.md, register_handler).
-- Compensation is never automatic: only a handler that names one gets it, only
-- when a job ends failed or aborted, and never for a compensation job.

SET client_min_messages = warning;

SELECT plan(34);

\ir ../fixtures/pgtap_helpers.sql

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

CREATE SCHEMA t230;
CREATE TABLE t230.undone (job_id bigint, args jsonb);

-- args: fail (error message: the attempt fails with it), sleep (seconds).
CREATE FUNCTION t230.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF a ? 'fail' THEN
        RAISE EXCEPTION 't230 work failed: %', a ->> 'fail';
    END IF;
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::double precision, 0));
    RETURN a;
END
$$;
CREATE FUNCTION t230.undo(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t230.undone VALUES (job_engine.current_job_id(), a);
    RETURN jsonb_build_object('undone', a -> 'job_id');
END
$$;
CREATE FUNCTION t230.bad_undo(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 't230 compensation failed';
END
$$;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t230_undo', 't230.undo(jsonb)', queue => 't230');
    PERFORM job_engine.register_handler('t230_work', 't230.work(jsonb)', queue => 't230',
                                        max_attempts => 1, compensate_with => 't230_undo');
    PERFORM job_engine.register_handler('t230_retry', 't230.work(jsonb)', queue => 't230',
                                        max_attempts => 2, backoff_base => '1 second',
                                        backoff_max => '1 second', compensate_with => 't230_undo');
    PERFORM job_engine.register_handler('t230_plain', 't230.work(jsonb)', queue => 't230',
                                        max_attempts => 1);
    -- A compensation handler that itself names a compensation handler.
    PERFORM job_engine.register_handler('t230_bad_undo', 't230.bad_undo(jsonb)', queue => 't230',
                                        max_attempts => 1, compensate_with => 't230_bad_undo');
    PERFORM job_engine.register_handler('t230_work2', 't230.work(jsonb)', queue => 't230',
                                        max_attempts => 1, compensate_with => 't230_bad_undo');
END
$$;

-------------------------------------------------------------------------------
-- A failed job is compensated
-------------------------------------------------------------------------------

SELECT gen_random_uuid() AS corr1 \gset
SELECT job_engine.submit('t230_work', '{"fail": "disk full"}', correlation_id => :'corr1') AS w1 \gset
SELECT is(pg_temp.await_state(:w1, 'failed'), 'failed', 'failed: the job fails for good');
SELECT id AS c1 FROM job_engine.jobs WHERE parent_job_id = :w1 \gset
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w1), 1::bigint,
          'failed: exactly one compensation job exists when the failure is recorded');
SELECT is((SELECT handler FROM job_engine.jobs WHERE id = :c1), 't230_undo',
          'failed: the compensation job runs the compensate_with handler');
SELECT is((SELECT correlation_id FROM job_engine.jobs WHERE id = :c1), :'corr1'::uuid,
          'failed: the compensation job has the failed job''s correlation id');
SELECT is((SELECT owner FROM job_engine.jobs WHERE id = :c1), (SELECT owner FROM job_engine.jobs WHERE id = :w1),
          'failed: the compensation job has the failed job''s owner');
SELECT is((SELECT args -> 'job_id' FROM job_engine.jobs WHERE id = :c1), to_jsonb(:w1::bigint),
          'failed: compensation args name the job (job_id)');
SELECT is((SELECT args ->> 'handler' FROM job_engine.jobs WHERE id = :c1), 't230_work',
          'failed: compensation args name the handler');
SELECT is((SELECT args -> 'args' FROM job_engine.jobs WHERE id = :c1), '{"fail": "disk full"}'::jsonb,
          'failed: compensation args carry the failed job''s args');
SELECT matches((SELECT args ->> 'error' FROM job_engine.jobs WHERE id = :c1), 't230 work failed: disk full',
               'failed: compensation args carry the error');
SELECT is(pg_temp.await_state(:c1, 'succeeded'), 'succeeded', 'failed: the compensation job runs');
SELECT is((SELECT args -> 'job_id' FROM t230.undone WHERE job_id = :c1), to_jsonb(:w1::bigint),
          'failed: the compensation handler received the failed job''s id');

-------------------------------------------------------------------------------
-- Success, and handlers without compensate_with, are not compensated
-------------------------------------------------------------------------------

SELECT job_engine.submit('t230_work', '{}') AS w2 \gset
SELECT is(pg_temp.await_state(:w2, 'succeeded'), 'succeeded', 'succeeded: the job succeeds');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w2), 0::bigint,
          'succeeded: no compensation job');
SELECT job_engine.submit('t230_plain', '{"fail": "no undo"}') AS w2b \gset
SELECT is(pg_temp.await_state(:w2b, 'failed'), 'failed', 'no compensate_with: the job fails');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w2b), 0::bigint,
          'no compensate_with: no compensation job (never automatic)');

-------------------------------------------------------------------------------
-- Aborted jobs are compensated, with the reason
-------------------------------------------------------------------------------

SELECT job_engine.submit('t230_work', '{"n": 3}', run_at => now() + interval '1 hour') AS w3 \gset
SELECT is(job_engine.abort(:w3, 't230 customer cancelled'), true, 'aborted while waiting: abort returns true');
SELECT id AS c3 FROM job_engine.jobs WHERE parent_job_id = :w3 \gset
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w3), 1::bigint,
          'aborted while waiting: one compensation job, created by the abort');
SELECT is((SELECT args ->> 'reason' FROM job_engine.jobs WHERE id = :c3), 't230 customer cancelled',
          'aborted while waiting: compensation args carry the abort reason');
SELECT is((SELECT (args -> 'job_id', args -> 'args', handler)::text FROM job_engine.jobs WHERE id = :c3),
          (to_jsonb(:w3::bigint), '{"n": 3}'::jsonb, 't230_undo')::text,
          'aborted while waiting: compensation job_id, args and handler');
SELECT is(pg_temp.await_state(:c3, 'succeeded'), 'succeeded', 'aborted while waiting: the compensation job runs');

SELECT job_engine.submit('t230_work', '{"sleep": 60}') AS w4 \gset
SELECT is(pg_temp.await_state(:w4, 'running'), 'running', 'aborted while running: the job is running');
SELECT is(job_engine.abort(:w4, 't230 stop it'), true, 'aborted while running: abort returns true');
SELECT is((SELECT args ->> 'reason' FROM job_engine.jobs WHERE parent_job_id = :w4), 't230 stop it',
          'aborted while running: a compensation job carries the reason');

-------------------------------------------------------------------------------
-- Only the final failure is compensated, not a retried attempt
-------------------------------------------------------------------------------

SELECT job_engine.submit('t230_retry', '{"fail": "again"}') AS w5 \gset
SELECT is(pg_temp.await_state(:w5, 'retrying'), 'retrying', 'retry: the first attempt fails and the job retries');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w5), 0::bigint,
          'retry: no compensation while the job is retrying');
SELECT is(pg_temp.await_state(:w5, 'failed'), 'failed', 'retry: the last attempt fails');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :w5), 1::bigint,
          'retry: one compensation job once the job failed');

-------------------------------------------------------------------------------
-- Compensation jobs are not compensated
-------------------------------------------------------------------------------

SELECT job_engine.submit('t230_work2', '{"fail": "first"}') AS w6 \gset
SELECT is(pg_temp.await_state(:w6, 'failed'), 'failed', 'chain: the job fails');
SELECT ok(pg_temp.poll(format('EXISTS (SELECT 1 FROM job_engine.jobs WHERE parent_job_id = %s)', :w6)),
          'chain: a compensation job is created');
SELECT id AS c6 FROM job_engine.jobs WHERE parent_job_id = :w6 \gset
SELECT is(pg_temp.await_state(:c6, 'failed'), 'failed', 'chain: the compensation job fails too');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :c6), 0::bigint,
          'chain: the failed compensation job is not compensated, although its handler names one');
SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE correlation_id = (SELECT correlation_id FROM job_engine.jobs WHERE id = :w6)),
          2::bigint, 'chain: the correlation id links exactly the job and its compensation');

-------------------------------------------------------------------------------
-- Bad compensate_with
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.register_handler('t230_x', 't230.work(jsonb)', compensate_with => 't230_no_such')$$,
                 '42883', NULL, 'compensate_with an unknown handler is 42883');
SELECT throws_ok($$SELECT job_engine.register_handler('t230_x', 't230.work(jsonb)', compensate_with => '')$$,
                 '22023', NULL, 'an empty compensate_with is 22023');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 230_compensation') FROM job_engine._jobs
      WHERE handler LIKE 't230\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

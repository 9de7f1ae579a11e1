-- 210_idempotency.sql: submit(..., idempotency_key) (docs/reference.md,
-- submit).
--
-- A key already used by a non-terminal job (created, running or retrying) of
-- the same handler returns that job's id and creates nothing; once that job is
-- terminal the key is free again; other handlers have keys of their own.

SET client_min_messages = warning;

SELECT plan(24);

\ir ../fixtures/pgtap_helpers.sql

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

CREATE SCHEMA t210;
CREATE FUNCTION t210.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION t210.sleepy(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((a ->> 'sleep')::double precision);
    RETURN a;
END
$$;
CREATE FUNCTION t210.conflict(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 't210 conflict' USING ERRCODE = '40001';
END
$$;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t210_a', 't210.echo(jsonb)', queue => 't210_held');
    PERFORM job_engine.register_handler('t210_b', 't210.echo(jsonb)', queue => 't210_held');
    PERFORM job_engine.register_handler('t210_sleep', 't210.sleepy(jsonb)', queue => 't210_run');
    PERFORM job_engine.register_handler('t210_retry', 't210.conflict(jsonb)', queue => 't210_run',
                                        backoff_base => '1 hour', backoff_max => '1 hour');
    PERFORM job_engine.pause_queue('t210_held');
END
$$;

-------------------------------------------------------------------------------
-- A waiting ('created') job holds its key
-------------------------------------------------------------------------------

SELECT job_engine.submit('t210_a', '{"n": 1}', idempotency_key => 'k1') AS a1 \gset
SELECT count(*) AS jobs_before FROM job_engine._jobs \gset
SELECT job_engine.submit('t210_a', '{"n": 2}', idempotency_key => 'k1') AS a1_again \gset

SELECT is(:a1_again::bigint, :a1::bigint,
          'same key and handler while the first job waits: the same id is returned');
SELECT is((SELECT count(*) FROM job_engine._jobs), :jobs_before::bigint,
          'same key and handler while the first job waits: no job is created');
SELECT is((SELECT args FROM job_engine.jobs WHERE id = :a1), '{"n": 1}'::jsonb,
          'the first job keeps its own args');

SELECT job_engine.submit('t210_b', '{"n": 1}', idempotency_key => 'k1') AS b1 \gset
SELECT isnt(:b1::bigint, :a1::bigint, 'same key, another handler: another job');

SELECT job_engine.submit('t210_a', '{"n": 4}') AS plain1 \gset
SELECT job_engine.submit('t210_a', '{"n": 4}') AS plain2 \gset
SELECT isnt(:plain1::bigint, :plain2::bigint, 'without a key, equal submits are different jobs');

BEGIN;
SELECT job_engine.submit('t210_a', '{}', idempotency_key => 'k2') AS tx1 \gset
SELECT job_engine.submit('t210_a', '{}', idempotency_key => 'k2') AS tx2 \gset
COMMIT;
SELECT is(:tx2::bigint, :tx1::bigint, 'same key twice in one transaction: the same id');

BEGIN;
SELECT job_engine.submit('t210_a', '{}', idempotency_key => 'k3') AS rolled_back \gset
ROLLBACK;
SELECT job_engine.submit('t210_a', '{}', idempotency_key => 'k3') AS after_rollback \gset
SELECT ok(:after_rollback::bigint <> :rolled_back::bigint
          AND EXISTS (SELECT 1 FROM job_engine.jobs WHERE id = :after_rollback),
          'a key of a rolled-back submit is free: a new job is created');

-------------------------------------------------------------------------------
-- A running job holds its key
-------------------------------------------------------------------------------

SELECT job_engine.submit('t210_sleep', '{"sleep": 60}', idempotency_key => 'k1') AS s1 \gset
SELECT is(pg_temp.await_state(:s1, 'running'), 'running', 'the sleeping job is running');
SELECT is(job_engine.submit('t210_sleep', '{"sleep": 0}', idempotency_key => 'k1'), :s1::bigint,
          'same key and handler while the first job runs: the same id is returned');

-------------------------------------------------------------------------------
-- A retrying job holds its key
-------------------------------------------------------------------------------

SELECT job_engine.submit('t210_retry', '{}', idempotency_key => 'k1') AS r1 \gset
SELECT is(pg_temp.await_state(:r1, 'retrying'), 'retrying', 'the conflicting job is retrying');
SELECT is(job_engine.submit('t210_retry', '{}', idempotency_key => 'k1'), :r1::bigint,
          'same key and handler while the first job is retrying: the same id is returned');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE handler = 't210_retry'), 1::bigint,
          'no second retrying-handler job was created');

-------------------------------------------------------------------------------
-- A terminal job frees its key
-------------------------------------------------------------------------------

SELECT job_engine.resume_queue('t210_held') IS NULL AS resumed \gset
SELECT is(pg_temp.await_state(:a1, 'succeeded'), 'succeeded', 'the first job succeeds once its queue runs');
SELECT job_engine.submit('t210_a', '{"n": 3}', idempotency_key => 'k1') AS a2 \gset
SELECT isnt(:a2::bigint, :a1::bigint, 'after the first job succeeded the same key creates a new job');
SELECT is((SELECT args FROM job_engine.jobs WHERE id = :a2), '{"n": 3}'::jsonb,
          'the new job has the new args');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE handler = 't210_a' AND idempotency_key = 'k1'),
          2::bigint, 'two jobs have used key k1 of handler t210_a');
SELECT is(pg_temp.await_state(:a2, 'succeeded'), 'succeeded', 'the new job runs too');

SELECT is(job_engine.abort(:s1, 't210 done waiting'), true, 'the running job is aborted');
SELECT job_engine.submit('t210_sleep', '{"sleep": 0}', idempotency_key => 'k1') AS s2 \gset
SELECT isnt(:s2::bigint, :s1::bigint, 'after the first job was aborted the same key creates a new job');
SELECT is(pg_temp.await_state(:s2, 'succeeded'), 'succeeded', 'that new job runs');

SELECT is(job_engine.abort(:r1, 't210 done waiting'), true, 'the retrying job is aborted');
SELECT job_engine.submit('t210_retry', '{}', idempotency_key => 'k1') AS r2 \gset
SELECT isnt(:r2::bigint, :r1::bigint, 'after a retrying job was aborted the same key creates a new job');
SELECT is(job_engine.abort(:r2, 't210 cleanup'), true, 'cleanup: the new conflicting job is aborted');

-------------------------------------------------------------------------------
-- Bad keys
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.submit('t210_a', '{}', idempotency_key => '')$$,
                 '22023', NULL, 'an empty idempotency_key is 22023');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 210_idempotency') FROM job_engine._jobs
      WHERE handler LIKE 't210\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

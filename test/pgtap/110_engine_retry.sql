-- Failures and the retry policy, with workers really running the jobs:
-- what each failed attempt records, which errors are retried, the visible
-- retrying state and the backoff between attempts.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(37);

CALL pg_temp.drop_handlers('tap_retry', '0 seconds');
DROP SCHEMA IF EXISTS tap_retry CASCADE;
CREATE SCHEMA tap_retry;
CREATE TABLE tap_retry.side (job_id bigint, attempt integer);

-- Writes a row, then fails with everything an error can carry.
CREATE FUNCTION tap_retry.boom(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tap_retry.side VALUES (job_engine.current_job_id(),
                                       (job_engine.context()->>'attempt')::integer);
    RAISE EXCEPTION 'boom %', args->>'n'
        USING ERRCODE = 'P0001', DETAIL = 'the detail of boom', HINT = 'the hint of boom';
END
$$;
-- Fails with the SQLSTATE given in args.
CREATE FUNCTION tap_retry.raise_code(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'failing with %', args->>'code' USING ERRCODE = args->>'code';
END
$$;
CREATE FUNCTION tap_retry.div0(args jsonb) RETURNS integer LANGUAGE sql AS $$ SELECT 1 / 0 $$;
CREATE FUNCTION tap_retry.undefined_table(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'SELECT * FROM tap_retry.no_such_table';
    RETURN NULL;
END
$$;
-- Fails at its first attempt only.
CREATE FUNCTION tap_retry.flaky(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (job_engine.context()->>'attempt')::integer = 1 THEN
        RAISE EXCEPTION 'first attempt fails' USING ERRCODE = '40001';
    END IF;
    RETURN jsonb_build_object('attempt', (job_engine.context()->>'attempt')::integer);
END
$$;

-- A failing handler: every attempt recorded in full -------------------------------------------
SELECT job_engine.register_handler('tap_retry_boom', 'tap_retry.boom(jsonb)', max_attempts => 3,
    backoff_base => '10 ms', backoff_max => '1 second') IS NULL AS registered \gset
SELECT job_engine.submit('tap_retry_boom', '{"n": 7}') AS boom \gset
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal('{tap_retry_boom}')$$), 'the failing job finishes');
SELECT row_eq(format($$SELECT state, attempts, result, last_error FROM job_engine.jobs WHERE id = %s$$, :boom),
    ROW('failed'::job_engine.job_state, 3, NULL::jsonb, 'boom 7 (SQLSTATE P0001, attempt 3)'::text),
    'after 3 attempts the job is failed, with the last error summarised');
SELECT results_eq(format($$SELECT attempt, outcome::text, sqlstate, message, detail, hint
                             FROM job_engine.attempts WHERE job_id = %s ORDER BY attempt$$, :boom),
    $$VALUES (1, 'failed', 'P0001', 'boom 7', 'the detail of boom', 'the hint of boom'),
             (2, 'failed', 'P0001', 'boom 7', 'the detail of boom', 'the hint of boom'),
             (3, 'failed', 'P0001', 'boom 7', 'the detail of boom', 'the hint of boom')$$,
    'each attempt records sqlstate, message, detail and hint');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :boom
            AND context LIKE '%PL/pgSQL function tap_retry.boom(jsonb)%RAISE%'), 3::bigint,
    'each attempt records the error context');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :boom
            AND worker_pid IS NOT NULL AND finished_at >= started_at), 3::bigint,
    'each attempt records its worker and its end');
SELECT ok((SELECT bool_and(b.started_at >= a.finished_at + interval '10 ms')
             FROM job_engine.attempts a JOIN job_engine.attempts b
               ON b.job_id = a.job_id AND b.attempt = a.attempt + 1
            WHERE a.job_id = :boom),
    'attempts are spaced by at least backoff_base');
SELECT ok((SELECT b.started_at >= a.finished_at + interval '20 ms'
             FROM job_engine.attempts a JOIN job_engine.attempts b
               ON b.job_id = a.job_id AND b.attempt = a.attempt + 1
            WHERE a.job_id = :boom AND a.attempt = 2),
    'the delay doubles before the third attempt');
SELECT is((SELECT count(*) FROM tap_retry.side WHERE job_id = :boom), 0::bigint,
    'the writes of failed attempts were rolled back');

-- Which errors are retried ----------------------------------------------------------------------
SELECT job_engine.register_handler('tap_retry_div0', 'tap_retry.div0(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_undef', 'tap_retry.undefined_table(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_default', 'tap_retry.raise_code(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_only40001', 'tap_retry.raise_code(jsonb)', max_attempts => 3,
    backoff_base => '10 ms', retry_on => '{40001}') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_class40', 'tap_retry.raise_code(jsonb)', max_attempts => 3,
    backoff_base => '10 ms', retry_on => '{40}') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_none', 'tap_retry.raise_code(jsonb)', max_attempts => 3,
    backoff_base => '10 ms', retry_on => '{}') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_retry_flaky', 'tap_retry.flaky(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset

CREATE TEMP TABLE tap_retry_cases (handler text, args jsonb, sqlstate text, attempts integer, why text);
INSERT INTO tap_retry_cases VALUES
    ('tap_retry_div0', '{}', '22012', 1, 'retry_on NULL: division by zero (class 22) is permanent'),
    ('tap_retry_undef', '{}', '42P01', 1, 'retry_on NULL: an undefined table (class 42) is permanent'),
    ('tap_retry_default', '{"code": "22P02"}', '22P02', 1, 'retry_on NULL: invalid text representation (class 22) is permanent'),
    ('tap_retry_default', '{"code": "42501"}', '42501', 1, 'retry_on NULL: insufficient privilege (class 42) is permanent'),
    ('tap_retry_default', '{"code": "40001"}', '40001', 3, 'retry_on NULL: a serialization failure is retried'),
    ('tap_retry_default', '{"code": "40P01"}', '40P01', 3, 'retry_on NULL: a deadlock is retried'),
    ('tap_retry_default', '{"code": "P0001"}', 'P0001', 3, 'retry_on NULL: a raised exception is retried'),
    ('tap_retry_only40001', '{"code": "P0001"}', 'P0001', 1, 'retry_on {40001}: P0001 is not retried'),
    ('tap_retry_only40001', '{"code": "40P01"}', '40P01', 1, 'retry_on {40001}: another code of class 40 is not retried'),
    ('tap_retry_only40001', '{"code": "40001"}', '40001', 3, 'retry_on {40001}: 40001 is retried'),
    ('tap_retry_class40', '{"code": "40P01"}', '40P01', 3, 'retry_on {40}: a code of class 40 is retried'),
    ('tap_retry_class40', '{"code": "22012"}', '22012', 1, 'retry_on {40}: a code of another class is not retried'),
    ('tap_retry_none', '{"code": "40001"}', '40001', 1, 'retry_on {}: nothing is retried');
ALTER TABLE tap_retry_cases ADD COLUMN job bigint;
UPDATE tap_retry_cases SET job = job_engine.submit(handler, args);

SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal(ARRAY(SELECT handler FROM tap_retry_cases))$$),
    'the classification jobs finish');
SELECT is((SELECT format('%s after %s attempt(s), each %s', j.state, j.attempts,
                         string_agg(DISTINCT a.sqlstate, ','))
             FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
            WHERE j.id = c.job GROUP BY j.state, j.attempts),
          format('failed after %s attempt(s), each %s', c.attempts, c.sqlstate),
          c.why)
  FROM tap_retry_cases c ORDER BY c.handler, c.args::text;

SELECT job_engine.submit('tap_retry_flaky') AS flaky \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :flaky)),
    'a job failing once succeeds at its second attempt');
SELECT results_eq(format($$SELECT attempt, outcome::text, sqlstate FROM job_engine.attempts
                            WHERE job_id = %s ORDER BY attempt$$, :flaky),
    $$VALUES (1, 'failed', '40001'), (2, 'succeeded', NULL)$$,
    'its attempts are one failure then one success');
SELECT row_eq(format($$SELECT attempts, result FROM job_engine.jobs WHERE id = %s$$, :flaky),
    ROW(2, '{"attempt": 2}'::jsonb),
    'the job has two attempts and the result of the successful one');

-- max_attempts given at submit overrides the handler's
SELECT job_engine.submit('tap_retry_default', '{"code": "40001"}', max_attempts => 2) AS two \gset
SELECT job_engine.submit('tap_retry_default', '{"code": "40001"}', max_attempts => 1) AS one \gset
SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = 2 FROM job_engine.jobs
                                       WHERE id IN (%s, %s) AND state = 'failed'$$, :two, :one)),
    'jobs with their own max_attempts finish');
SELECT results_eq(format($$SELECT attempts FROM job_engine.jobs WHERE id IN (%s, %s) ORDER BY id$$, :two, :one),
    ARRAY[2, 1], 'max_attempts of submit is obeyed');

-- The retrying state is visible between attempts ---------------------------------------------
SELECT job_engine.register_handler('tap_retry_slow', 'tap_retry.raise_code(jsonb)', max_attempts => 3,
    backoff_base => '1.5 seconds', backoff_max => '1.5 seconds') IS NULL AS registered \gset
SELECT job_engine.submit('tap_retry_slow', '{"code": "40001"}') AS slow \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'retrying' FROM job_engine.jobs WHERE id = %s$$, :slow)),
    'after a failed attempt the job is retrying');
SELECT row_eq(format($$SELECT state, attempts, started_at IS NOT NULL, finished_at, last_error
                         FROM job_engine.jobs WHERE id = %s$$, :slow),
    ROW('retrying'::job_engine.job_state, 1, true, NULL::timestamptz,
        'failing with 40001 (SQLSTATE 40001, attempt 1)'::text),
    'a retrying job has one attempt, the error, and no end');
SELECT ok((SELECT run_at > now() FROM job_engine.jobs WHERE id = :slow),
    'its run_at is in the future');
SELECT ok((SELECT j.run_at - a.finished_at BETWEEN interval '1.5 seconds' AND interval '1.7 seconds'
             FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = 1
            WHERE j.id = :slow),
    'run_at is backoff_base (plus at most 10% jitter) after the failed attempt');
SELECT ok((SELECT clock_timestamp() >= run_at FROM job_engine.jobs WHERE id = :slow)
          OR (SELECT count(*) = 1 FROM job_engine.attempts WHERE job_id = :slow),
    'no second attempt starts before run_at');
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'retrying' AND attempts = 2
                                        FROM job_engine.jobs WHERE id = %s$$, :slow)),
    'the second attempt runs and fails');
SELECT ok((SELECT a2.started_at >= a1.finished_at + interval '1.5 seconds'
             FROM job_engine.attempts a1 JOIN job_engine.attempts a2
               ON a2.job_id = a1.job_id AND a2.attempt = 2
            WHERE a1.job_id = :slow AND a1.attempt = 1),
    'the second attempt did not start before its run_at');
SELECT ok((SELECT j.run_at - a.finished_at BETWEEN interval '1.5 seconds' AND interval '1.7 seconds'
             FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = 2
            WHERE j.id = :slow),
    'the doubled delay is capped by backoff_max');
SELECT ok(job_engine.abort(:slow, 'enough'), 'a retrying job can be aborted');
SELECT row_eq(format($$SELECT state, attempts, abort_reason FROM job_engine.jobs WHERE id = %s$$, :slow),
    ROW('aborted'::job_engine.job_state, 2, 'enough'::text), 'it is aborted and not retried');

CALL pg_temp.drop_handlers('tap_retry');
DROP SCHEMA tap_retry CASCADE;
SELECT * FROM finish();

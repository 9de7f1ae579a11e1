-- Workers really run jobs: many jobs run exactly once, and handler results
-- of every return type are stored.  Jobs only run once their submitting
-- transaction commits, so this file commits as it goes, waits with bounded
-- polling, and cleans up after itself.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(23);

CALL pg_temp.drop_handlers('tap_run', '0 seconds');
DROP SCHEMA IF EXISTS tap_run CASCADE;
CREATE SCHEMA tap_run;
CREATE TABLE tap_run.hits (job_id bigint, n integer, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION tap_run.hit(args jsonb) RETURNS void LANGUAGE sql
AS $$ INSERT INTO tap_run.hits (job_id, n) VALUES (job_engine.current_job_id(), (args->>'n')::integer) $$;
CREATE FUNCTION tap_run.echo(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_run.int(args jsonb) RETURNS integer LANGUAGE sql AS $$ SELECT (args->>'n')::integer * 2 $$;
CREATE FUNCTION tap_run.text(args jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'it''s "text"' $$;
CREATE FUNCTION tap_run.bool(args jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION tap_run.numeric(args jsonb) RETURNS numeric LANGUAGE sql AS $$ SELECT 1.50 $$;
CREATE FUNCTION tap_run.intarray(args jsonb) RETURNS integer[] LANGUAGE sql AS $$ SELECT ARRAY[1, 2, 3] $$;
CREATE FUNCTION tap_run.void(args jsonb) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE FUNCTION tap_run.null_jsonb(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION tap_run.null_int(args jsonb) RETURNS integer LANGUAGE sql AS $$ SELECT NULL::integer $$;
CREATE FUNCTION tap_run.json_null(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT 'null'::jsonb $$;
CREATE TYPE tap_run.pair AS (a integer, b text);
CREATE FUNCTION tap_run.composite(args jsonb) RETURNS tap_run.pair LANGUAGE sql AS $$ SELECT ROW(1, 'x')::tap_run.pair $$;

SELECT job_engine.register_handler('tap_run_hit', 'tap_run.hit(jsonb)', max_attempts => 3) IS NULL AS registered \gset

-- 200 jobs, exactly once each -----------------------------------------------------------
SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_run_hit',
              ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 200) g))),
    200::bigint, 'submit_many returns 200 ids');

SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal('{tap_run_hit}')
                                  AND (SELECT count(*) FROM job_engine.jobs WHERE handler = 'tap_run_hit') = 200$$),
    'the 200 jobs finish');
SELECT is((SELECT count(*) FROM tap_run.hits), 200::bigint, 'the handler ran 200 times');
SELECT is((SELECT count(DISTINCT job_id) FROM tap_run.hits), 200::bigint, 'once for each job');
SELECT set_eq($$SELECT n FROM tap_run.hits$$, $$SELECT generate_series(1, 200)$$,
    'each job got its own args');
SELECT set_eq($$SELECT job_id FROM tap_run.hits$$,
    $$SELECT id FROM job_engine.jobs WHERE handler = 'tap_run_hit'$$,
    'current_job_id() inside the handler is the job''s id');
SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE handler = 'tap_run_hit' AND state = 'succeeded' AND attempts = 1 AND result IS NULL
              AND started_at IS NOT NULL AND finished_at >= started_at AND duration >= '0'
              AND last_error IS NULL),
    200::bigint, 'every job succeeded at its first attempt with timestamps set');
SELECT is((SELECT count(*) FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id
            WHERE j.handler = 'tap_run_hit'),
    200::bigint, 'one attempt row per job');
SELECT is((SELECT count(*) FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id
            WHERE j.handler = 'tap_run_hit' AND a.attempt = 1 AND a.outcome = 'succeeded'
              AND a.worker_pid IS NOT NULL AND a.finished_at >= a.started_at
              AND a.sqlstate IS NULL AND a.message IS NULL),
    200::bigint, 'each attempt is recorded succeeded with its worker');
SELECT ok((SELECT bool_and(h.at BETWEEN a.started_at AND a.finished_at)
             FROM tap_run.hits h JOIN job_engine.attempts a ON a.job_id = h.job_id),
    'each handler ran within its attempt');

-- results -------------------------------------------------------------------------------
CREATE TEMP TABLE tap_run_cases (handler text, fn text, expected jsonb);
INSERT INTO tap_run_cases VALUES
    ('tap_run_echo', 'tap_run.echo(jsonb)', '{"n": 21, "nested": {"a": [1, "two", null]}}'),
    ('tap_run_int', 'tap_run.int(jsonb)', '42'),
    ('tap_run_text', 'tap_run.text(jsonb)', '"it''s \"text\""'),
    ('tap_run_bool', 'tap_run.bool(jsonb)', 'true'),
    ('tap_run_numeric', 'tap_run.numeric(jsonb)', '1.50'),
    ('tap_run_intarray', 'tap_run.intarray(jsonb)', '[1, 2, 3]'),
    ('tap_run_composite', 'tap_run.composite(jsonb)', '{"a": 1, "b": "x"}'),
    ('tap_run_void', 'tap_run.void(jsonb)', NULL),
    ('tap_run_null_jsonb', 'tap_run.null_jsonb(jsonb)', NULL),
    ('tap_run_null_int', 'tap_run.null_int(jsonb)', NULL),
    ('tap_run_json_null', 'tap_run.json_null(jsonb)', 'null');
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM tap_run_cases LOOP
        PERFORM job_engine.register_handler(c.handler, c.fn::regprocedure, max_attempts => 1);
        PERFORM job_engine.submit(c.handler, '{"n": 21, "nested": {"a": [1, "two", null]}}');
    END LOOP;
END
$$;
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal(ARRAY(SELECT handler FROM tap_run_cases))$$),
    'the result jobs finish');
SELECT is((SELECT j.result FROM job_engine.jobs j WHERE j.handler = c.handler AND j.state = 'succeeded'),
          c.expected,
          format('%s: result is %s', c.fn, coalesce(c.expected::text, 'SQL NULL')))
  FROM tap_run_cases c ORDER BY c.handler;
SELECT is((SELECT result IS NULL FROM job_engine.jobs WHERE handler = 'tap_run_json_null'), false,
    'a JSON null result is not confused with no result');

CALL pg_temp.drop_handlers('tap_run');
DROP SCHEMA tap_run CASCADE;
SELECT * FROM finish();

-- 280_handler_function.sql: a handler names its function by signature
-- (issue 13, item 3; docs/architecture.md §7: no reg* column pg_upgrade refuses).
--
-- * job_engine.handlers.fn is text, the schema-qualified signature, not a
--   regprocedure (pg_upgrade refuses a cluster with one in a table).
-- * DROP FUNCTION of a handler's function is allowed; submit then refuses
--   new jobs of the handler (42883, with a hint) instead of accepting jobs
--   that can only fail, and a waiting job claimed meanwhile fails with 42883.
-- * Re-creating the function with the same signature repairs the handler:
--   submit accepts again, and waiting jobs run the new function, also on an
--   executor that ran the old one (its cache of resolved functions follows
--   the catalog).  Renaming the function is like dropping it.
--
-- Jobs really run: this file commits as it goes and polls for outcomes.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(29);

CALL pg_temp.drop_handlers('t280_', '0 seconds');
DROP SCHEMA IF EXISTS t280 CASCADE;
DROP SCHEMA IF EXISTS t280_moved CASCADE;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't280_app') THEN
        CREATE ROLE t280_app;
    END IF;
END
$$;
CREATE SCHEMA t280;
-- The message and hint of the error `sql` raises (NULL when it raises none).
CREATE FUNCTION pg_temp.error_of(sql text, OUT message text, OUT hint text) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
GRANT USAGE ON SCHEMA t280 TO t280_app;
CREATE FUNCTION t280.greet(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '"v1"'::jsonb $$;

-- The column ------------------------------------------------------------------------------
SELECT is((SELECT count(*) FROM pg_attribute a
            WHERE a.attrelid IN (SELECT c.oid FROM pg_class c
                                  WHERE c.relnamespace = 'job_engine'::regnamespace
                                    AND c.relkind IN ('r', 'p'))
              AND a.attnum > 0 AND NOT a.attisdropped
              AND a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype,
                                 'regoperator'::regtype, 'regconfig'::regtype,
                                 'regdictionary'::regtype, 'regnamespace'::regtype,
                                 'regcollation'::regtype)),
    0::bigint, 'no table of job_engine has a reg* column that pg_upgrade refuses');
SELECT col_type_is('job_engine', 'handlers', 'fn', 'text',
    'handlers.fn is text (the function''s signature)');

SET search_path = t280, public;
SELECT job_engine.register_handler('t280_greet', 'greet(jsonb)', queue => 't280_q', max_attempts => 1);
RESET search_path;
SELECT is((SELECT fn FROM job_engine.handlers WHERE name = 't280_greet'), 't280.greet(jsonb)',
    'handlers.fn holds the schema-qualified signature, whatever the search_path at registration');
SELECT is((SELECT fn::regprocedure FROM job_engine.handlers WHERE name = 't280_greet'),
          't280.greet(jsonb)'::regprocedure,
    'handlers.fn casts back to the function');

-- A run before the drop: the executors resolve (and may cache) the function.
SELECT job_engine.pause_queue('t280_q');
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS first_job \gset
RESET ROLE;
SELECT job_engine.resume_queue('t280_q');
SELECT is(pg_temp.await_state(:first_job, 'succeeded'), 'succeeded', 'the first job succeeds');
SELECT is((SELECT result FROM job_engine.jobs WHERE id = :first_job), '"v1"'::jsonb,
    'it ran the function');

-- Drop the function while a job waits -----------------------------------------------------------
SELECT job_engine.pause_queue('t280_q');
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS waiting_job \gset
RESET ROLE;
SELECT lives_ok($$DROP FUNCTION t280.greet(jsonb)$$,
    'DROP FUNCTION of a registered handler''s function is allowed');
SET ROLE t280_app;
SELECT throws_ok($$SELECT job_engine.submit('t280_greet')$$, '42883', NULL,
    'submit: a handler whose function was dropped takes no new job (42883)');
SELECT throws_ok($$SELECT job_engine.submit_many('t280_greet', ARRAY['{}'::jsonb])$$, '42883', NULL,
    'submit_many: likewise (42883)');
SELECT throws_ok(format($$SELECT job_engine.resubmit(%s)$$, :first_job), '42883', NULL,
    'resubmit: likewise (42883)');
RESET ROLE;
SELECT isnt((pg_temp.error_of($$SELECT job_engine.submit('t280_greet')$$)).hint, NULL,
    'submit: the refusal has a hint');
SELECT ok((pg_temp.error_of($$SELECT job_engine.submit('t280_greet')$$)).message LIKE '%t280.greet(jsonb)%',
    'submit: the message names the missing function');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler = 't280_greet'), 2::bigint,
    'no job was created by the refused calls');

-- Re-create it: the handler works again ------------------------------------------------------
CREATE FUNCTION t280.greet(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '"v2"'::jsonb $$;
SET ROLE t280_app;
SELECT lives_ok($$SELECT job_engine.submit('t280_greet')$$,
    'submit: re-creating the function with the same signature repairs the handler');
RESET ROLE;
SELECT job_engine.resume_queue('t280_q');
SELECT is(pg_temp.await_state(:waiting_job, 'succeeded'), 'succeeded',
    'the job that waited through the drop runs the re-created function');
SELECT is((SELECT result FROM job_engine.jobs WHERE id = :waiting_job), '"v2"'::jsonb,
    'and gets its result');
SELECT ok(pg_temp.poll($$pg_temp.all_terminal('{t280_greet}')$$),
    'every job of the handler ends');
SELECT is((SELECT array_agg(DISTINCT state::text) FROM job_engine.jobs WHERE handler = 't280_greet'),
          '{succeeded}', 'all of them succeeded');

-- A job claimed while the function is gone fails with 42883 ---------------------------------------
SELECT job_engine.pause_queue('t280_q');
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS orphan_job \gset
RESET ROLE;
DROP FUNCTION t280.greet(jsonb);
SELECT job_engine.resume_queue('t280_q');
SELECT is(pg_temp.await_state(:orphan_job, 'failed'), 'failed',
    'a job claimed while its function is gone fails');
SELECT is((SELECT sqlstate FROM job_engine.attempts WHERE job_id = :orphan_job), '42883',
    'with 42883');
SELECT ok((SELECT message LIKE '%t280.greet(jsonb)%' AND hint IS NOT NULL
             FROM job_engine.attempts WHERE job_id = :orphan_job),
    'its message names the function, and it has a hint');

-- Renaming the function (or its schema) is like dropping it ---------------------------------------
CREATE FUNCTION t280.greet(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '"v3"'::jsonb $$;
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS v3_job \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:v3_job, 'succeeded'), 'succeeded', 'the third version runs');
SELECT job_engine.pause_queue('t280_q');
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS renamed_job \gset
RESET ROLE;
ALTER FUNCTION t280.greet(jsonb) RENAME TO greet_old;
SELECT job_engine.resume_queue('t280_q');
SELECT is(pg_temp.await_state(:renamed_job, 'failed'), 'failed',
    'a job of a renamed function fails, even on an executor that ran it before');
ALTER SCHEMA t280 RENAME TO t280_moved;
ALTER FUNCTION t280_moved.greet_old(jsonb) RENAME TO greet;
SET ROLE t280_app;
SELECT throws_ok($$SELECT job_engine.submit('t280_greet')$$, '42883', NULL,
    'submit: a function whose schema was renamed is not found (42883)');
RESET ROLE;

-- EXECUTE is still checked on the resolved function ------------------------------------------------
ALTER SCHEMA t280_moved RENAME TO t280;
REVOKE EXECUTE ON FUNCTION t280.greet(jsonb) FROM PUBLIC;
SET ROLE t280_app;
SELECT throws_ok($$SELECT job_engine.submit('t280_greet')$$, '42501', NULL,
    'submit: a caller without EXECUTE on the re-created function is refused (42501)');
RESET ROLE;

-- USAGE on the function's schema is checked too -----------------------------------------------
-- A registered handler is no way around the schema's privileges: its owner
-- may run the job only if it could call the function by that name itself.
GRANT EXECUTE ON FUNCTION t280.greet(jsonb) TO t280_app;
REVOKE USAGE ON SCHEMA t280 FROM t280_app;
SET ROLE t280_app;
SELECT throws_ok($$SELECT job_engine.submit('t280_greet')$$, '42501', NULL,
    'submit: a caller without USAGE on the function''s schema is refused (42501)');
SELECT matches((pg_temp.error_of($$SELECT job_engine.submit('t280_greet')$$)).hint, 'GRANT USAGE',
    'submit: the hint says which grant is missing');
RESET ROLE;
GRANT USAGE ON SCHEMA t280 TO t280_app;
SELECT job_engine.pause_queue('t280_q');
SET ROLE t280_app;
SELECT job_engine.submit('t280_greet') AS usage_job \gset
RESET ROLE;
REVOKE USAGE ON SCHEMA t280 FROM t280_app;
SELECT job_engine.resume_queue('t280_q');
SELECT is(pg_temp.await_state(:usage_job, 'failed'), 'failed',
    'a job whose owner lost USAGE on the schema after submit fails');
SELECT is((SELECT sqlstate FROM job_engine.attempts WHERE job_id = :usage_job), '42501',
    '... with 42501, checked at run time');

CALL pg_temp.drop_handlers('t280_', '0 seconds');
DROP SCHEMA t280 CASCADE;

SELECT * FROM finish();

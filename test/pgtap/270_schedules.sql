-- 270_schedules.sql: schedule and unschedule (docs/reference.md, Schedules).
--
-- pg_cron runs in one database only (cron.database_name = postgres in the
-- test cluster), so it is not installed in pgtap_test: here schedule() must
-- fail clearly, naming the database to schedule from.  Recurring jobs through pg_cron need the postgres database
-- and are not exercised by this file.

SET client_min_messages = warning;

SELECT plan(24);

-- The hint of the error raised by `sql` (NULL if it succeeds).
CREATE FUNCTION pg_temp.error_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN hint;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je270_plain') THEN
        CREATE ROLE je270_plain;
    END IF;
END
$$;

CREATE SCHEMA t270;
CREATE FUNCTION t270.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
REVOKE ALL ON FUNCTION t270.echo(jsonb) FROM PUBLIC;
DO $$
BEGIN
    PERFORM job_engine.register_handler('t270_echo', 't270.echo(jsonb)', queue => 't270');
END
$$;

SELECT ok(NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'),
          'pg_cron is not installed in this database');

-------------------------------------------------------------------------------
-- Without pg_cron: a clear error
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.schedule('t270_every_minute', '* * * * *', 't270_echo')$$,
                 '55000', NULL, 'schedule: without pg_cron it is 55000');
SELECT matches(pg_temp.error_hint($$SELECT job_engine.schedule('t270_every_minute', '* * * * *', 't270_echo')$$),
               'pg_cron',
               'schedule: the hint says how to get pg_cron');
SELECT is(pg_temp.error_hint($$SELECT job_engine.schedule('t270_every_minute', '* * * * *', 't270_echo')$$),
          format('pg_cron runs in database %s: make and remove the schedules of this database there, with job_engine.schedule(..., database => %L).',
                 current_setting('cron.database_name'), current_database()),
          'schedule: the hint names pg_cron''s database and the database argument');
SELECT throws_ok($$SELECT job_engine.schedule('t270_every_minute', '* * * * *', 't270_echo', '{"n": 1}')$$,
                 '55000', NULL, 'schedule: with args, without pg_cron, it is 55000');
SELECT throws_ok($$SELECT job_engine.unschedule('t270_every_minute')$$,
                 '55000', NULL, 'unschedule: without pg_cron it is 55000');
SELECT isnt(pg_temp.error_hint($$SELECT job_engine.unschedule('t270_every_minute')$$), NULL,
            'unschedule: the error has a hint');

-------------------------------------------------------------------------------
-- Bad input (checked before pg_cron is looked for)
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.schedule(NULL, '* * * * *', 't270_echo')$$,
                 '22004', NULL, 'schedule: NULL schedule_name is 22004');
SELECT throws_ok($$SELECT job_engine.schedule('', '* * * * *', 't270_echo')$$,
                 '22023', NULL, 'schedule: empty schedule_name is 22023');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', NULL, 't270_echo')$$,
                 '22004', NULL, 'schedule: NULL cron is 22004');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '', 't270_echo')$$,
                 '22023', NULL, 'schedule: empty cron is 22023');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '* * * * *', NULL)$$,
                 '22004', NULL, 'schedule: NULL handler is 22004');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '* * * * *', '')$$,
                 '22023', NULL, 'schedule: empty handler is 22023');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '* * * * *', 't270_no_such_handler')$$,
                 '42883', NULL, 'schedule: an unknown handler is 42883');
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '* * * * *', 't270_echo', NULL)$$,
                 '22004', NULL, 'schedule: NULL args is 22004');
SELECT throws_ok($$SELECT job_engine.unschedule(NULL)$$,
                 '22004', NULL, 'unschedule: NULL is 22004');
SELECT throws_ok($$SELECT job_engine.unschedule('')$$,
                 '22023', NULL, 'unschedule: empty is 22023');

SET ROLE je270_plain;
SELECT throws_ok($$SELECT job_engine.schedule('t270_s', '* * * * *', 't270_echo')$$,
                 '42501', NULL, 'schedule: a role without EXECUTE on the handler''s function gets 42501');
RESET ROLE;

SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler = 't270_echo'), 0::bigint,
          'schedule: the refused calls submitted nothing');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cron'),
          'schedule: the refused calls did not create pg_cron objects');

-- The schedules view reads pg_cron's database's cron.job: empty here.
SELECT is((SELECT count(*) FROM job_engine.schedules), 0::bigint,
          'schedules: the view is empty where pg_cron is not installed');

-- What a schedule's command runs in the database it was made for.
CREATE TEMP TABLE t270_job AS
SELECT job_engine.submit_from_schedule('t270_nightly', 't270_echo', '{"n": 2}') AS id;
SELECT is((SELECT j.schedule || ' ' || j.handler || ' ' || j.args::text
             FROM job_engine.jobs j JOIN t270_job USING (id)),
          't270_nightly t270_echo {"n": 2}',
          'submit_from_schedule: submits the handler with the args, the job naming the schedule');
SELECT throws_ok($$SELECT job_engine.submit_from_schedule(NULL, 't270_echo', '{}')$$,
                 '22004', NULL, 'submit_from_schedule: NULL schedule_name is 22004');
SELECT throws_ok($$SELECT job_engine.submit_from_schedule('t270_nightly', 't270_no_such_handler', '{}')$$,
                 '42883', NULL, 'submit_from_schedule: an unknown handler is 42883, as for submit');

SELECT * FROM finish();

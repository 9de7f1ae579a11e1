-- An ExecutionContext belongs to one attempt (docs/architecture.md, Contract,
-- §3 and §7): nothing a handler changes in its session survives into the next
-- job on the same executor, what an ordinary session of its owner may do works
-- (temporary tables, PREPARE), operations that would escape the owner are
-- refused and recorded, and the handler's timeout interrupts it.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(26);

CALL pg_temp.drop_handlers('tap_iso', '0 seconds');
DROP SCHEMA IF EXISTS tap_iso CASCADE;
CREATE SCHEMA tap_iso;
CREATE SEQUENCE tap_iso.seq;

-- Changes everything it may in its session, then succeeds.  The prepared
-- statement and the temporary table would make the next dirty job on the
-- same executor fail if they were left behind.
CREATE FUNCTION tap_iso.dirty(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(4242);
    EXECUTE 'PREPARE tap_iso_stmt AS SELECT 1';
    CREATE TEMP TABLE tap_iso_tmp (x integer);
    PERFORM nextval('tap_iso.seq');
    PERFORM set_config('application_name', 'tap_iso leaked', false);
    PERFORM set_config('tap_iso.custom', 'leaked', false);
    PERFORM set_config('work_mem', '7777kB', false);
    SET search_path = tap_iso_leaked, pg_catalog;
    SET statement_timeout = '1h';
    PERFORM pg_sleep(0.05);
    RETURN jsonb_build_object('pid', pg_backend_pid());
END
$$;
-- Reports what its session looks like.
CREATE FUNCTION tap_iso.check(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    currval_error text;
BEGIN
    BEGIN
        PERFORM currval('tap_iso.seq');
        currval_error := 'none';
    EXCEPTION WHEN OTHERS THEN
        currval_error := SQLSTATE;
    END;
    PERFORM pg_sleep(0.02);
    RETURN jsonb_build_object(
        'pid', pg_backend_pid(),
        'user', current_user::text,
        'application_name', current_setting('application_name'),
        'custom', current_setting('tap_iso.custom', true),
        'work_mem', current_setting('work_mem'),
        'search_path', current_setting('search_path'),
        'statement_timeout', current_setting('statement_timeout'),
        'advisory_locks', (SELECT count(*) FROM pg_locks
                            WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
        'prepared', (SELECT count(*) FROM pg_prepared_statements),
        'temp_table', to_regclass('pg_temp.tap_iso_tmp') IS NOT NULL,
        'currval_error', currval_error);
END
$$;
CREATE FUNCTION tap_iso.run_sql(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE args->>'sql';
    RETURN '"ran"';
END
$$;
CREATE FUNCTION tap_iso.sleep(args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT to_jsonb(pg_sleep((args->>'seconds')::double precision))
$$;

SELECT job_engine.register_handler('tap_iso_dirty', 'tap_iso.dirty(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_iso_check', 'tap_iso.check(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_iso_sql', 'tap_iso.run_sql(jsonb)', max_attempts => 3,
    backoff_base => '10 ms') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_iso_slow', 'tap_iso.sleep(jsonb)', max_attempts => 1,
    timeout => '200 ms') IS NULL AS registered \gset

-- nothing leaks into the next job ------------------------------------------------------------
-- Enough dirty jobs, each a little slow, for every executor to run some.
SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_iso_dirty', array_fill('{}'::jsonb, ARRAY[16]))),
    16::bigint, 'submit 16 jobs that change their session');
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal('{tap_iso_dirty}')$$), 'the dirty jobs finish');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler = 'tap_iso_dirty' AND state = 'succeeded'),
    16::bigint, 'the dirty jobs succeeded');
SELECT is((SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242), 0::bigint,
    'no executor still holds the session advisory lock a job took');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN job_engine.workers w ON w.pid = a.pid
                       WHERE a.application_name = 'tap_iso leaked'),
    'no executor kept the application_name a job set');

SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_iso_check', array_fill('{}'::jsonb, ARRAY[32]))),
    32::bigint, 'submit 32 jobs that inspect their session');
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal('{tap_iso_check}')$$), 'the checking jobs finish');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler = 'tap_iso_check' AND state = 'succeeded'),
    32::bigint, 'the checking jobs succeeded');
SELECT ok((SELECT count(*) FROM job_engine.jobs c
            WHERE c.handler = 'tap_iso_check'
              AND (c.result->>'pid')::integer IN (SELECT (d.result->>'pid')::integer FROM job_engine.jobs d
                                                  WHERE d.handler = 'tap_iso_dirty')) > 0,
    'some checking jobs ran on executors that had run dirty jobs');
CREATE TEMP TABLE tap_iso_checks AS
SELECT result FROM job_engine.jobs WHERE handler = 'tap_iso_check';
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'user' = current_user), 32::bigint,
    'every job runs as its owner, whatever ran before');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'search_path' LIKE '%tap_iso_leaked%'), 0::bigint,
    'search_path set by a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'application_name' = 'tap_iso leaked'), 0::bigint,
    'application_name set by a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'custom' = 'leaked'), 0::bigint,
    'a custom setting set by a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'work_mem' = '7777kB'), 0::bigint,
    'work_mem set by a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'statement_timeout' = '1h'), 0::bigint,
    'statement_timeout set by a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE (result->>'advisory_locks')::integer > 0), 0::bigint,
    'session advisory locks taken by a job do not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE result->>'currval_error' <> '55000'), 0::bigint,
    'sequence state (currval) of a job does not leak');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE (result->>'prepared')::integer > 0), 0::bigint,
    'no prepared statement is left in an executor');
SELECT is((SELECT count(*) FROM tap_iso_checks WHERE (result->>'temp_table')::boolean), 0::bigint,
    'no temporary table is left in an executor');

-- what a job may not do --------------------------------------------------------------------
-- Changing role escapes the owner (42501); LISTEN is refused by PostgreSQL
-- in any background process (0A000).  Neither is retried.
CREATE TEMP TABLE tap_iso_refused (what text, sql text, sqlstate text, job bigint);
INSERT INTO tap_iso_refused (what, sql, sqlstate) VALUES
    ('SET ROLE', 'SET ROLE pg_monitor', '42501'),
    ('SET SESSION AUTHORIZATION', 'SET SESSION AUTHORIZATION DEFAULT', '42501'),
    ('LISTEN', 'LISTEN tap_iso_channel', '0A000');
UPDATE tap_iso_refused SET job = job_engine.submit('tap_iso_sql', jsonb_build_object('sql', sql));
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal('{tap_iso_sql}')$$), 'the refused jobs finish');
SELECT is((SELECT string_agg(format('%s: %s after %s attempt(s), %s', r.what, j.state, j.attempts, a.sqlstate),
                             '; ' ORDER BY r.what)
             FROM tap_iso_refused r
             JOIN job_engine.jobs j ON j.id = r.job
             JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = j.attempts),
    (SELECT string_agg(format('%s: failed after 1 attempt(s), %s', what, sqlstate), '; ' ORDER BY what)
       FROM tap_iso_refused),
    'SET ROLE and SET SESSION AUTHORIZATION are refused (42501), LISTEN too (0A000), not retried');
SELECT is((SELECT count(*) FROM job_engine.attempts a JOIN tap_iso_refused r ON r.job = a.job_id
            WHERE a.message IS NOT NULL AND a.outcome = 'failed'), 3::bigint,
    'each refusal is recorded with its message');

-- the handler's timeout ------------------------------------------------------------------------
SELECT job_engine.submit('tap_iso_slow', '{"seconds": 5}') AS slow \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state IN ('succeeded', 'failed', 'aborted')
                                        FROM job_engine.jobs WHERE id = %s$$, :slow), '4 seconds'),
    'a handler running past its timeout is stopped');
SELECT row_eq(format($$SELECT j.state, a.outcome, a.sqlstate FROM job_engine.jobs j
                         JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = %s$$, :slow),
    ROW('failed'::job_engine.job_state, 'failed'::job_engine.attempt_outcome, '57014'::text),
    'its attempt is recorded failed with SQLSTATE 57014');
SELECT ok((SELECT duration < interval '3 seconds' FROM job_engine.attempts WHERE job_id = :slow),
    'the attempt ended near its 200 ms timeout, not after the 5 s sleep');

SELECT job_engine.submit('tap_iso_slow', '{"seconds": 0.01}') AS quick \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :quick)),
    'a handler finishing within its timeout succeeds');

CALL pg_temp.drop_handlers('tap_iso');
DROP SCHEMA tap_iso CASCADE;
SELECT * FROM finish();

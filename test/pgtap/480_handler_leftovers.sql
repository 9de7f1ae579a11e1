-- 480_handler_leftovers.sql: what a handler's own name or actions leave
-- for the executor (issue 12 §5, third and fifth bullets).
--
-- 1. A handler that drops its own function ends with a clear error or with
--    success, never with XX000 "cache lookup failed".
-- 2. The executor shows the running job in pg_stat_activity.query; a handler
--    name of 200 multibyte characters is clipped on a character boundary,
--    so the text converts to other encodings.  Three names, starting with 0,
--    1 and 2 ASCII letters, so that a byte-wise cut falls inside a
--    three-byte character for at least two of them whatever the length of
--    the job id.  The jobs wait on an advisory lock this session holds while
--    their executors are looked at.

SET client_min_messages = warning;

SELECT plan(9);

\ir ../fixtures/pgtap_helpers.sql

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't480_owner') THEN
        CREATE ROLE t480_owner;
    END IF;
END
$$;
CALL pg_temp.drop_handlers('t480_');
DROP SCHEMA IF EXISTS t480 CASCADE;
CREATE SCHEMA t480;
GRANT USAGE, CREATE ON SCHEMA t480 TO t480_owner;

-- 1. a handler that drops its own function --------------------------------------------------
SET ROLE t480_owner;
CREATE FUNCTION t480.selfdrop(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    DROP FUNCTION t480.selfdrop(jsonb);
    RETURN '{"dropped": true}';
END
$$;
RESET ROLE;
SELECT job_engine.register_handler('t480_selfdrop', 't480.selfdrop(jsonb)', queue => 't480_q', max_attempts => 1);
SET ROLE t480_owner;
SELECT job_engine.submit('t480_selfdrop', '{}') AS selfdrop \gset
RESET ROLE;
SELECT isnt(pg_temp.await_state(:selfdrop, 'succeeded', 30), 'running',
    'self-dropping handler: the job ends');
SELECT is((SELECT sqlstate FROM job_engine.attempts WHERE job_id = :selfdrop AND sqlstate = 'XX000'), NULL,
    'self-dropping handler: the attempt does not fail with XX000 (an internal error)');
SELECT ok(NOT EXISTS (SELECT FROM job_engine.attempts WHERE job_id = :selfdrop AND message LIKE '%cache lookup failed%'),
    'self-dropping handler: no "cache lookup failed" message');

-- 2. multibyte handler names in pg_stat_activity ------------------------------------------------
CREATE FUNCTION t480.gate(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(480480);
    RETURN a;
END
$$;
CREATE TEMP TABLE long_names AS
SELECT k, repeat('x', k) || repeat('日', 200 - k) AS name, NULL::bigint AS job
  FROM generate_series(0, 2) k;
DO $$
DECLARE
    n text;
BEGIN
    FOR n IN SELECT name FROM long_names LOOP
        PERFORM job_engine.register_handler(n, 't480.gate(jsonb)', queue => 't480_q', max_attempts => 1);
    END LOOP;
END
$$;
SELECT pg_advisory_lock(480480);
UPDATE long_names SET job = job_engine.submit(name, '{}');

-- The executor's pg_stat_activity.query while it runs `job`.
CREATE FUNCTION pg_temp.activity_of(job bigint) RETURNS text LANGUAGE sql AS $$
    SELECT a.query FROM job_engine.workers w JOIN pg_stat_activity a ON a.pid = w.pid
     WHERE w.job_id = activity_of.job
$$;
-- Whether `t` is valid UTF-8 that converts to EUC_JP (which has every
-- character used here): false for a string cut inside a character.
CREATE FUNCTION pg_temp.converts(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM convert_from(convert_to(t, 'UTF8'), 'UTF8');
    PERFORM convert_to(t, 'EUC_JP');
    RETURN true;
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN false;
END
$$;

SELECT ok(pg_temp.poll($$(SELECT count(*) FROM long_names l
                           JOIN job_engine.workers w ON w.job_id = l.job
                           JOIN pg_locks k ON k.pid = w.pid
                          WHERE k.locktype = 'advisory' AND k.objid = 480480 AND NOT k.granted) = 3$$, 30),
    'long names: the three jobs run and wait at the gate');
SELECT ok(starts_with(pg_temp.activity_of(job), format('job_engine: job %s attempt 1 handler ', job)),
          format('long names (%s ASCII first): pg_stat_activity.query names the job', k))
  FROM long_names WHERE k = 0;
SELECT ok(COALESCE(pg_temp.converts(pg_temp.activity_of(job)), false),
          format('long names (%s ASCII first): pg_stat_activity.query is clipped on a character boundary', k))
  FROM long_names ORDER BY k;
SELECT pg_advisory_unlock(480480);
SELECT ok(pg_temp.poll($$pg_temp.all_terminal(ARRAY(SELECT name FROM long_names))$$, 30),
    'long names: the jobs end once the gate opens');

DROP FUNCTION IF EXISTS t480.selfdrop(jsonb);
CALL pg_temp.drop_handlers('t480_', '0');
DO $$
DECLARE
    n text;
BEGIN
    FOR n IN SELECT name FROM long_names LOOP
        CALL pg_temp.drop_handlers(n, '0');
    END LOOP;
END
$$;

SELECT * FROM finish();

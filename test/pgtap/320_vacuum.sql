-- 320_vacuum.sql: the supervisor vacuums job_engine._jobs once its executors
-- have claimed job_engine.vacuum_after jobs (docs/decisions.md, The hot
-- path).  Workers really run the jobs, so this file commits as it goes and
-- waits with bounded polling.  Objects are named t320 so that this file does
-- not meet the others.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(5);

CALL pg_temp.drop_handlers('t320_', '0 seconds');
DROP SCHEMA IF EXISTS t320 CASCADE;
CREATE SCHEMA t320;
CREATE FUNCTION t320.noop(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
DO $$ BEGIN PERFORM job_engine.register_handler('t320_noop', 't320.noop(jsonb)', queue => 't320'); END $$;

-- Manual and job_engine's vacuums of _jobs so far (autovacuum counts apart).
CREATE FUNCTION pg_temp.vacuums() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_stat_clear_snapshot();
    RETURN (SELECT vacuum_count FROM pg_stat_all_tables
             WHERE relid = 'job_engine._jobs'::regclass);
END
$$;

SELECT is(current_setting('job_engine.vacuum_after'), '5000', 'vacuum_after defaults to 5000 claims');

ALTER SYSTEM SET job_engine.vacuum_after = 100;
DO $$ BEGIN PERFORM pg_reload_conf(); END $$;

CREATE TEMP TABLE t320_before AS SELECT pg_temp.vacuums() AS n;
SELECT is((SELECT count(*) FROM job_engine.submit_many('t320_noop', array_fill('{}'::jsonb, ARRAY[300]))),
          300::bigint, 'submitted 300 jobs');

SELECT ok(pg_temp.wait_until($$SELECT pg_temp.all_terminal(ARRAY['t320_noop'])$$, '60 seconds'),
          'the 300 jobs finish');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE handler = 't320_noop' AND state = 'succeeded'),
          300::bigint, 'every job succeeded');
SELECT ok(pg_temp.wait_until($$SELECT pg_temp.vacuums() > (SELECT n FROM t320_before)$$, '60 seconds'),
          'the supervisor vacuumed _jobs after 300 claims with vacuum_after = 100');

ALTER SYSTEM RESET job_engine.vacuum_after;
DO $$ BEGIN PERFORM pg_reload_conf(); END $$;
CALL pg_temp.drop_handlers('t320_', '0 seconds');
DROP SCHEMA t320 CASCADE;

SELECT * FROM finish();

-- 470_abort_rollback.sql: an abort that rolls back interrupts nothing,
-- subtransactions included (issue 12 §5, first bullet).
--
-- The running job waits on an advisory lock this session holds, so it is
-- running for as long as the test needs.  After the rolled-back abort the
-- test gives a wrongly delivered cancel up to 2 s to show (the job leaving
-- 'running'), then releases the lock: the job must succeed on its first
-- attempt.

SET client_min_messages = warning;

SELECT plan(6);

\ir ../fixtures/pgtap_helpers.sql

CALL pg_temp.drop_handlers('t470_');
DROP SCHEMA IF EXISTS t470 CASCADE;
CREATE SCHEMA t470;
CREATE FUNCTION t470.gate(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(470470);
    RETURN a;
END
$$;
SELECT job_engine.register_handler('t470_gate', 't470.gate(jsonb)', queue => 't470_q', max_attempts => 1);

-- True once job `id` runs and its executor waits for the advisory lock.
CREATE FUNCTION pg_temp.waiting_at_gate(id bigint) RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT FROM job_engine.workers w
                     JOIN pg_locks l ON l.pid = w.pid
                    WHERE w.job_id = waiting_at_gate.id AND l.locktype = 'advisory'
                      AND l.objid = 470470 AND NOT l.granted)
$$;

-- The job's state and its attempts' outcomes, e.g. 'succeeded: succeeded'.
CREATE FUNCTION pg_temp.outcome(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT j.state || ': ' || (SELECT string_agg(a.outcome || COALESCE(' ' || a.sqlstate, ''), ', ' ORDER BY a.attempt)
                                FROM job_engine.attempts a WHERE a.job_id = j.id)
      FROM job_engine.jobs j WHERE j.id = outcome.id
$$;

SELECT pg_advisory_lock(470470);

-- ROLLBACK TO SAVEPOINT --------------------------------------------------------------------
SELECT job_engine.submit('t470_gate', '{"case": "savepoint"}') AS j1 \gset
SELECT ok(pg_temp.poll(format('pg_temp.waiting_at_gate(%s)', :j1), 30),
    'savepoint: the job runs and waits at the gate');
BEGIN;
SAVEPOINT s;
SELECT job_engine.abort(:j1, 'oops');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.poll(format('NOT pg_temp.waiting_at_gate(%s)', :j1), 2) AS j1_disturbed \gset
SELECT ok(NOT :'j1_disturbed'::boolean, 'savepoint: an abort rolled back to a savepoint does not interrupt the running job');
SELECT pg_advisory_unlock(470470);
SELECT is(pg_temp.await_state(:j1, 'succeeded', 30) || ': ' || pg_temp.outcome(:j1),
    'succeeded: succeeded: succeeded',
    'savepoint: ... which succeeds on its first attempt');

-- PL/pgSQL block that catches an exception ----------------------------------------------------
SELECT pg_advisory_lock(470470);
SELECT job_engine.submit('t470_gate', '{"case": "plpgsql"}') AS j2 \gset
SELECT ok(pg_temp.poll(format('pg_temp.waiting_at_gate(%s)', :j2), 30),
    'plpgsql: the job runs and waits at the gate');
SELECT set_config('t470.j2', :'j2', false) IS NOT NULL AS noted;
DO $$
BEGIN
    BEGIN
        PERFORM job_engine.abort(current_setting('t470.j2')::bigint, 'oops');
        RAISE EXCEPTION 'changed my mind';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
END
$$;
SELECT pg_temp.poll(format('NOT pg_temp.waiting_at_gate(%s)', :j2), 2) AS j2_disturbed \gset
SELECT ok(NOT :'j2_disturbed'::boolean,
    'plpgsql: an abort undone by an exception block does not interrupt the running job');
SELECT pg_advisory_unlock(470470);
SELECT is(pg_temp.await_state(:j2, 'succeeded', 30) || ': ' || pg_temp.outcome(:j2),
    'succeeded: succeeded: succeeded',
    'plpgsql: ... which succeeds on its first attempt');

CALL pg_temp.drop_handlers('t470_', '0');

SELECT * FROM finish();

-- 500_abort_subxact.sql: abort() of a running job interrupts its executor
-- only if the abort commits.  An abort undone by ROLLBACK TO SAVEPOINT, by a
-- PL/pgSQL exception block, or by a savepoint that rolls back after an
-- inner one was released, interrupts nothing; one in a released savepoint
-- of a committing transaction does (src/wakeup.c).
--
-- The running jobs wait for an advisory lock this session holds, so they
-- stay running for as long as the test needs.  A wrongly sent interrupt
-- reaches the executor as soon as the abort's transaction commits, before
-- the test releases the lock, and fails the waiting attempt with 57014; so
-- each job that must not be interrupted is released and has to succeed on
-- its first attempt.  Objects are named t500.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(14);

CALL pg_temp.drop_handlers('t500_', '0 seconds');
DROP SCHEMA IF EXISTS t500 CASCADE;
CREATE SCHEMA t500;
CREATE FUNCTION t500.gate(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(500500);
    RETURN a;
END
$$;
SELECT job_engine.register_handler('t500_gate', 't500.gate(jsonb)', queue => 't500',
                                   max_attempts => 1) IS NULL AS registered \gset

-- Aborts job `id` inside an exception block that then undoes it.
CREATE FUNCTION pg_temp.abort_and_undo(id bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM job_engine.abort(id, 'oops');
        RAISE EXCEPTION 'changed my mind';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
END
$$;

SELECT pg_advisory_lock(500500);
SELECT job_engine.submit('t500_gate', '{"case": "savepoint"}') AS j_savepoint \gset
SELECT job_engine.submit('t500_gate', '{"case": "plpgsql"}') AS j_plpgsql \gset
SELECT ok(pg_temp.poll(format('pg_temp.at_gate(%s, 500500) AND pg_temp.at_gate(%s, 500500)', :j_savepoint, :j_plpgsql)),
    'two jobs run and wait at the gate');

-- ROLLBACK TO SAVEPOINT
BEGIN;
SAVEPOINT s;
SELECT job_engine.abort(:j_savepoint, 'oops') AS aborted \gset
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT is(pg_temp.history(:j_savepoint), 'running: 1 running',
    'ROLLBACK TO SAVEPOINT: the abort is undone');

-- An exception block
SELECT pg_temp.abort_and_undo(:j_plpgsql);
SELECT is(pg_temp.history(:j_plpgsql), 'running: 1 running',
    'exception block: the abort is undone');

SELECT pg_advisory_unlock(500500);
SELECT is(pg_temp.await_state(:j_savepoint, 'succeeded'), 'succeeded',
    'ROLLBACK TO SAVEPOINT: the job was not interrupted and succeeds');
SELECT is(pg_temp.history(:j_savepoint), 'succeeded: 1 succeeded',
    'ROLLBACK TO SAVEPOINT: ... on its first attempt');
SELECT is(pg_temp.await_state(:j_plpgsql, 'succeeded'), 'succeeded',
    'exception block: the job was not interrupted and succeeds');
SELECT is(pg_temp.history(:j_plpgsql), 'succeeded: 1 succeeded',
    'exception block: ... on its first attempt');

-- Nested: released into a savepoint that then rolls back; and two aborts in
-- one transaction, one of them in a savepoint rolled back.
SELECT pg_advisory_lock(500500);
SELECT job_engine.submit('t500_gate', '{"case": "nested"}') AS j_nested \gset
SELECT job_engine.submit('t500_gate', '{"case": "kept"}') AS j_kept \gset
SELECT job_engine.submit('t500_gate', '{"case": "dropped"}') AS j_dropped \gset
SELECT ok(pg_temp.poll(format('pg_temp.at_gate(%s, 500500) AND pg_temp.at_gate(%s, 500500) AND pg_temp.at_gate(%s, 500500)',
                              :j_nested, :j_kept, :j_dropped)),
    'three more jobs run and wait at the gate');

BEGIN;
SAVEPOINT outer_sp;
SAVEPOINT inner_sp;
SELECT job_engine.abort(:j_nested, 'oops') AS aborted \gset
RELEASE SAVEPOINT inner_sp;
ROLLBACK TO SAVEPOINT outer_sp;
COMMIT;

BEGIN;
SAVEPOINT first_sp;
SELECT job_engine.abort(:j_kept, 'meant') AS aborted \gset
RELEASE SAVEPOINT first_sp;
SAVEPOINT second_sp;
SELECT job_engine.abort(:j_dropped, 'oops') AS aborted \gset
ROLLBACK TO SAVEPOINT second_sp;
COMMIT;

SELECT is(pg_temp.history(:j_kept), 'aborted: 1 aborted',
    'the abort in a released savepoint commits');
SELECT ok(pg_temp.poll(format('NOT pg_temp.at_gate(%s, 500500)', :j_kept)),
    '... and interrupts its executor, which stops waiting at the gate');
SELECT is((SELECT count(*) FROM job_engine.workers WHERE job_id = :j_kept), 0::bigint,
    '... and leaves the job');

SELECT pg_advisory_unlock(500500);
SELECT is(pg_temp.await_state(:j_nested, 'succeeded') || ' / ' || pg_temp.history(:j_nested),
    'succeeded / succeeded: 1 succeeded',
    'an abort released into a savepoint that rolls back interrupts nothing');
SELECT is(pg_temp.await_state(:j_dropped, 'succeeded') || ' / ' || pg_temp.history(:j_dropped),
    'succeeded / succeeded: 1 succeeded',
    'a rolled-back savepoint drops only its own abort''s interrupt');
SELECT is(pg_temp.history(:j_kept), 'aborted: 1 aborted',
    'the committed abort stays recorded');

CALL pg_temp.drop_handlers('t500_', '0 seconds');
DROP SCHEMA t500 CASCADE;

SELECT * FROM finish();

-- 506_group_retry_in_place.sql: retry() of a job of a group-commit queue
-- aborted after its handler ran, while a later job of its group still runs.
-- The group's executor has moved on to that later job, but the aborted
-- attempt's work stays in the group's transaction until the group ends
-- (src/group_commit.c): retry() must refuse (55006, as for an attempt whose
-- executor is still rolling it back) until then, or a second attempt of
-- the job could run while the first one's work, and its locks, are still
-- there.  Once the group has ended, retry() runs the job again.
--
-- Each job's work is a row keyed by its name, which a second attempt of
-- the same job would wait for while the first one's is uncommitted.  The
-- later job waits for an advisory lock this session holds.  Objects are
-- named t506.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(11);

CALL pg_temp.drop_handlers('t506_', '0 seconds');
DELETE FROM job_engine.queues WHERE name = 't506';
DROP SCHEMA IF EXISTS t506 CASCADE;
CREATE SCHEMA t506;
CREATE TABLE t506.effects (n text PRIMARY KEY, attempt integer);
-- Counts every run of the early job, committed or not.
CREATE SEQUENCE t506.runs_early;
CREATE FUNCTION t506.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF a ->> 'n' = 'early' THEN
        PERFORM nextval('t506.runs_early');
    END IF;
    INSERT INTO t506.effects VALUES (a ->> 'n', (job_engine.context() ->> 'attempt')::integer);
    IF (a ->> 'gate')::boolean THEN
        PERFORM pg_advisory_xact_lock(506506);
    END IF;
    RETURN a;
END
$$;
DO $$
BEGIN
    PERFORM job_engine.register_handler('t506_work', 't506.work(jsonb)', queue => 't506',
                                        max_attempts => 1);
    PERFORM job_engine.configure_queue('t506', group_commit => 2);
    PERFORM job_engine.pause_queue('t506');
END
$$;

-- Both jobs wait in the paused queue, and one executor alone is free to
-- claim when it is resumed, so one claim takes them as a group.
SELECT pg_temp.hold_other_executors('t506', 506000) IS NULL AS holding \gset
SELECT ok(pg_temp.poll('pg_temp.others_held(506000)'),
    'every executor but one is held, so that one claim takes the group');

SELECT pg_advisory_lock(506506);
CREATE TEMP TABLE ids AS
SELECT job_engine.submit('t506_work', '{"n": "early", "gate": false}') AS early,
       job_engine.submit('t506_work', '{"n": "late", "gate": true}') AS late;
SELECT job_engine.resume_queue('t506') IS NULL AS resumed \gset
SELECT ok(pg_temp.poll(format('pg_temp.at_gate(%s, 506506)', (SELECT late FROM ids))),
    'the later job of the group runs and waits, the earlier one''s handler has run');
SELECT ok(pg_temp.one_group((SELECT early FROM ids), (SELECT late FROM ids)),
    'the earlier job waits with it: one executor claimed both, as a group');
SELECT is(job_engine.abort((SELECT early FROM ids), 'stopped mid-group'), true,
    'the earlier job is aborted while its group runs');

SELECT throws_ok(format('SELECT job_engine.retry(%s)', (SELECT early FROM ids)), '55006', NULL,
    'retry() is refused while the group''s transaction still holds the aborted attempt''s work');
SELECT is(pg_temp.history((SELECT early FROM ids)), 'aborted: 1 aborted',
    'the refused retry left the job aborted');

-- The group ends: its transaction rolls back (the earlier job was decided
-- meanwhile) and the group runs again without the aborted job.
SELECT pg_advisory_unlock(506506);
SELECT is(pg_temp.await_state((SELECT late FROM ids), 'succeeded'), 'succeeded',
    'the later job succeeds');
SELECT is((SELECT string_agg(n, ',' ORDER BY n) FROM t506.effects), 'late',
    'only the later job''s work is committed');

-- Now nothing holds the aborted attempt's work: the retry runs the job
-- again.  Until the executor has left the group's transaction, it may still
-- be refused (55006).
CREATE FUNCTION pg_temp.retried(id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_engine.retry(id);
    RETURN true;
EXCEPTION WHEN object_in_use THEN
    RETURN false;
END
$$;
SELECT ok(pg_temp.wait_until(format('SELECT pg_temp.retried(%s)', (SELECT early FROM ids))),
    'retry() goes through once the group has ended');
SELECT is(pg_temp.await_state((SELECT early FROM ids), 'succeeded'), 'succeeded',
    'the retried job succeeds');
SELECT is((SELECT string_agg(n || ' ' || attempt, ',' ORDER BY n) FROM t506.effects), 'early 2,late 1',
    'the retried job''s work is committed once, by its second attempt');

SELECT pg_advisory_unlock(506000) AS released \gset
CALL pg_temp.drop_handlers('t506_');
DELETE FROM job_engine.queues WHERE name = 't506';
DROP SCHEMA t506 CASCADE;

SELECT * FROM finish();

-- 505_group_abort_fence.sql: a job of a group-commit queue that is aborted
-- while its group runs never has its handler started afterwards: not when
-- the group's turn comes to it, and not when the group runs again because
-- a job whose handler had run was decided meanwhile (src/group_commit.c).
--
-- Handlers count their runs in sequences (which do not roll back), one per
-- job.  The job that must stay running waits for an advisory lock this
-- session holds.  Objects are named t505.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(15);

CALL pg_temp.drop_handlers('t505_', '0 seconds');
DELETE FROM job_engine.queues WHERE name = 't505';
DROP SCHEMA IF EXISTS t505 CASCADE;
CREATE SCHEMA t505;
CREATE TABLE t505.effects (n text);
CREATE SEQUENCE t505.runs_early;
CREATE SEQUENCE t505.runs_late;
CREATE FUNCTION t505.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('t505.runs_' || (a ->> 'n'));
    INSERT INTO t505.effects VALUES (a ->> 'n');
    IF (a ->> 'gate')::boolean THEN
        PERFORM pg_advisory_xact_lock(505505);
    END IF;
    RETURN a;
END
$$;
DO $$
BEGIN
    PERFORM job_engine.register_handler('t505_work', 't505.work(jsonb)', queue => 't505',
                                        max_attempts => 1);
    PERFORM job_engine.configure_queue('t505', group_commit => 2);
    PERFORM job_engine.pause_queue('t505');
END
$$;

CREATE FUNCTION pg_temp.runs(n text) RETURNS bigint LANGUAGE sql AS $$
    SELECT CASE WHEN n = 'early' THEN (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM t505.runs_early)
                ELSE (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM t505.runs_late) END
$$;

-- Both jobs of each group wait in the paused queue, and one executor alone
-- is free to claim when it is resumed, so one claim takes them as a group.
SELECT pg_temp.hold_other_executors('t505', 505000) IS NULL AS holding \gset
SELECT ok(pg_temp.poll('pg_temp.others_held(505000)'),
    'every executor but one is held, so that one claim takes each group');

-- 1. The later job of the group is aborted while the earlier one runs: its
--    handler must not start when its turn comes.
SELECT pg_advisory_lock(505505);
CREATE TEMP TABLE ids1 AS
SELECT job_engine.submit('t505_work', '{"n": "early", "gate": true}') AS early,
       job_engine.submit('t505_work', '{"n": "late", "gate": false}') AS late;
SELECT job_engine.resume_queue('t505') IS NULL AS resumed \gset
SELECT ok(pg_temp.poll(format('pg_temp.at_gate(%s, 505505)', (SELECT early FROM ids1))),
    'waiting job: the earlier job of the group runs and waits');
SELECT ok(pg_temp.one_group((SELECT early FROM ids1), (SELECT late FROM ids1)),
    'waiting job: the later job waits its turn: one executor claimed both, as a group');
SELECT is(job_engine.abort((SELECT late FROM ids1), 'not wanted any more'), true,
    'waiting job: the later job of the group, claimed but not started, is aborted');
SELECT pg_advisory_unlock(505505);
SELECT is(pg_temp.await_state((SELECT early FROM ids1), 'succeeded'), 'succeeded',
    'waiting job: the earlier job succeeds');
SELECT is(pg_temp.history((SELECT late FROM ids1)), 'aborted: 1 aborted',
    'waiting job: the aborted job keeps its one attempt, aborted');
SELECT is(pg_temp.runs('late'), 0::bigint,
    'waiting job: the handler of the aborted job never started');
SELECT is(pg_temp.runs('early'), 1::bigint,
    'waiting job: the earlier job''s handler ran once (the group did not have to run again)');

-- 2. The earlier job's handler has run when it is aborted, while the later
--    one runs: the group runs again, without the aborted job.
SELECT job_engine.pause_queue('t505') IS NULL AS paused \gset
SELECT setval('t505.runs_early', 1, false), setval('t505.runs_late', 1, false);
TRUNCATE t505.effects;
SELECT pg_advisory_lock(505505);
CREATE TEMP TABLE ids2 AS
SELECT job_engine.submit('t505_work', '{"n": "early", "gate": false}') AS early,
       job_engine.submit('t505_work', '{"n": "late", "gate": true}') AS late;
SELECT job_engine.resume_queue('t505') IS NULL AS resumed \gset
SELECT ok(pg_temp.poll(format('pg_temp.at_gate(%s, 505505)', (SELECT late FROM ids2))),
    'finished handler: the later job of the group runs and waits, the earlier one''s handler has run');
SELECT ok(pg_temp.one_group((SELECT early FROM ids2), (SELECT late FROM ids2)),
    'finished handler: the earlier job waits with it: one executor claimed both, as a group');
SELECT is(job_engine.abort((SELECT early FROM ids2), 'too late'), true,
    'finished handler: the earlier job is aborted while its group runs');
SELECT pg_advisory_unlock(505505);
SELECT is(pg_temp.await_state((SELECT late FROM ids2), 'succeeded'), 'succeeded',
    'finished handler: the later job succeeds');
SELECT is(pg_temp.history((SELECT early FROM ids2)), 'aborted: 1 aborted',
    'finished handler: the aborted job keeps its one attempt, aborted');
SELECT is(pg_temp.runs('early'), 1::bigint,
    'finished handler: the aborted job''s handler did not run again when the group ran again');
SELECT is((SELECT string_agg(n, ',' ORDER BY n) FROM t505.effects), 'late',
    'finished handler: only the later job''s work is committed, once');

SELECT pg_advisory_unlock(505000) AS released \gset
CALL pg_temp.drop_handlers('t505_');
DELETE FROM job_engine.queues WHERE name = 't505';
DROP SCHEMA t505 CASCADE;

SELECT * FROM finish();

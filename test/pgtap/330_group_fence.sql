-- 330_group_fence.sql: a group-commit queue records its successes in one
-- statement at the end of the group (src/group_commit.c).  A job of the group
-- aborted after its handler ran, while a later job of the group still runs,
-- must not have its work committed: the group's transaction rolls back and
-- the group runs again, without the aborted job, with each success fenced
-- on its own.  Workers really run the jobs, so this file commits as it goes
-- and waits with bounded polling.  Objects are named t330 so that this file
-- does not meet the others.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(11);

CALL pg_temp.drop_handlers('t330_', '0 seconds');
DELETE FROM job_engine.queues WHERE name = 't330';
DROP SCHEMA IF EXISTS t330 CASCADE;
CREATE SCHEMA t330;
-- Effects are transactional; the sequence counts every run, committed or not.
CREATE TABLE t330.effects (n text);
CREATE SEQUENCE t330.runs;
CREATE FUNCTION t330.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('t330.runs');
    INSERT INTO t330.effects VALUES (a ->> 'n');
    PERFORM pg_sleep((a ->> 'sleep')::float8);
    RETURN a;
END
$$;
DO $$
BEGIN
    PERFORM job_engine.register_handler('t330_work', 't330.work(jsonb)', queue => 't330');
    PERFORM job_engine.configure_queue('t330', group_commit => 2);
    PERFORM job_engine.pause_queue('t330');
END
$$;

-- Both jobs wait in the paused queue, and one executor alone is free to
-- claim when it is resumed, so one claim takes them as a group.
SELECT pg_temp.hold_other_executors('t330', 330330) IS NULL AS holding \gset
SELECT ok(pg_temp.poll('pg_temp.others_held(330330)'),
          'every executor but one is held, so that one claim takes the group');
CREATE TEMP TABLE t330_ids AS
SELECT job_engine.submit('t330_work', '{"n": "first", "sleep": 0}') AS first,
       job_engine.submit('t330_work', '{"n": "second", "sleep": 1.5}') AS second;
SELECT job_engine.resume_queue('t330') IS NULL AS resumed \gset

-- Once the second job's handler runs, the first one's has run (released
-- into the group, its success not yet recorded): abort the first now.
SELECT ok(pg_temp.wait_until($$SELECT EXISTS (SELECT 1 FROM job_engine.workers w
                                              WHERE w.job_id = (SELECT second FROM t330_ids))$$),
          'the second job of the group runs');
SELECT ok(pg_temp.one_group((SELECT first FROM t330_ids), (SELECT second FROM t330_ids)),
          'the first job, its handler finished, waits with it: one executor claimed both, as a group');
SELECT is(job_engine.abort((SELECT first FROM t330_ids), 'aborted mid-group'), true,
          'the first job, whose handler has run, is aborted while the group runs');

SELECT is(pg_temp.await_state((SELECT second FROM t330_ids), 'succeeded'), 'succeeded',
          'the second job succeeds');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = (SELECT first FROM t330_ids)), 'aborted',
          'the first job stays aborted');
SELECT is((SELECT string_agg(n, ',' ORDER BY n) FROM t330.effects), 'second',
          'only the second job''s work is committed, once');
SELECT is((SELECT last_value FROM t330.runs), 3::bigint,
          'the group ran again without the aborted job: its first transaction rolled back whole');
SELECT is((SELECT string_agg(attempt || ' ' || outcome, ',') FROM job_engine.attempts
            WHERE job_id = (SELECT first FROM t330_ids)), '1 aborted',
          'the first job has one attempt, aborted');
SELECT is((SELECT string_agg(attempt || ' ' || outcome, ',') FROM job_engine.attempts
            WHERE job_id = (SELECT second FROM t330_ids)), '1 succeeded',
          'the second job has one attempt, succeeded');
SELECT is((SELECT result ->> 'n' FROM job_engine.jobs WHERE id = (SELECT second FROM t330_ids)), 'second',
          'the second job''s result is recorded');

SELECT pg_advisory_unlock(330330) AS released \gset
CALL pg_temp.drop_handlers('t330_');
DELETE FROM job_engine.queues WHERE name = 't330';
DROP SCHEMA t330 CASCADE;

SELECT * FROM finish();

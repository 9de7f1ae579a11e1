-- 220_ordering.sql: declared ordering (docs/architecture.md, Contract and §3;
-- docs/reference.md, submit): depends_on and ordering_key.  There is no other
-- ordering between jobs, so every assertion here is about jobs that declared
-- one.

SET client_min_messages = warning;

SELECT plan(34);

\ir ../fixtures/pgtap_helpers.sql

-- Submits a job depending on `dep`, which is already terminal.  Such a job
-- can never run: either submit refuses it, or it ends aborted.  Returns
-- 'refused' or '<state>: <abort_reason>' once the job left 'created' (or
-- after 5 s, aborting it then so that it does not wait forever).
CREATE FUNCTION pg_temp.depend_on_finished(dep bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
    s text;
BEGIN
    BEGIN
        new_id := job_engine.submit('t220_rec', '{"tag": "late"}', depends_on => ARRAY[dep]);
    EXCEPTION WHEN OTHERS THEN
        RETURN 'refused';
    END;
    s := pg_temp.await_state(new_id, 'aborted', 5);
    IF s = 'created' THEN
        PERFORM job_engine.abort(new_id, 't220 cleanup: left waiting');
    END IF;
    RETURN s || ': ' || COALESCE((SELECT abort_reason FROM job_engine.jobs j WHERE j.id = new_id), '');
END
$$;

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

CREATE SCHEMA t220;
CREATE TABLE t220.runs (job_id bigint, tag text, started timestamptz, finished timestamptz);

-- args: tag (recorded), sleep (seconds), fail_attempts (attempts 1..n fail
-- with 40001), fail (always fails with P0001).  A row in t220.runs is written
-- only by a successful attempt (a failed one rolls back).
CREATE FUNCTION t220.rec(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    IF (job_engine.context() ->> 'attempt')::int <= COALESCE((a ->> 'fail_attempts')::int, 0) THEN
        RAISE EXCEPTION 't220 transient failure' USING ERRCODE = '40001';
    END IF;
    IF a ? 'fail' THEN
        RAISE EXCEPTION 't220 permanent failure';
    END IF;
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::double precision, 0));
    INSERT INTO t220.runs VALUES (job_engine.current_job_id(), a ->> 'tag', t0, clock_timestamp());
    RETURN a;
END
$$;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t220_rec', 't220.rec(jsonb)', queue => 't220',
                                        backoff_base => '100 ms', backoff_max => '200 ms');
    PERFORM job_engine.register_handler('t220_held', 't220.rec(jsonb)', queue => 't220_held');
    PERFORM job_engine.register_handler('t220_fail', 't220.rec(jsonb)', queue => 't220',
                                        max_attempts => 1);
    PERFORM job_engine.pause_queue('t220_held');
END
$$;

-------------------------------------------------------------------------------
-- depends_on: the dependent waits for every dependency, then runs
-------------------------------------------------------------------------------

SELECT job_engine.submit('t220_held', '{"tag": "A"}') AS dep_a \gset
SELECT job_engine.submit('t220_rec', '{"tag": "B"}') AS dep_b \gset
SELECT job_engine.submit('t220_rec', '{"tag": "C"}', depends_on => ARRAY[:dep_a, :dep_b]::bigint[]) AS dep_c \gset

SELECT is(pg_temp.await_state(:dep_b, 'succeeded'), 'succeeded', 'depends_on: dependency B (free queue) succeeds');
-- A job submitted after C in C's queue runs: executors serve the queue, yet
-- C keeps waiting for A.
SELECT job_engine.submit('t220_rec', '{"tag": "canary"}') AS canary \gset
SELECT is(pg_temp.await_state(:canary, 'succeeded'), 'succeeded', 'depends_on: a later job of the same queue runs');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :dep_c), 'created',
          'depends_on: the dependent waits in ''created'' while dependency A (paused queue) has not run');
SELECT is((SELECT attempts FROM job_engine.jobs WHERE id = :dep_c), 0, 'depends_on: the waiting dependent has no attempt');

SELECT job_engine.resume_queue('t220_held') IS NULL AS resumed \gset
SELECT is(pg_temp.await_state(:dep_c, 'succeeded'), 'succeeded', 'depends_on: the dependent runs once all dependencies succeeded');
SELECT ok((SELECT c.started_at >= a.finished_at AND c.started_at >= b.finished_at
             FROM job_engine.jobs a, job_engine.jobs b, job_engine.jobs c
            WHERE a.id = :dep_a AND b.id = :dep_b AND c.id = :dep_c),
          'depends_on: the dependent started after both dependencies finished');

SELECT job_engine.submit('t220_rec', '{"tag": "D"}', depends_on => ARRAY[:dep_c]::bigint[]) AS dep_d \gset
SELECT is(pg_temp.await_state(:dep_d, 'succeeded'), 'succeeded',
          'depends_on: a dependency that already succeeded is met at once');
SELECT job_engine.submit('t220_rec', '{"tag": "E"}', depends_on => '{}') AS dep_e \gset
SELECT is(pg_temp.await_state(:dep_e, 'succeeded'), 'succeeded', 'depends_on: an empty array means no dependency');

-------------------------------------------------------------------------------
-- depends_on: a failed or aborted dependency aborts its dependents
-------------------------------------------------------------------------------

BEGIN;
SELECT job_engine.submit('t220_fail', '{"fail": true}') AS dep_f \gset
SELECT job_engine.submit('t220_rec', '{"tag": "G"}', depends_on => ARRAY[:dep_f]::bigint[]) AS dep_g \gset
SELECT job_engine.submit('t220_rec', '{"tag": "H"}', depends_on => ARRAY[:dep_g]::bigint[]) AS dep_h \gset
SELECT job_engine.submit('t220_rec', '{"tag": "I"}', depends_on => ARRAY[:dep_b, :dep_f]::bigint[]) AS dep_i \gset
COMMIT;

SELECT is(pg_temp.await_state(:dep_f, 'failed'), 'failed', 'a dependency with a permanent error fails');
SELECT is(pg_temp.await_state(:dep_g, 'aborted'), 'aborted', 'its dependent is aborted');
SELECT is((SELECT abort_reason FROM job_engine.jobs WHERE id = :dep_g), format('dependency %s failed', :dep_f),
          'the abort reason names the failed dependency');
SELECT is((SELECT state::text || ': ' || abort_reason FROM job_engine.jobs WHERE id = :dep_h),
          format('aborted: dependency %s aborted', :dep_g),
          'a dependent of the aborted dependent is aborted too, naming it');
SELECT is((SELECT state::text || ': ' || abort_reason FROM job_engine.jobs WHERE id = :dep_i),
          format('aborted: dependency %s failed', :dep_f),
          'one failed dependency among several is enough to abort');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id IN (:dep_g, :dep_h, :dep_i)), 0::bigint,
          'the aborted dependents never ran');

SELECT job_engine.submit('t220_rec', '{"tag": "P"}', run_at => now() + interval '1 hour') AS dep_p \gset
SELECT job_engine.submit('t220_rec', '{"tag": "Q"}', depends_on => ARRAY[:dep_p]::bigint[]) AS dep_q \gset
SELECT is(job_engine.abort(:dep_p, 't220 not needed'), true, 'a waiting dependency is aborted');
SELECT is((SELECT state::text || ': ' || abort_reason FROM job_engine.jobs WHERE id = :dep_q),
          format('aborted: dependency %s aborted', :dep_p),
          'its dependent is aborted at once, naming the dependency');

-- A dependency that is already failed or aborted when the dependent is
-- submitted must not leave the dependent waiting forever.
SELECT is(CASE WHEN r = 'refused' THEN format('aborted: dependency %s failed', :dep_f) ELSE r END,
          format('aborted: dependency %s failed', :dep_f),
          'depends_on an already failed job: refused, or aborted naming the dependency (never left waiting)')
  FROM pg_temp.depend_on_finished(:dep_f) r;
SELECT is(CASE WHEN r = 'refused' THEN format('aborted: dependency %s aborted', :dep_p) ELSE r END,
          format('aborted: dependency %s aborted', :dep_p),
          'depends_on an already aborted job: refused, or aborted naming the dependency (never left waiting)')
  FROM pg_temp.depend_on_finished(:dep_p) r;

SELECT throws_ok($$SELECT job_engine.submit('t220_rec', '{}', depends_on => ARRAY[NULL]::bigint[])$$,
                 '22004', NULL, 'depends_on with a NULL element is 22004');
SELECT throws_ok(format($$SELECT job_engine.submit('t220_rec', '{}', depends_on => ARRAY[%s]::bigint[])$$,
                        :dep_q + 1000000),
                 '23503', NULL, 'depends_on an unknown job is 23503');

-------------------------------------------------------------------------------
-- ordering_key: one at a time, in id order
-------------------------------------------------------------------------------

BEGIN;
SELECT job_engine.submit('t220_rec', '{"tag": "O1", "sleep": 0.2}', ordering_key => 't220_k') AS o1 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "O2", "sleep": 0.2}', ordering_key => 't220_k') AS o2 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "O3", "sleep": 0.2}', ordering_key => 't220_k') AS o3 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "O4", "sleep": 0.2}', ordering_key => 't220_k') AS o4 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "U1", "sleep": 0.2}', ordering_key => 't220_other') AS u1 \gset
COMMIT;

SELECT ok(pg_temp.poll(format($$(SELECT count(*) = 5 FROM job_engine.jobs
                                  WHERE id IN (%s, %s, %s, %s, %s) AND state = 'succeeded')$$,
                              :o1, :o2, :o3, :o4, :u1)),
          'ordering_key: all jobs succeed');
SELECT is((SELECT array_agg(job_id ORDER BY started) FROM t220.runs WHERE job_id IN (:o1, :o2, :o3, :o4)),
          ARRAY[:o1, :o2, :o3, :o4]::bigint[],
          'ordering_key: the jobs of one key started in id order');
SELECT ok((SELECT bool_and(nxt_started >= finished)
             FROM (SELECT finished, lead(started) OVER (ORDER BY job_id) AS nxt_started
                     FROM t220.runs WHERE job_id IN (:o1, :o2, :o3, :o4)) s
            WHERE nxt_started IS NOT NULL),
          'ordering_key: each handler started after the previous one ended (no overlap)');
SELECT ok((SELECT bool_and(nxt_started >= finished_at)
             FROM (SELECT finished_at, lead(started_at) OVER (ORDER BY id) AS nxt_started
                     FROM job_engine.jobs WHERE id IN (:o1, :o2, :o3, :o4)) s
            WHERE nxt_started IS NOT NULL),
          'ordering_key: each job was claimed after the previous one finished');
SELECT ok((SELECT u.started < o.finished
             FROM t220.runs u, t220.runs o WHERE u.job_id = :u1 AND o.job_id = :o4),
          'ordering_key: a job with another key is not held back by them');

-- A job that fails and is retried keeps its place in the line.
BEGIN;
SELECT job_engine.submit('t220_rec', '{"tag": "R1", "fail_attempts": 1}', ordering_key => 't220_r') AS r1 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "R2"}', ordering_key => 't220_r') AS r2 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "R3"}', ordering_key => 't220_r') AS r3 \gset
COMMIT;

SELECT is(pg_temp.await_state(:r3, 'succeeded'), 'succeeded', 'ordering_key with a retry: the last job succeeds');
SELECT is((SELECT state::text || '/' || attempts FROM job_engine.jobs WHERE id = :r1), 'succeeded/2',
          'ordering_key with a retry: the first job succeeded on its second attempt');
SELECT is((SELECT sqlstate FROM job_engine.attempts WHERE job_id = :r1 AND attempt = 1), '40001',
          'ordering_key with a retry: the first attempt failed with 40001');
SELECT ok((SELECT min(a2.started_at) >= (SELECT finished_at FROM job_engine.jobs WHERE id = :r1)
             FROM job_engine.attempts a2 WHERE a2.job_id = :r2),
          'ordering_key with a retry: the second job started only after the retried job succeeded');
SELECT ok((SELECT min(a3.started_at) >= (SELECT finished_at FROM job_engine.jobs WHERE id = :r2)
             FROM job_engine.attempts a3 WHERE a3.job_id = :r3),
          'ordering_key with a retry: the third job started after the second');
SELECT is((SELECT array_agg(attempts ORDER BY id) FROM job_engine.jobs WHERE id IN (:r2, :r3)), ARRAY[1, 1],
          'ordering_key with a retry: the later jobs ran once each');

-- A job that fails for good releases the key.
BEGIN;
SELECT job_engine.submit('t220_fail', '{"fail": true}', ordering_key => 't220_f') AS x1 \gset
SELECT job_engine.submit('t220_rec', '{"tag": "X2"}', ordering_key => 't220_f') AS x2 \gset
COMMIT;
SELECT is(pg_temp.await_state(:x2, 'succeeded'), 'succeeded', 'ordering_key: a job after a failed one still runs');
SELECT ok((SELECT x2.started_at >= x1.finished_at AND x1.state = 'failed'
             FROM job_engine.jobs x1, job_engine.jobs x2 WHERE x1.id = :x1 AND x2.id = :x2),
          'ordering_key: ... after the failed one finished');

SELECT throws_ok($$SELECT job_engine.submit('t220_rec', '{}', ordering_key => '')$$,
                 '22023', NULL, 'an empty ordering_key is 22023');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 220_ordering') FROM job_engine._jobs
      WHERE handler LIKE 't220\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

-- 350_cascade_depth.sql: work proportional to user data is never done by
-- recursion (issue 13 item 1).  Aborting the head of a chain of 5000 jobs
-- linked by depends_on aborts all of them, naming each one's prerequisite;
-- a head that fails does the same from an executor; compensation follows
-- every job of a cascade; trace() shows a tree 5000 levels deep whole.

SET client_min_messages = warning;

SELECT plan(14);

\ir ../fixtures/pgtap_helpers.sql

CREATE SCHEMA t350;
CREATE FUNCTION t350.ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION t350.fail(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 't350 permanent failure' USING ERRCODE = '22023';
END
$$;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t350_chain', 't350.ok(jsonb)', queue => 't350_held');
    PERFORM job_engine.register_handler('t350_head_fails', 't350.fail(jsonb)', queue => 't350_run',
                                        max_attempts => 1);
    PERFORM job_engine.register_handler('t350_undo', 't350.ok(jsonb)', queue => 't350_undo');
    PERFORM job_engine.register_handler('t350_compensated', 't350.ok(jsonb)', queue => 't350_held',
                                        compensate_with => 't350_undo');
    PERFORM job_engine.pause_queue('t350_held');
    PERFORM job_engine.pause_queue('t350_undo');
END
$$;

-- Submits a chain of n jobs of `handler`, each depending on the one before,
-- after `head` (its first link); returns the ids, head first.
CREATE FUNCTION pg_temp.chain(head bigint, handler text, n integer)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY[head];
BEGIN
    FOR i IN 1..n - 1 LOOP
        ids := ids || job_engine.submit(handler, jsonb_build_object('link', i),
                                        depends_on => ARRAY[ids[i]]);
    END LOOP;
    RETURN ids;
END
$$;

-------------------------------------------------------------------------------
-- abort() of the head of 5000 jobs chained in a paused queue
-------------------------------------------------------------------------------

CREATE TEMP TABLE chain_a AS
SELECT pg_temp.chain(job_engine.submit('t350_chain', '{"link": 0}'), 't350_chain', 5000) AS ids;

SELECT lives_ok(format($$SELECT job_engine.abort(%s, 'stop')$$, (SELECT ids[1] FROM chain_a)),
                'abort() of the head of a chain of 5000 dependants succeeds (no stack depth limit)');
SELECT is((SELECT count(*) FROM job_engine.jobs j, chain_a c WHERE j.id = ANY (c.ids) AND j.state = 'aborted'),
          5000::bigint, 'all 5000 jobs of the chain are aborted');
SELECT is((SELECT abort_reason FROM job_engine.jobs j, chain_a c WHERE j.id = c.ids[5000]),
          format('dependency %s aborted', (SELECT ids[4999] FROM chain_a)),
          'the last job names the job it depended on');
SELECT is((SELECT abort_reason FROM job_engine.jobs j, chain_a c WHERE j.id = c.ids[1]), 'stop',
          'the head keeps the reason it was given');

-------------------------------------------------------------------------------
-- The head fails in an executor
-------------------------------------------------------------------------------

CREATE TEMP TABLE chain_b (ids bigint[]);
BEGIN;
INSERT INTO chain_b
SELECT pg_temp.chain(job_engine.submit('t350_head_fails', '{"link": 0}'), 't350_chain', 5000);
COMMIT;

SELECT is(pg_temp.await_state((SELECT ids[1] FROM chain_b), 'failed', 60), 'failed',
          'the head of a second chain of 5000 fails in an executor');
SELECT ok(pg_temp.poll($$(SELECT count(*) = 4999 FROM job_engine.jobs j, chain_b c
                           WHERE j.id = ANY (c.ids[2:]) AND j.state = 'aborted')$$, 60),
          'its 4999 dependants are all aborted');
SELECT is((SELECT abort_reason FROM job_engine.jobs j, chain_b c WHERE j.id = c.ids[2]),
          format('dependency %s failed', (SELECT ids[1] FROM chain_b)),
          'the first dependant names the failed head');
SELECT is((SELECT outcome::text FROM job_engine.attempts a, chain_b c WHERE a.job_id = c.ids[1]), 'failed',
          'the head''s attempt is recorded failed (not crashed)');

-------------------------------------------------------------------------------
-- Compensation along a cascade
-------------------------------------------------------------------------------

CREATE TEMP TABLE chain_c AS
SELECT pg_temp.chain(job_engine.submit('t350_compensated', '{"link": 0}'), 't350_compensated', 2000) AS ids;

SELECT lives_ok(format($$SELECT job_engine.abort(%s, 'undo all')$$, (SELECT ids[1] FROM chain_c)),
                'abort() of the head of a chain of 2000 compensated jobs succeeds');
-- Polled: a dependant whose row another transaction holds for over a second
-- (a claim or the supervisor on a loaded machine) is aborted, and
-- compensated, by the recheck that follows instead (_abort_dependants).
SELECT ok(pg_temp.poll($$(SELECT count(*) = 2000 FROM job_engine.jobs j, chain_c c
                           WHERE j.handler = 't350_undo' AND j.parent_job_id = ANY (c.ids))$$, 60),
          'each of the 2000 aborted jobs gets its compensation job');
SELECT is((SELECT args ->> 'reason' FROM job_engine.jobs j, chain_c c
            WHERE j.handler = 't350_undo' AND j.parent_job_id = c.ids[2000]),
          format('dependency %s aborted', (SELECT ids[1999] FROM chain_c)),
          'the last compensation carries the reason of its job');

-------------------------------------------------------------------------------
-- trace() of a tree 5000 levels deep
-------------------------------------------------------------------------------

-- A chain of child jobs, each submitted "inside" the one before (as a
-- handler submitting the next step would), loaded directly.
DO $$
DECLARE
    prev bigint;
BEGIN
    FOR i IN 0..4999 LOOP
        INSERT INTO job_engine._jobs (handler, queue, args, max_attempts, run_at, owner,
                                      correlation_id, parent_job_id)
        VALUES ('t350_chain', 't350_held', jsonb_build_object('step', i), 1, now(),
                (SELECT oid FROM pg_roles WHERE rolname = current_user),
                '00000000-0000-0000-0000-000000000350', prev)
        RETURNING id INTO prev;
    END LOOP;
END
$$;

SELECT is((SELECT count(*) FROM job_engine.trace('00000000-0000-0000-0000-000000000350')), 5000::bigint,
          'trace() shows every node of a tree 5000 levels deep');
SELECT is((SELECT max(depth) FROM job_engine.trace('00000000-0000-0000-0000-000000000350')), 4999,
          '... down to depth 4999');
SELECT ok((SELECT bool_and(t.args_step = t.ord - 1)
             FROM (SELECT (j.args ->> 'step')::int AS args_step, t.ord
                     FROM job_engine.trace('00000000-0000-0000-0000-000000000350') WITH ORDINALITY AS t(depth, kind, id, name, state, cause, parent_kind, parent_id, created_at, finished_at, detail, ord)
                     JOIN job_engine.jobs j ON j.id = t.id) t),
          '... depth-first, each step after its parent');

-------------------------------------------------------------------------------
-- Clean up
-------------------------------------------------------------------------------

DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 350_cascade_depth') FROM job_engine._jobs
      WHERE handler LIKE 't350\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;
CALL pg_temp.drop_handlers('t350_');

SELECT * FROM finish();

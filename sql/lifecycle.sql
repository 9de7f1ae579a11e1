--
-- Lifecycle guard of job_engine._jobs (docs/architecture.md §2): every legal
-- and illegal transition between the six states, whoever attempts it (here a
-- superuser writing the table directly), the timestamps each transition sets,
-- and the guard on INSERT and DELETE.
--
-- Jobs are inserted directly with ids chosen here and run_at far in the
-- future, so that no worker ever claims them and the output is stable.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE FUNCTION lc_noop(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
SELECT job_engine.register_handler('lc_noop', 'lc_noop(jsonb)');
-- A waiting job with a chosen id.
CREATE FUNCTION lc_new(job_id bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO job_engine._jobs
        (id, handler, queue, args, max_attempts, run_at, owner, correlation_id)
    OVERRIDING SYSTEM VALUE VALUES (job_id, 'lc_noop', 'default', '{}', 3, '2999-01-01 00:00:00+00',
            (SELECT oid FROM pg_roles WHERE rolname = current_user),
            '00000000-0000-4000-8000-000000000000')
    RETURNING id
$$;
-- A new job driven along legal transitions to `target`.
CREATE FUNCTION lc_at(job_id bigint, target job_engine.job_state) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    path job_engine.job_state[] := CASE target
        WHEN 'created' THEN '{}'
        WHEN 'running' THEN '{running}'
        WHEN 'retrying' THEN '{running,retrying}'
        WHEN 'succeeded' THEN '{running,succeeded}'
        WHEN 'failed' THEN '{running,failed}'
        WHEN 'aborted' THEN '{aborted}' END;
    s job_engine.job_state;
BEGIN
    PERFORM lc_new(job_id);
    FOREACH s IN ARRAY path LOOP
        UPDATE job_engine._jobs SET state = s WHERE id = job_id;
    END LOOP;
    RETURN job_id;
END
$$;
-- Runs a statement: 'ok', or the SQLSTATE and message of its error.
CREATE FUNCTION lc_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
--
-- Every (from, to) pair: a fresh job in state `from`, then one UPDATE to
-- `to`.  Legal: created->running|aborted, running->succeeded|failed|aborted|
-- retrying, retrying->running|aborted.  Updating a waiting or running job
-- without changing its state is no transition; a terminal job refuses any
-- update.
--
CREATE TEMP TABLE lc_pairs AS
SELECT f.s AS from_state, t.s AS to_state, 100000 + f.n * 10 + t.n AS job_id
  FROM unnest(enum_range(NULL::job_engine.job_state)) WITH ORDINALITY AS f(s, n),
       unnest(enum_range(NULL::job_engine.job_state)) WITH ORDINALITY AS t(s, n);
SELECT count(lc_at(job_id, from_state)) AS jobs FROM lc_pairs;
SELECT from_state, state AS reached FROM lc_pairs JOIN job_engine._jobs ON id = job_id
 WHERE to_state = 'created' ORDER BY job_id;
ALTER TABLE lc_pairs ADD COLUMN outcome text;
UPDATE lc_pairs
   SET outcome = lc_try(format('UPDATE job_engine._jobs SET state = %L WHERE id = %s', to_state, job_id));
SELECT p.from_state, p.to_state, j.state AS now_in, p.outcome
  FROM lc_pairs p JOIN job_engine._jobs j ON j.id = p.job_id
 ORDER BY p.job_id;
SELECT count(*) FILTER (WHERE outcome = 'ok' AND from_state <> to_state) AS legal,
       count(*) FILTER (WHERE outcome = 'ok' AND from_state = to_state) AS unchanged,
       count(*) FILTER (WHERE outcome LIKE '55000:%') AS refused_55000,
       count(*) FILTER (WHERE outcome <> 'ok' AND outcome NOT LIKE '55000:%') AS other
  FROM lc_pairs;
-- The same refusals, as a client sees them.
SELECT lc_at(200001, 'created');
UPDATE job_engine._jobs SET state = 'succeeded' WHERE id = 200001;
UPDATE job_engine._jobs SET state = 'retrying' WHERE id = 200001;
SELECT lc_at(200002, 'retrying');
UPDATE job_engine._jobs SET state = 'failed' WHERE id = 200002;
UPDATE job_engine._jobs SET state = 'created' WHERE id = 200002;
SELECT lc_at(200003, 'succeeded');
UPDATE job_engine._jobs SET state = 'running' WHERE id = 200003;
SELECT lc_at(200004, 'aborted');
UPDATE job_engine._jobs SET state = 'created' WHERE id = 200004;
-- A statement touching many rows fails as a whole.
UPDATE job_engine._jobs SET state = 'aborted' WHERE id IN (200001, 200003);
SELECT id, state FROM job_engine._jobs WHERE id IN (200001, 200003) ORDER BY id;
--
-- Terminal states are absorbing: no column of a terminal job can change.
--
CREATE TEMP TABLE lc_terminal AS
SELECT s.state, c.n, c.change, 300000 + s.n * 10 + c.n AS job_id
  FROM unnest(ARRAY['succeeded', 'failed', 'aborted']::job_engine.job_state[]) WITH ORDINALITY AS s(state, n),
       unnest(ARRAY['state = state', 'priority = 5', 'result = ''{"x": 1}''', 'run_at = now()',
                    'abort_reason = ''why''', 'last_error = NULL', 'attempts = 0', 'worker_pid = 1',
                    'args = ''{"changed": true}''', 'finished_at = NULL']) WITH ORDINALITY AS c(change, n);
SELECT count(lc_at(job_id, state)) AS jobs FROM lc_terminal;
SELECT state, change,
       lc_try(format('UPDATE job_engine._jobs SET %s WHERE id = %s', change, job_id)) AS outcome
  FROM lc_terminal ORDER BY job_id;
SELECT l.state, count(*) AS jobs, count(*) FILTER (WHERE j.state = l.state) AS unchanged
  FROM lc_terminal l JOIN job_engine._jobs j ON j.id = l.job_id
 GROUP BY l.state ORDER BY l.state;
UPDATE job_engine._jobs SET priority = 1 WHERE id = 200003;
--
-- Waiting and running jobs may change other columns; the table's checks
-- still apply.
--
SELECT lc_at(400001, 'created');
SELECT lc_at(400002, 'running');
SELECT lc_at(400003, 'retrying');
SELECT j, lc_try(format('UPDATE job_engine._jobs SET priority = 7, run_at = %L WHERE id = %s',
                        '2998-01-01 00:00:00+00', j)) AS outcome
  FROM unnest(ARRAY[400001, 400002, 400003]) AS j ORDER BY j;
SELECT id, state, priority, run_at = '2998-01-01 00:00:00+00' AS run_at_moved
  FROM job_engine._jobs WHERE id BETWEEN 400001 AND 400003 ORDER BY id;
SELECT change, lc_try(format('UPDATE job_engine._jobs SET %s WHERE id = %s', change, j)) AS outcome
  FROM (VALUES (400001, 'run_at = ''infinity'''), (400002, 'attempts = 4'), (400003, 'max_attempts = 0')) AS c(j, change)
 ORDER BY j;
--
-- Timestamps: started_at on the first transition to running, kept across
-- retries; finished_at on the terminal transition; state_changed_at on
-- every transition.
--
SELECT lc_new(500001);
CREATE TEMP TABLE lc_log AS
SELECT 0 AS step, state, started_at, finished_at, state_changed_at
  FROM job_engine._jobs WHERE id = 500001;
UPDATE job_engine._jobs SET state = 'running' WHERE id = 500001;
INSERT INTO lc_log SELECT 1, state, started_at, finished_at, state_changed_at FROM job_engine._jobs WHERE id = 500001;
UPDATE job_engine._jobs SET priority = 2 WHERE id = 500001;
INSERT INTO lc_log SELECT 2, state, started_at, finished_at, state_changed_at FROM job_engine._jobs WHERE id = 500001;
UPDATE job_engine._jobs SET state = 'retrying' WHERE id = 500001;
INSERT INTO lc_log SELECT 3, state, started_at, finished_at, state_changed_at FROM job_engine._jobs WHERE id = 500001;
UPDATE job_engine._jobs SET state = 'running' WHERE id = 500001;
INSERT INTO lc_log SELECT 4, state, started_at, finished_at, state_changed_at FROM job_engine._jobs WHERE id = 500001;
UPDATE job_engine._jobs SET state = 'succeeded' WHERE id = 500001;
INSERT INTO lc_log SELECT 5, state, started_at, finished_at, state_changed_at FROM job_engine._jobs WHERE id = 500001;
SELECT step, state,
       started_at IS NOT NULL AS has_started_at,
       started_at IS NOT DISTINCT FROM (SELECT started_at FROM lc_log WHERE step = 1) AS started_at_of_first_run,
       finished_at IS NOT NULL AS has_finished_at,
       finished_at >= started_at AS finished_after_start,
       state_changed_at > lag(state_changed_at) OVER (ORDER BY step) AS state_changed_at_moved
  FROM lc_log ORDER BY step;
SELECT (SELECT started_at = state_changed_at FROM lc_log WHERE step = 1) AS started_at_is_the_transition,
       (SELECT finished_at = state_changed_at FROM lc_log WHERE step = 5) AS finished_at_is_the_transition;
-- created -> aborted: finished, never started.
SELECT lc_at(500002, 'aborted');
SELECT state, started_at IS NULL AS never_started, finished_at IS NOT NULL AS has_finished_at,
       finished_at = state_changed_at AS finished_at_is_the_transition
  FROM job_engine._jobs WHERE id = 500002;
-- running -> failed and running -> aborted finish the job too.
SELECT lc_at(500003, 'failed');
SELECT lc_at(500004, 'running');
UPDATE job_engine._jobs SET state = 'aborted' WHERE id = 500004;
SELECT id, state, started_at IS NOT NULL AS has_started_at, finished_at >= started_at AS finished_after_start
  FROM job_engine._jobs WHERE id IN (500003, 500004) ORDER BY id;
--
-- INSERT: a job is born waiting.
--
SELECT s AS state,
       lc_try(format($q$INSERT INTO job_engine._jobs
                            (id, handler, queue, state, args, max_attempts, run_at, owner, correlation_id)
                        OVERRIDING SYSTEM VALUE VALUES (%s, 'lc_noop', 'default', %L, '{}', 3, '2999-01-01 00:00:00+00',
                                (SELECT oid FROM pg_roles WHERE rolname = current_user),
                                '00000000-0000-4000-8000-000000000000')$q$, 600000 + n, s)) AS outcome
  FROM unnest(enum_range(NULL::job_engine.job_state)) WITH ORDINALITY AS t(s, n)
 ORDER BY n;
SELECT id, state FROM job_engine._jobs WHERE id BETWEEN 600000 AND 600010 ORDER BY id;
INSERT INTO job_engine._jobs (handler, queue, state, args, max_attempts, run_at, owner, correlation_id)
VALUES ('lc_noop', 'default', 'succeeded', '{}', 3, '2999-01-01 00:00:00+00', 10,
        '00000000-0000-4000-8000-000000000000');
-- COPY, which is how pg_restore loads a dump, may load jobs in any state.
COPY job_engine._jobs (id, handler, queue, state, args, max_attempts, attempts, run_at, owner, correlation_id) FROM stdin;
650001	lc_noop	default	succeeded	{}	3	1	2999-01-01 00:00:00+00	10	00000000-0000-4000-8000-000000000000
650002	lc_noop	default	failed	{}	3	3	2999-01-01 00:00:00+00	10	00000000-0000-4000-8000-000000000000
\.
SELECT id, state FROM job_engine._jobs WHERE id BETWEEN 650000 AND 650010 ORDER BY id;
DELETE FROM job_engine._jobs WHERE id BETWEEN 650000 AND 650010;
--
-- DELETE: only terminal jobs can be deleted, and their attempts go with them.
--
SELECT s AS state, lc_at(700000 + n, s) AS job_id
  FROM unnest(enum_range(NULL::job_engine.job_state)) WITH ORDINALITY AS t(s, n) ORDER BY n;
INSERT INTO job_engine._attempts (job_id, attempt, outcome)
SELECT 700000 + n, 1, 'failed' FROM generate_series(1, 6) AS n;
SELECT j.state, lc_try(format('DELETE FROM job_engine._jobs WHERE id = %s', j.id)) AS outcome
  FROM job_engine._jobs j WHERE j.id BETWEEN 700001 AND 700006 ORDER BY j.id;
SELECT job_id, count(*) AS attempts_left FROM job_engine._attempts
 WHERE job_id BETWEEN 700001 AND 700006 GROUP BY job_id ORDER BY job_id;
DELETE FROM job_engine._jobs WHERE id = 700002;
DELETE FROM job_engine._jobs WHERE id BETWEEN 700001 AND 700006;
SELECT id, state FROM job_engine._jobs WHERE id BETWEEN 700001 AND 700006 ORDER BY id;
--
-- Clean up through legal transitions only: every waiting or running test
-- job is aborted, then every test job (all terminal now) is deleted.
--
UPDATE job_engine._jobs SET state = 'aborted', abort_reason = 'end of test'
 WHERE id >= 100000 AND state IN ('created', 'running', 'retrying');
DELETE FROM job_engine._jobs WHERE id >= 100000;
SELECT count(*) AS jobs_left FROM job_engine._jobs WHERE id >= 100000;

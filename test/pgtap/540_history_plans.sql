-- History queries through the jobs view use indexes (docs/decisions.md,
-- "History through row-level security"), for a superuser and for a plain
-- role, and a leaky function in WHERE still sees only the caller's rows.
-- Plans, not timings: EXPLAIN (COSTS OFF) on 50,000 finished jobs with
-- fresh statistics.  One transaction, rolled back: the jobs, the
-- statistics and the roles go with it, and no executor sees a job here.
BEGIN;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(16);

CREATE ROLE tap_plan_user;
CREATE ROLE tap_plan_other;
CREATE SCHEMA tap_plan;
GRANT USAGE ON SCHEMA tap_plan TO PUBLIC;
CREATE TABLE tap_plan.seen (v text);
GRANT INSERT, SELECT ON tap_plan.seen TO PUBLIC;
-- Cheap, so the planner would run it first if it were allowed to.
CREATE FUNCTION tap_plan.peek(v anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
AS $$ BEGIN INSERT INTO tap_plan.seen VALUES (v::text); RETURN true; END $$;

-- Finished jobs as a busy cluster keeps them: one every 50 seconds over a
-- month, a fifth failed and a fifth aborted, 1% each of two plain roles
-- (pg_temp.role_of), the rest of the superuser.  Loaded as pg_restore would, past the lifecycle guard
-- (replica mode fires no ordinary trigger), so their times can be set.
CREATE FUNCTION pg_temp.role_of(i bigint) RETURNS regrole LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE (i / 5) % 100 WHEN 0 THEN 'tap_plan_user'::regrole
                              WHEN 1 THEN 'tap_plan_other'::regrole
                              ELSE 10::oid::regrole END
$$;
SET LOCAL session_replication_role = replica;
INSERT INTO job_engine._jobs (handler, queue, state, args, max_attempts, attempts, run_at,
                              created_at, started_at, finished_at, owner, correlation_id)
SELECT 'tap_plan_h', 'tap_plan', (ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'aborted'])[1 + i % 5]::job_engine.job_state,
       jsonb_build_object('secret', 'job ' || i), 3, 1, t, t, t, t + interval '1 second',
       pg_temp.role_of(i),
       gen_random_uuid()
  FROM generate_series(1, 50000) i,
       LATERAL (SELECT now() - (50001 - i) * interval '50 seconds' AS t) s;
RESET session_replication_role;
ANALYZE job_engine._jobs;

GRANT EXECUTE ON FUNCTION pg_temp.plan_of(text, boolean), pg_temp.role_of(bigint) TO PUBLIC;
SELECT count(*) AS own_failed FROM generate_series(1, 50000) i
 WHERE i % 5 = 3 AND pg_temp.role_of(i) = 'tap_plan_user'::regrole \gset

CREATE TEMP TABLE queries (n integer, name text, q text);
INSERT INTO queries VALUES
    (1, 'failed jobs', $$SELECT id, handler FROM job_engine.jobs WHERE state = 'failed'$$),
    (2, 'the last 20 jobs', $$SELECT id, state FROM job_engine.jobs ORDER BY id DESC LIMIT 20$$),
    (3, 'jobs finished in the last hour', $$SELECT id FROM job_engine.jobs WHERE finished_at >= now() - interval '1 hour'$$),
    (4, 'jobs created in the last hour', $$SELECT id FROM job_engine.jobs WHERE created_at >= now() - interval '1 hour'$$);
GRANT SELECT ON queries TO PUBLIC;

-- a superuser ------------------------------------------------------------------------
-- (PostgreSQL 18 may skip-scan jobs_history_owner_idx instead: few owners.)
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_history_(state|owner)_idx',
               'superuser: ' || name || ' are found through a history index') FROM queries WHERE n = 1;
SELECT matches(pg_temp.plan_of(q), 'Index.* Scan Backward using _jobs_pkey',
               'superuser: ' || name || ' are read backwards from the primary key') FROM queries WHERE n = 2;
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_finished_idx',
               'superuser: ' || name || ' are found through jobs_finished_idx') FROM queries WHERE n = 3;
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_created_idx',
               'superuser: ' || name || ' are found through jobs_created_idx') FROM queries WHERE n = 4;
SELECT is(count(*), 0::bigint, 'superuser: no history query scans every job')
  FROM queries WHERE pg_temp.plan_of(q) LIKE '%Seq Scan%';

-- a plain role -----------------------------------------------------------------------
SET ROLE tap_plan_user;
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_history_owner_idx',
               'plain role: ' || name || ' are found through jobs_history_owner_idx') FROM queries WHERE n = 1;
SELECT matches(pg_temp.plan_of(q), 'Index.* Scan Backward using _jobs_pkey',
               'plain role: ' || name || ' are read backwards from the primary key') FROM queries WHERE n = 2;
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_finished_idx',
               'plain role: ' || name || ' are found through jobs_finished_idx') FROM queries WHERE n = 3;
SELECT matches(pg_temp.plan_of(q), 'Index.* (using|on) jobs_created_idx',
               'plain role: ' || name || ' are found through jobs_created_idx') FROM queries WHERE n = 4;
SELECT is(count(*), 0::bigint, 'plain role: no history query scans every job')
  FROM queries WHERE pg_temp.plan_of(q) LIKE '%Seq Scan%';

-- ... and what those plans return is the role's own jobs only.
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE state = 'failed'), :own_failed::bigint,
    'plain role: its own failed jobs, none of the others''');
SELECT is((SELECT count(*) FROM (SELECT args FROM job_engine.jobs ORDER BY id DESC LIMIT 20) l
            WHERE pg_temp.role_of(substr(args ->> 'secret', 5)::bigint) <> 'tap_plan_user'::regrole), 0::bigint,
    'plain role: the last 20 jobs are its own');
-- A leaky function beside the indexed filters.
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE state = 'failed' AND tap_plan.peek(args)), :own_failed::bigint,
    'plain role: a function in WHERE beside an indexed state filter');
SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE created_at >= now() - interval '1 day' AND tap_plan.peek(args)) > 0, true,
    'plain role: a function in WHERE beside an indexed time range');
SELECT is((SELECT count(*) FROM (SELECT id FROM job_engine.jobs WHERE tap_plan.peek(args)
                                  ORDER BY id DESC LIMIT 20) l), 20::bigint,
    'plain role: a function in WHERE under ORDER BY id LIMIT');
RESET ROLE;
SELECT is((SELECT count(*) FROM tap_plan.seen
            WHERE ((v::jsonb ->> 'secret') COLLATE "C" LIKE 'job %')
              AND pg_temp.role_of(substr(v::jsonb ->> 'secret', 5)::bigint) <> 'tap_plan_user'::regrole), 0::bigint,
    'a function in WHERE was never shown another role''s job');

SELECT * FROM finish();
ROLLBACK;

-------------------------------------------------------------------------------
-- Claiming jobs
--
-- Piece src/sql/70_claim.sql.  C twin: src/claim.c, and src/dispatch.c for
-- the claim marks; _next_due_in() is for the executor's sleep (src/executor.c).
-------------------------------------------------------------------------------

-- Claims the next runnable job for worker `pid`, and with it up to
-- group_commit - 1 more of the same queue when the queue groups commits,
-- having released the deferred jobs now due (src/deferred.c).
-- The executors run the same code (src/claim.c) directly; this function is
-- for tests that race claims from ordinary sessions.
CREATE FUNCTION job_engine_internal._claim(pid integer)
RETURNS TABLE (job_id bigint, attempt integer, fn text, owner oid,
               timeout_ms integer, args jsonb, handler text, queue text,
               correlation_id uuid, parent_job_id bigint, event_id bigint,
               library text, symbol text)
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_claim';

-- Seconds until the next deferred job is due (NULL: none), for an executor
-- about to sleep, which has just released those due (src/deferred.c).
-- Jobs already due but blocked (paused queue, dependency, ordering key,
-- full queue) do not count: whatever unblocks them wakes an executor.
-- Nor do deferred jobs due whose rows another transaction held: the next
-- claim releases them.
CREATE FUNCTION job_engine_internal._next_due_in()
RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.date_part('epoch', j.run_at OPERATOR(pg_catalog.-) pg_catalog.now())
      FROM job_engine._jobs j
     WHERE j.blocked OPERATOR(pg_catalog.=) 't' AND j.state IN ('created', 'retrying')
       AND j.run_at OPERATOR(pg_catalog.>) pg_catalog.now()
     ORDER BY j.run_at
     LIMIT 1
$$;

-- Decides, for waiting job `job_id`, whether it is held back from the claim,
-- and records it: 'd' blocked by a dependency, 'k' by an earlier unfinished
-- job of its owner with its ordering key, 'r' runnable (a candidate), 'x'
-- aborted here because a prerequisite failed or was aborted (or no longer
-- waiting), 'b' not decided because another transaction holds its row,
-- 'w' held back ('d' or 'k') by a blocker whose row another transaction
-- holds, and noted in _recheck to be decided again.  A held job is not in jobs_claim_idx, so that no claim looks at it again
-- until a transition that may unblock it releases it (_unblock): claims
-- cost the same however many blocked jobs wait.
--
-- Safe against a concurrent release because a job is held only while this
-- transaction holds (1) the job's row, locked before anything else is
-- looked at, so that every look has a snapshot taken after the lock, and
-- (2) a share lock on one blocker that is unfinished in its latest version.
-- The transition ending that blocker updates its row, so it waits for this
-- transaction (one of the engine's: claims and recovery passes commit at
-- once), and its release then sees the job held.  Nothing waits here: rows
-- another transaction holds are skipped.  A blocker whose row is held (an
-- abort() left open) is still unfinished for all that is known: the job is
-- held back without the share lock, and noted in _recheck instead, so that
-- it is decided again once the row is free (never made a candidate on the
-- strength of a row an ordinary role may hold for as long as it likes).
CREATE FUNCTION job_engine_internal._hold_job(job_id bigint)
RETURNS "char"
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- One plan per session, made of index probes, whatever the estimates.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    c record;
    why "char";
    busy boolean := false;
    doomed record;
    aborted job_engine._jobs;
BEGIN
    SELECT x.id, x.owner, x.ordering_key, x.depends_on IS NOT NULL AS has_dependencies, x.blocked
      INTO c
      FROM job_engine._jobs x
     WHERE x.id OPERATOR(pg_catalog.=) _hold_job.job_id
       AND x.state IN ('created', 'retrying')
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN CASE WHEN EXISTS (SELECT 1 FROM job_engine._jobs x
                                  WHERE x.id OPERATOR(pg_catalog.=) _hold_job.job_id
                                    AND x.state IN ('created', 'retrying'))
                    THEN 'b' ELSE 'x' END;
    END IF;

    IF c.has_dependencies THEN
        SELECT p.id, p.state INTO doomed
          FROM job_engine._dependencies d
          JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) d.depends_on
         WHERE d.job_id OPERATOR(pg_catalog.=) c.id
           AND p.state IN ('failed', 'aborted')
         ORDER BY p.id
         LIMIT 1;
        IF FOUND THEN
            UPDATE job_engine._jobs x
               SET state = 'aborted',
                   abort_reason = pg_catalog.format('dependency %s %s', doomed.id, doomed.state)
             WHERE x.id OPERATOR(pg_catalog.=) c.id
            RETURNING * INTO aborted;
            PERFORM job_engine_internal._after_transition(aborted);
            RETURN 'x';
        END IF;
        PERFORM 1 FROM job_engine._jobs p
         WHERE p.id IN (SELECT d.depends_on FROM job_engine._dependencies d
                         WHERE d.job_id OPERATOR(pg_catalog.=) c.id)
           AND p.state IN ('created', 'running', 'retrying')
         LIMIT 1
           FOR SHARE SKIP LOCKED;
        IF FOUND THEN
            why := 'd';
        ELSIF EXISTS (SELECT 1 FROM job_engine._jobs p
                       WHERE p.id IN (SELECT d.depends_on FROM job_engine._dependencies d
                                       WHERE d.job_id OPERATOR(pg_catalog.=) c.id)
                         AND p.state IN ('created', 'running', 'retrying')) THEN
            why := 'd';
            busy := true;
        END IF;
    END IF;
    IF why IS NULL AND c.ordering_key IS NOT NULL THEN
        PERFORM 1 FROM job_engine._jobs o
         WHERE o.owner OPERATOR(pg_catalog.=) c.owner
           AND o.ordering_key OPERATOR(pg_catalog.=) c.ordering_key
           AND o.id OPERATOR(pg_catalog.<) c.id
           AND o.state IN ('created', 'running', 'retrying')
         ORDER BY o.id DESC
         LIMIT 1
           FOR SHARE SKIP LOCKED;
        IF FOUND THEN
            why := 'k';
        ELSIF EXISTS (SELECT 1 FROM job_engine._jobs o
                       WHERE o.owner OPERATOR(pg_catalog.=) c.owner
                         AND o.ordering_key OPERATOR(pg_catalog.=) c.ordering_key
                         AND o.id OPERATOR(pg_catalog.<) c.id
                         AND o.state IN ('created', 'running', 'retrying')) THEN
            why := 'k';
            busy := true;
        END IF;
    END IF;
    IF why IS DISTINCT FROM c.blocked THEN
        UPDATE job_engine._jobs x SET blocked = why WHERE x.id OPERATOR(pg_catalog.=) c.id;
    END IF;
    IF busy THEN
        -- Held without a lock on its blocker, whose end may not see it:
        -- decided again later (once noted is enough: _release_rechecks
        -- keeps the note).
        INSERT INTO job_engine._recheck (job_id)
        SELECT c.id WHERE NOT EXISTS (SELECT 1 FROM job_engine._recheck r
                                       WHERE r.job_id OPERATOR(pg_catalog.=) c.id);
        RETURN 'w';
    END IF;
    RETURN COALESCE(why, 'r');
END
$$;

-- Holds back the run of blocked candidates of `queue` that starts at the
-- head a claim picked (key head_priority, head_run_at, head_id), at most 64
-- looked at, in claim order (_hold_job for each).  Returns how many were
-- held or aborted: 0 means the head could not be (its row is busy, or it is
-- no longer blocked), and the claim takes the jobs behind it instead.
CREATE FUNCTION job_engine_internal._hold(queue text, head_priority integer, head_run_at timestamptz,
        head_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    c record;
    n integer := 0;
    seen integer := 0;
    why "char";
BEGIN
    FOR c IN SELECT j.id FROM job_engine._jobs j
              WHERE j.queue OPERATOR(pg_catalog.=) _hold.queue
                AND j.state IN ('created', 'retrying') AND j.blocked IS NULL
                AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=)
                    ROW(head_priority, head_run_at, head_id)
              ORDER BY j.priority, j.run_at, j.id
    LOOP
        EXIT WHEN seen OPERATOR(pg_catalog.>=) 64;
        seen := seen OPERATOR(pg_catalog.+) 1;
        why := job_engine_internal._hold_job(c.id);
        CONTINUE WHEN why OPERATOR(pg_catalog.=) 'b';
        -- Runnable: the run of blocked jobs ends here.
        EXIT WHEN why OPERATOR(pg_catalog.=) 'r';
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- The claim marks (src/dispatch.c) and the running counts (src/running.c)
-- follow the rows written to _jobs through the lifecycle guard
-- (20_guard.sql), which notes each row written as a candidate and each
-- move into or out of 'running'.  A TRUNCATE fires no row trigger: it
-- makes the running counts untrusted until the supervisor counts the rows
-- again.  ENABLE ALWAYS, like the guard: rows truncated under
-- session_replication_role = replica are gone all the same.
CREATE FUNCTION job_engine_internal._running_truncated()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_running_truncated';

CREATE TRIGGER jobs_running_truncated
    AFTER TRUNCATE ON job_engine._jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION job_engine_internal._running_truncated();
ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated;

-- This database's running counts, one row per queue held (one row with a
-- NULL queue when none is), and whether claims trust them: for tests and
-- troubleshooting.
CREATE FUNCTION job_engine_internal._running_counts()
RETURNS TABLE (queue text, running integer, trusted boolean)
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_running_counts';

-- The marks this database's claims descend from, one row per queue
-- listed, whether the table is complete, and its state: 'complete' (a
-- queue not listed has no candidate), 'overflow' (more queues have
-- candidates than it holds: claims walk the gaps between the listed ones
-- for the others) or 'invalid' (claims walk every queue from its start).
-- For tests and troubleshooting.
CREATE FUNCTION job_engine_internal._dispatch_marks()
RETURNS TABLE (queue text, priority integer, run_at timestamptz, id bigint)
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_dispatch_marks';

CREATE FUNCTION job_engine_internal._dispatch_complete()
RETURNS boolean
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_dispatch_complete';

CREATE FUNCTION job_engine_internal._dispatch_state()
RETURNS text
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_dispatch_state';

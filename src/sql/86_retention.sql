-------------------------------------------------------------------------------
-- Retention
--
-- Piece src/sql/86_retention.sql.  C twin: src/supervisor.c, which calls
-- _purge_expired() per job_engine.retention; purge() enters through the gate
-- (src/gate.c).
-------------------------------------------------------------------------------

-- Deletes the terminal jobs that finished before `cutoff` (of the roles
-- `caller` is a member of; NULL: all), then every queue that nothing
-- configured and that holds no job, whatever created it (emptied by this
-- purge or never given a job): a queue not paused, without a concurrency
-- limit or group commit and named by no handler is gone until it is used
-- again.  The queues are few (one per name in use), so all are looked at.  Rows that
-- another transaction holds (another purge left open) are skipped, never
-- waited for: retention must not stall behind a user's transaction.
CREATE FUNCTION job_engine._purge_before(cutoff timestamptz, caller oid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- Attempts go with their jobs (trigger jobs_delete_attempts), and so do
    -- their dependency edges (ON DELETE CASCADE).
    WITH d AS (
        DELETE FROM job_engine._jobs j
         WHERE j.id IN (SELECT x.id FROM job_engine._jobs x
                         WHERE x.state IN ('succeeded', 'failed', 'aborted')
                           AND x.finished_at OPERATOR(pg_catalog.<) cutoff
                           AND (caller IS NULL OR pg_catalog.pg_has_role(caller, x.owner, 'MEMBER'))
                           FOR UPDATE SKIP LOCKED)
        RETURNING j.queue)
    SELECT pg_catalog.count(*) INTO n FROM d;

    -- Each kind of job is found by its queue through an index: candidates
    -- (jobs_claim_idx), held or finished ones (jobs_queue_idx), running ones
    -- (jobs_running_idx).
    DELETE FROM job_engine.queues q
     WHERE q.name IN (SELECT o.name FROM job_engine.queues o
                       WHERE NOT o.paused AND o.concurrency IS NULL
                         AND o.group_commit OPERATOR(pg_catalog.=) 1
                         FOR UPDATE SKIP LOCKED)
       AND NOT EXISTS (SELECT 1 FROM job_engine.handlers h
                        WHERE h.queue OPERATOR(pg_catalog.=) q.name)
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.queue OPERATOR(pg_catalog.=) q.name
                          AND j.state IN ('created', 'retrying') AND j.blocked IS NULL)
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.queue OPERATOR(pg_catalog.=) q.name
                          AND (j.finished_at IS NOT NULL OR j.blocked IS NOT NULL))
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.state OPERATOR(pg_catalog.=) 'running' AND j.worker_pid IS NOT NULL
                          AND j.queue OPERATOR(pg_catalog.=) q.name);
    RETURN n;
END
$$;

CREATE FUNCTION job_engine._purge(caller oid, older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require(older_than, 'older_than');
    PERFORM job_engine._require_interval(older_than, 'older_than', true);
    RETURN job_engine._purge_before(pg_catalog.now() OPERATOR(pg_catalog.-) older_than, caller);
END
$$;

-- Deletes the terminal jobs of every role that finished `older_than`
-- ago or more (the caller must be allowed to see them).
CREATE FUNCTION job_engine.purge(older_than interval)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Called by the supervisor per job_engine.retention (seconds).
CREATE FUNCTION job_engine._purge_expired(retention_s integer)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT job_engine._purge_before(
        pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => retention_s), NULL)
$$;

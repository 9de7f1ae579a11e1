-------------------------------------------------------------------------------
-- Retention
--
-- Piece src/sql/86_retention.sql.  C twin: src/supervisor.c, which calls
-- _purge_expired() per job_engine.retention; purge() enters through the gate
-- (src/gate.c).
-------------------------------------------------------------------------------

-- Deletes the terminal jobs that finished before `cutoff` (of the roles
-- `caller` is a member of; NULL: all), then the events published before
-- `events_cutoff` that no job refers to any longer (of the publishers
-- `caller` is a member of), then every queue that configure_queue() never
-- configured and that holds no job (emptied by this purge or never given a
-- job): a queue created by a submit, not paused and named by no handler is
-- gone until it is used again.  The queues are few (one per name in use), so all are
-- looked at.  With `by_queue`, a job is deleted only once it is also older
-- than its queue's retention for its state (retention for succeeded jobs,
-- failed_retention, else retention, for the others), or `cluster` where
-- the queue sets none (NULL: kept).  Rows that another transaction holds
-- (another purge left open) are skipped, never waited for: retention must
-- not stall behind a user's transaction.
CREATE FUNCTION job_engine_internal._purge_before(cutoff timestamptz, caller oid,
        events_cutoff timestamptz, by_queue boolean DEFAULT false,
        cluster interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- Attempts go with their jobs (trigger jobs_delete_attempts), and so do
    -- their dependency edges (ON DELETE CASCADE).  `cutoff` bounds the scan
    -- of jobs_finished_idx; the queue's own rule is checked per job.
    WITH d AS (
        DELETE FROM job_engine._jobs j
         WHERE j.id IN (SELECT x.id FROM job_engine._jobs x
                         WHERE x.state IN ('succeeded', 'failed', 'aborted')
                           AND x.finished_at OPERATOR(pg_catalog.<) cutoff
                           AND (caller IS NULL OR pg_catalog.pg_has_role(caller, x.owner, 'MEMBER'))
                           AND (NOT by_queue
                                OR x.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)
                                   COALESCE((SELECT CASE WHEN x.state OPERATOR(pg_catalog.=) 'succeeded'
                                                         THEN q.retention
                                                         ELSE COALESCE(q.failed_retention, q.retention) END
                                               FROM job_engine.queues q
                                              WHERE q.name OPERATOR(pg_catalog.=) x.queue),
                                            cluster)))
                           FOR UPDATE SKIP LOCKED)
        RETURNING j.queue)
    SELECT pg_catalog.count(*) INTO n FROM d;

    -- An event is history like its jobs: it goes once none of them is left
    -- (jobs_event_idx) and it is as old as a finished job that may go.
    IF events_cutoff IS NOT NULL THEN
        DELETE FROM job_engine._events e
         WHERE e.id IN (SELECT v.id FROM job_engine._events v
                         WHERE v.published_at OPERATOR(pg_catalog.<) events_cutoff
                           AND (caller IS NULL OR pg_catalog.pg_has_role(caller, v.publisher, 'MEMBER'))
                           AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                                            WHERE j.event_id OPERATOR(pg_catalog.=) v.id)
                           FOR UPDATE SKIP LOCKED);
    END IF;

    -- Each kind of job is found by its queue through an index: candidates
    -- (jobs_claim_idx), held or finished ones (jobs_queue_idx), running ones
    -- (jobs_running_idx).  Only the rows that go are locked: purge() is
    -- PUBLIC, and a lock on a queue in use, held until the caller's
    -- transaction ends, would make every submit to it (FOR KEY SHARE in
    -- _ensure_queue) and every pause or configure wait for that transaction.
    DELETE FROM job_engine.queues q
     WHERE q.name IN (SELECT o.name FROM job_engine.queues o
                       WHERE NOT o.paused AND o.configured_at IS NULL
                         AND NOT EXISTS (SELECT 1 FROM job_engine.handlers h
                                          WHERE h.queue OPERATOR(pg_catalog.=) o.name)
                         AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                                          WHERE j.queue OPERATOR(pg_catalog.=) o.name
                                            AND j.state IN ('created', 'retrying') AND j.blocked IS NULL)
                         AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                                          WHERE j.queue OPERATOR(pg_catalog.=) o.name
                                            AND (j.finished_at IS NOT NULL OR j.blocked IS NOT NULL))
                         AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                                          WHERE j.state OPERATOR(pg_catalog.=) 'running'
                                            AND j.worker_pid IS NOT NULL
                                            AND j.queue OPERATOR(pg_catalog.=) o.name)
                         FOR UPDATE OF o SKIP LOCKED);
    RETURN n;
END
$$;

CREATE FUNCTION job_engine_internal._purge(caller oid, older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._require(older_than, 'older_than');
    PERFORM job_engine_internal._require_interval(older_than, 'older_than', true);
    RETURN job_engine_internal._purge_before(pg_catalog.now() OPERATOR(pg_catalog.-) older_than, caller,
                                    pg_catalog.now() OPERATOR(pg_catalog.-) older_than);
END
$$;

-- Deletes the terminal jobs of every role that finished `older_than`
-- ago or more (the caller must be allowed to see them), whatever their
-- queues' retention, and the events left without jobs.
CREATE FUNCTION job_engine.purge(older_than interval)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Called by the supervisor once a minute with job_engine.retention in
-- seconds (a negative value: the setting keeps jobs forever).  A queue's
-- retention and failed_retention take the place of the setting for its
-- jobs; events go after the setting's time.  Nothing to do when neither the
-- setting nor any queue lets anything expire.
CREATE FUNCTION job_engine_internal._purge_expired(retention_s integer)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cluster interval;
    shortest interval;
BEGIN
    IF retention_s OPERATOR(pg_catalog.>=) 0 THEN
        cluster := pg_catalog.make_interval(secs => retention_s);
    END IF;
    SELECT LEAST(cluster, pg_catalog.min(q.retention), pg_catalog.min(q.failed_retention))
      INTO shortest FROM job_engine.queues q;
    IF shortest IS NULL THEN
        RETURN 0;
    END IF;
    RETURN job_engine_internal._purge_before(pg_catalog.now() OPERATOR(pg_catalog.-) shortest, NULL,
        pg_catalog.now() OPERATOR(pg_catalog.-) cluster, by_queue => true, cluster => cluster);
END
$$;

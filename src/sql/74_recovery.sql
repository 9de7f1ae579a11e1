-------------------------------------------------------------------------------
-- Crash recovery
--
-- Piece src/sql/74_recovery.sql.  C twin: src/recovery.c, which calls these
-- functions.
-------------------------------------------------------------------------------

-- Records attempt `attempt` of job `job_id` with its outcome and applies the
-- retry policy (_record_failure), for recovery, which must never be wedged
-- by one job: if recording fails, the job ends failed, saying why.  The
-- caller holds the job's row.
CREATE FUNCTION job_engine_internal._record_for_recovery(job_id bigint, attempt integer,
        outcome job_engine.attempt_outcome, sqlstate text, message text,
        detail text, hint text, context text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._record_failure(job_id, attempt, outcome, sqlstate, message, detail, hint, context);
EXCEPTION WHEN OTHERS THEN
    UPDATE job_engine._attempts a
       SET outcome = _record_for_recovery.outcome, finished_at = pg_catalog.clock_timestamp(),
           sqlstate = _record_for_recovery.sqlstate, message = _record_for_recovery.message
     WHERE a.job_id OPERATOR(pg_catalog.=) _record_for_recovery.job_id
       AND a.attempt OPERATOR(pg_catalog.=) _record_for_recovery.attempt
       AND a.outcome OPERATOR(pg_catalog.=) 'running';
    UPDATE job_engine._jobs x
       SET state = 'failed', worker_pid = NULL,
           last_error = pg_catalog.format('recovery could not apply the retry policy: %s (SQLSTATE %s)',
                                          SQLERRM, SQLSTATE)
     WHERE x.id OPERATOR(pg_catalog.=) _record_for_recovery.job_id
       AND x.state OPERATOR(pg_catalog.=) 'running'
       AND x.attempts OPERATOR(pg_catalog.=) _record_for_recovery.attempt;
END
$$;

-- Crash recovery: records the attempts of running jobs whose executor died
-- as crashed and applies the retry policy.  `dead_pids` lists the pids of
-- executors that exited; NULL means every running job of this database
-- (the supervisor's start, when no executor of ours can be alive).  A job
-- whose row another transaction holds (an abort() left open) is not waited
-- for: its executor is gone, so the periodic pass (_recover_orphans) finds
-- it later if it is still running then.
CREATE FUNCTION job_engine_internal._recover_crashed(dead_pids integer[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
    n integer := 0;
BEGIN
    -- A running job whose handler row is missing is left for a later round:
    -- unregister_handler refuses while jobs of the handler are unfinished,
    -- so that happens only while pg_restore loads the tables one by one
    -- (_jobs before handlers), and the retry policy needs the handler.
    FOR j IN SELECT id, attempts, worker_pid FROM job_engine._jobs r
              WHERE state OPERATOR(pg_catalog.=) 'running'
                AND (dead_pids IS NULL OR worker_pid OPERATOR(pg_catalog.=) ANY (dead_pids))
                AND EXISTS (SELECT FROM job_engine.handlers h
                             WHERE h.name OPERATOR(pg_catalog.=) r.handler)
              ORDER BY id
              FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM job_engine_internal._record_for_recovery(j.id, j.attempts, 'crashed', NULL,
            pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid),
            NULL, 'The attempt''s work was rolled back; the retry policy decides what happens next.', NULL);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Failures the executors could not record (src/outcome.c): each is recorded
-- once its job's row is free, fenced by attempt like any record (a job
-- aborted meanwhile records nothing).  Returns how many were recorded.
CREATE FUNCTION job_engine_internal._record_pending_outcomes()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    n integer := 0;
BEGIN
    FOR p IN SELECT o.* FROM job_engine._pending_outcomes o ORDER BY o.noted_at, o.job_id LOOP
        PERFORM 1 FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) p.job_id
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND
            AND EXISTS (SELECT 1 FROM job_engine._jobs j WHERE j.id OPERATOR(pg_catalog.=) p.job_id);
        PERFORM job_engine_internal._record_for_recovery(p.job_id, p.attempt, 'failed', p.sqlstate,
                                                p.message, p.detail, p.hint, p.context);
        DELETE FROM job_engine._pending_outcomes o
         WHERE o.job_id OPERATOR(pg_catalog.=) p.job_id
           AND o.attempt OPERATOR(pg_catalog.=) p.attempt;
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Decides again (_hold_job) for up to `batch` jobs noted in _recheck:
-- jobs held back at submit (whose blocker may have ended before the submit
-- committed, unseen by the transition that ended it), and jobs a transition
-- could not write because another transaction held their row.  Each is held
-- back again, made a candidate, or aborted; a job whose row (or whose
-- blocker's row) is still busy stays noted, and goes to the back: the
-- oldest notes are taken first, and a note another pass has locked is
-- skipped, so that rows an open transaction holds never keep the others
-- from being decided however many there are.  Wakes an executor per job made a candidate.  Returns how
-- many were decided (`batch`: perhaps more are noted).  Run by executors
-- about to sleep (src/claim.c) and by recovery's periodic pass, in batches
-- so that the rows it locks are held for moments only.
CREATE FUNCTION job_engine_internal._release_rechecks(batch integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    noted record;
    why "char";
    decided integer := 0;
    released integer := 0;
BEGIN
    FOR noted IN SELECT r.ctid AS tid, r.job_id FROM job_engine._recheck r
                  ORDER BY r.noted_at, r.job_id LIMIT batch
                    FOR UPDATE SKIP LOCKED LOOP
        why := job_engine_internal._hold_job(noted.job_id);
        IF why IN ('b', 'w') THEN
            UPDATE job_engine._recheck r SET noted_at = pg_catalog.clock_timestamp()
             WHERE r.ctid OPERATOR(pg_catalog.=) noted.tid;
            CONTINUE;
        END IF;
        -- The job's other notes too, but none another pass has locked.
        DELETE FROM job_engine._recheck r
         WHERE r.ctid IN (SELECT o.ctid FROM job_engine._recheck o
                           WHERE o.job_id OPERATOR(pg_catalog.=) noted.job_id
                             FOR UPDATE SKIP LOCKED);
        decided := decided OPERATOR(pg_catalog.+) 1;
        IF why OPERATOR(pg_catalog.=) 'r' THEN
            released := released OPERATOR(pg_catalog.+) 1;
        END IF;
    END LOOP;
    IF released OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine_internal._wake_on_commit(released);
    END IF;
    RETURN decided;
END
$$;

-- Running jobs whose worker process is gone (no process of that pid is
-- connected to this database) although no executor of this database was
-- seen to exit: claimed by a session that then disconnected, or restored
-- from a dump taken while they ran.  Their attempts are recorded as crashed
-- like any other (the supervisor, every few seconds).  The same pass
-- records the failures the executors had to leave pending and releases the
-- jobs noted in _recheck.  Returns how many orphans were recovered.
CREATE FUNCTION job_engine_internal._recover_orphans()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone integer[];
BEGIN
    PERFORM job_engine_internal._record_pending_outcomes();
    PERFORM job_engine_internal._release_rechecks(256);
    SELECT pg_catalog.array_agg(DISTINCT j.worker_pid) INTO gone
      FROM job_engine._jobs j
     WHERE j.state OPERATOR(pg_catalog.=) 'running'
       AND j.worker_pid IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(NULL) a
                        WHERE a.pid OPERATOR(pg_catalog.=) j.worker_pid
                          AND a.datid OPERATOR(pg_catalog.=)
                              (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
    IF gone IS NULL THEN
        RETURN 0;           -- never _recover_crashed(NULL), which means all
    END IF;
    RETURN job_engine_internal._recover_crashed(gone);
END
$$;

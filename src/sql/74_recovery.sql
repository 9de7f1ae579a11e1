-------------------------------------------------------------------------------
-- Crash recovery
--
-- Piece src/sql/74_recovery.sql.  C twin: src/recovery.c, which calls these
-- functions.
-------------------------------------------------------------------------------

-- Crash recovery: records the attempts of running jobs whose executor died
-- as crashed and applies the retry policy.  `dead_pids` lists the pids of
-- executors that exited; NULL means every running job of this database
-- (the supervisor's start, when no executor of ours can be alive).
CREATE FUNCTION job_engine._recover_crashed(dead_pids integer[])
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
              FOR UPDATE
    LOOP
        BEGIN
            PERFORM job_engine._record_failure(j.id, j.attempts, 'crashed', NULL,
                pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid),
                NULL, 'The attempt''s work was rolled back; the retry policy decides what happens next.', NULL);
        EXCEPTION WHEN OTHERS THEN
            -- Recording must never wedge recovery (and with it the whole
            -- database): end the job failed, saying what went wrong.
            UPDATE job_engine._attempts a
               SET outcome = 'crashed', finished_at = pg_catalog.clock_timestamp(),
                   message = pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid)
             WHERE a.job_id OPERATOR(pg_catalog.=) j.id
               AND a.attempt OPERATOR(pg_catalog.=) j.attempts;
            UPDATE job_engine._jobs x
               SET state = 'failed', worker_pid = NULL,
                   last_error = pg_catalog.format('recovery could not apply the retry policy: %s (SQLSTATE %s)',
                                                  SQLERRM, SQLSTATE)
             WHERE x.id OPERATOR(pg_catalog.=) j.id;
        END;
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Running jobs whose worker process is gone (no process of that pid is
-- connected to this database) although no executor of this database was
-- seen to exit: claimed by a session that then disconnected, or restored
-- from a dump taken while they ran.  Their attempts are
-- recorded as crashed like any other (the supervisor, every few seconds).
CREATE FUNCTION job_engine._recover_orphans()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone integer[];
BEGIN
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
    RETURN job_engine._recover_crashed(gone);
END
$$;

-------------------------------------------------------------------------------
-- Served databases
--
-- Piece src/sql/96_databases.sql.  C twin: src/settings.c, which reads
-- job_engine.databases for the launcher.
-------------------------------------------------------------------------------

-- Whether job_engine.databases lists the database `dbname`, compared as
-- written (case-sensitively).
CREATE FUNCTION job_engine_internal._serves_database(dbname name)
RETURNS boolean
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_serves_database';

-- Jobs of a database that job_engine.databases does not list are stored but
-- never run: say so when the extension is created there, not later.
DO $$
BEGIN
    IF NOT job_engine_internal._serves_database(pg_catalog.current_database()) THEN
        RAISE WARNING 'job_engine does not serve database "%"', pg_catalog.current_database()
            USING DETAIL = pg_catalog.format('job_engine.databases is %L: jobs submitted here are stored but do not run.',
                                             pg_catalog.current_setting('job_engine.databases')),
                  HINT = 'Add the database''s name, as pg_database spells it, to job_engine.databases and restart the server.';
    END IF;
END
$$;

-- Whether this database runs fewer executors than configured for lack of
-- background worker slots, until all run again (src/shmem.c): a shortfall
-- of executors means that, not an executor being replaced, which the
-- workers view also leaves out for a moment.
CREATE FUNCTION job_engine_internal._short_of_worker_slots()
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_short_of_worker_slots';

-- Whether this database is served and its workers run, in one row, with
-- what is wrong in words (NULL when nothing is).  SECURITY DEFINER only so
-- that pg_stat_activity shows the supervisor (a superuser's process) to
-- every role; it takes no input and returns nothing about jobs or roles.
CREATE FUNCTION job_engine.status(
        OUT database name, OUT served boolean, OUT supervisor_pid integer,
        OUT executors_configured integer, OUT executors_running integer,
        OUT executors_busy integer, OUT notification_queue_usage double precision,
        OUT problem text)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hint text;
BEGIN
    database := pg_catalog.current_database();
    BEGIN
        served := job_engine_internal._serves_database(database);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        -- The library refuses to load unless preloaded, and every function
        -- that needs it fails; this one is where one looks when no job
        -- runs, so it says why rather than fail too.
        GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
        executors_configured := 0;
        executors_running := 0;
        executors_busy := 0;
        notification_queue_usage := pg_catalog.pg_notification_queue_usage();
        problem := pg_catalog.concat_ws(': ', SQLERRM, NULLIF(hint, ''));
        RETURN;
    END;
    SELECT a.pid INTO supervisor_pid FROM pg_catalog.pg_stat_activity a
     WHERE a.backend_type OPERATOR(pg_catalog.=) 'job_engine supervisor'
       AND a.datname OPERATOR(pg_catalog.=) status.database
     LIMIT 1;
    executors_configured := CASE WHEN served
                                 THEN pg_catalog.current_setting('job_engine.max_workers')::integer
                                 ELSE 0 END;
    SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE w.state OPERATOR(pg_catalog.=) 'busy')
      INTO executors_running, executors_busy
      FROM job_engine.workers w WHERE w.database OPERATOR(pg_catalog.=) status.database;
    notification_queue_usage := pg_catalog.pg_notification_queue_usage();
    problem := CASE
        WHEN pg_catalog.pg_is_in_recovery() THEN
            'the server is a standby in recovery: nothing runs here until it is promoted'
        WHEN NOT served THEN
            pg_catalog.format('job_engine.databases (%s) does not list this database: its jobs are stored but do not run',
                              pg_catalog.current_setting('job_engine.databases'))
        WHEN supervisor_pid IS NULL THEN
            'no supervisor runs for this database: see the server log (max_worker_processes, a database being dropped or renamed)'
        WHEN executors_running OPERATOR(pg_catalog.<) executors_configured
             AND job_engine_internal._short_of_worker_slots() THEN
            pg_catalog.format('%s of %s executors run: see the server log (max_worker_processes)',
                              executors_running, executors_configured)
        WHEN notification_queue_usage OPERATOR(pg_catalog.>) 0.5 THEN
            'the notification queue is more than half full: a session that LISTENs is not reading its notifications'
        END;
END
$$;
COMMENT ON FUNCTION job_engine.status() IS
    'Whether job_engine serves this database, its supervisor and executors, the notification queue''s usage, and what is wrong (NULL when nothing)';

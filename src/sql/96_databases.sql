-------------------------------------------------------------------------------
-- Served databases
--
-- Piece src/sql/96_databases.sql.  C twin: src/settings.c, which reads
-- job_engine.databases for the launcher.
-------------------------------------------------------------------------------

-- Whether job_engine.databases lists the database `dbname`, compared as
-- written (case-sensitively).
CREATE FUNCTION job_engine._serves_database(dbname name)
RETURNS boolean
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_serves_database';

-- Jobs of a database that job_engine.databases does not list are stored but
-- never run: say so when the extension is created there, not later.
DO $$
BEGIN
    IF NOT job_engine._serves_database(pg_catalog.current_database()) THEN
        RAISE WARNING 'job_engine does not serve database "%"', pg_catalog.current_database()
            USING DETAIL = pg_catalog.format('job_engine.databases is %L: jobs submitted here are stored but do not run.',
                                             pg_catalog.current_setting('job_engine.databases')),
                  HINT = 'Add the database''s name, as pg_database spells it, to job_engine.databases and restart the server.';
    END IF;
END
$$;

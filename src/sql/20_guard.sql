-------------------------------------------------------------------------------
-- Triggers of the tables
--
-- Piece src/sql/20_guard.sql.  C twin: src/guard.c (the lifecycle guard).
-------------------------------------------------------------------------------

-------------------------------------------------------------------------------
-- Lifecycle guard (docs/architecture.md §2).  Fires for every role,
-- superusers included.
-------------------------------------------------------------------------------

-- New jobs start 'created'; only terminal jobs may be deleted; terminal
-- jobs never change; the state moves only along the lifecycle's edges, and
-- state_changed_at, started_at and finished_at follow it (src/guard.c).
-- It also notes, for the shared memory beside the tables, every row
-- written as a candidate (the claim marks, src/dispatch.c) and every move
-- into or out of 'running' (the running counts, src/running.c).  ENABLE
-- ALWAYS, so that it sees every row: under session_replication_role =
-- replica it only notes, and checks, stamps and counts nothing.
-- The one function without SET search_path: it is C that runs no SQL and
-- looks up no name, and the SET clause, applied on every row of every claim
-- and outcome, cost a fifth of a group-commit executor's time.
CREATE FUNCTION job_engine_internal._jobs_guard()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'job_engine_jobs_guard';

CREATE TRIGGER jobs_lifecycle_guard
    BEFORE INSERT OR UPDATE OR DELETE ON job_engine._jobs
    FOR EACH ROW EXECUTE FUNCTION job_engine_internal._jobs_guard();
ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard;

-------------------------------------------------------------------------------
-- Attempts follow their jobs; events never change
-------------------------------------------------------------------------------

-- The attempts of deleted jobs go with them (_attempts has no foreign key).
CREATE FUNCTION job_engine_internal._delete_attempts()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM job_engine._attempts a
     USING deleted_jobs d
     WHERE a.job_id OPERATOR(pg_catalog.=) d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_delete_attempts
    AFTER DELETE ON job_engine._jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_engine_internal._delete_attempts();

CREATE FUNCTION job_engine_internal._events_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'event % is immutable', OLD.id
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Publish a new event instead of changing a published one.';
END
$$;

CREATE TRIGGER events_immutable
    BEFORE UPDATE ON job_engine._events
    FOR EACH ROW EXECUTE FUNCTION job_engine_internal._events_immutable();

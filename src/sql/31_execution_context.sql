-------------------------------------------------------------------------------
-- The running job, live executors, interrupts
--
-- Piece src/sql/31_execution_context.sql.  C twins: src/execution_context.c
-- (context, current_job_id), src/shmem.c (_workers), src/wakeup.c (_interrupt).
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine.context()
RETURNS jsonb
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_context';

CREATE FUNCTION job_engine.current_job_id()
RETURNS bigint
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_current_job_id';

CREATE FUNCTION job_engine_internal._workers()
RETURNS TABLE (pid integer, database oid, state text, job_id bigint,
               attempt integer, since timestamptz)
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_workers';

-- Asks the executor running (job_id, attempt) to stop its attempt once the
-- calling transaction commits (an abort that rolls back interrupts nothing).
CREATE FUNCTION job_engine_internal._interrupt(job_id bigint, attempt integer)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_interrupt';

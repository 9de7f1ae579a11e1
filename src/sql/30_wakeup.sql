-------------------------------------------------------------------------------
-- Waking executors on commit
--
-- Piece src/sql/30_wakeup.sql.  C twin: src/wakeup.c.
-------------------------------------------------------------------------------

-- Wakes idle executors of this database when the transaction commits.
CREATE FUNCTION job_engine_internal._wake_on_commit(jobs integer)
RETURNS void
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_wake_on_commit';

-- Whether a row version with xmin `row_xmin` was written by this
-- transaction, not committed yet: its jobs cannot start before it commits.
CREATE FUNCTION job_engine_internal._written_in_this_transaction(row_xmin xid)
RETURNS boolean
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_written_in_this_transaction';

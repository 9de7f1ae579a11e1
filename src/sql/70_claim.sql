-------------------------------------------------------------------------------
-- Claiming jobs
--
-- Piece src/sql/70_claim.sql.  C twin: src/claim.c; _next_due_in() is for the
-- executor's sleep (src/executor.c).
-------------------------------------------------------------------------------

-- Claims the next runnable job for worker `pid`, and with it up to
-- group_commit - 1 more of the same queue when the queue groups commits.
-- The executors run the same code (src/claim.c) directly; this function is
-- for tests that race claims from ordinary sessions.
CREATE FUNCTION job_engine._claim(pid integer)
RETURNS TABLE (job_id bigint, attempt integer, fn text, owner oid,
               timeout_ms integer, args jsonb, handler text, queue text,
               correlation_id uuid, parent_job_id bigint, event_id bigint,
               library text, symbol text)
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_claim';

-- Seconds until the next delayed job is due (NULL: none).  Jobs already due
-- but blocked (paused queue, dependency, ordering key, full queue) do not
-- count: whatever unblocks them wakes an executor.
CREATE FUNCTION job_engine._next_due_in()
RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.date_part('epoch', j.run_at OPERATOR(pg_catalog.-) pg_catalog.now())
      FROM job_engine._jobs j
     WHERE j.state IN ('created', 'retrying') AND j.priority IS NOT NULL
       AND j.run_at OPERATOR(pg_catalog.>) pg_catalog.now()
     ORDER BY j.run_at
     LIMIT 1
$$;

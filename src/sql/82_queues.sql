-------------------------------------------------------------------------------
-- Queues
--
-- Piece src/sql/82_queues.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine_internal._existing_queue(queue text)
RETURNS job_engine.queues
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q job_engine.queues;
BEGIN
    PERFORM job_engine_internal._require_name(queue, 'queue');
    SELECT * INTO q FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) queue FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Queues are created by register_handler(), submit(..., queue => ...) or configure_queue().';
    END IF;
    RETURN q;
END
$$;

CREATE FUNCTION job_engine_internal._pause_queue(caller oid, queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._existing_queue(queue);
    UPDATE job_engine.queues SET paused = true WHERE name OPERATOR(pg_catalog.=) queue;
END
$$;

CREATE FUNCTION job_engine_internal._resume_queue(caller oid, queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._existing_queue(queue);
    UPDATE job_engine.queues SET paused = false WHERE name OPERATOR(pg_catalog.=) queue;
    PERFORM job_engine_internal._wake_on_commit(pg_catalog.current_setting('job_engine.max_workers')::integer);
END
$$;

CREATE FUNCTION job_engine_internal._configure_queue(caller oid, queue text, concurrency integer,
        group_commit integer, retention interval, failed_retention interval)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._require_name(queue, 'queue');
    IF concurrency IS NOT NULL AND concurrency OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'argument "concurrency" must be at least 1, got %', concurrency
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL for no limit, or pause the queue to stop it.';
    END IF;
    IF group_commit IS NOT NULL
       AND (group_commit OPERATOR(pg_catalog.<) 1 OR group_commit OPERATOR(pg_catalog.>) 64) THEN
        RAISE EXCEPTION 'argument "group_commit" must be between 1 and 64, got %', group_commit
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1 commits every attempt on its own; at most 64 attempts share a commit.';
    END IF;
    PERFORM job_engine_internal._require_interval(retention, 'retention', false);
    PERFORM job_engine_internal._require_interval(failed_retention, 'failed_retention', false);
    PERFORM job_engine_internal._ensure_queue(queue);
    UPDATE job_engine.queues q
       SET concurrency = _configure_queue.concurrency,
           group_commit = COALESCE(_configure_queue.group_commit, 1),
           retention = _configure_queue.retention,
           failed_retention = _configure_queue.failed_retention,
           configured_at = pg_catalog.now()
     WHERE q.name OPERATOR(pg_catalog.=) _configure_queue.queue;
    PERFORM job_engine_internal._wake_on_commit(pg_catalog.current_setting('job_engine.max_workers')::integer);
END
$$;

CREATE FUNCTION job_engine.pause_queue(queue text)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine.resume_queue(queue text)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Sets every option of a queue; one left out is reset to its default.
-- retention and failed_retention: how long its finished jobs are kept
-- (succeeded / failed and aborted), in place of job_engine.retention.
CREATE FUNCTION job_engine.configure_queue(queue text, concurrency integer DEFAULT NULL,
        group_commit integer DEFAULT NULL, retention interval DEFAULT NULL,
        failed_retention interval DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

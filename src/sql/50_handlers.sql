-------------------------------------------------------------------------------
-- Handlers
--
-- Piece src/sql/50_handlers.sql.  C twin: none.  Its public functions are thin
-- C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

-- Checks the options shared by register_handler and register_c_handler.
CREATE FUNCTION job_engine._validate_handler_options(name text, queue text,
        max_attempts integer, backoff_base interval, backoff_max interval,
        timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require_name(name, 'name');
    PERFORM job_engine._require_name(queue, 'queue');
    PERFORM job_engine._require(max_attempts, 'max_attempts');
    PERFORM job_engine._require(backoff_base, 'backoff_base');
    PERFORM job_engine._require(backoff_max, 'backoff_max');
    IF max_attempts OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'argument "max_attempts" must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_attempts counts the first attempt too; 1 means never retry.';
    END IF;
    PERFORM job_engine._require_interval(backoff_base, 'backoff_base', true);
    PERFORM job_engine._require_interval(backoff_max, 'backoff_max', true);
    PERFORM job_engine._require_interval(timeout, 'timeout', false);
    IF backoff_max OPERATOR(pg_catalog.<) backoff_base THEN
        RAISE EXCEPTION 'argument "backoff_max" (%) is below "backoff_base" (%)', backoff_max, backoff_base
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'backoff_max caps the exponential delay and must be at least backoff_base.';
    END IF;
    PERFORM job_engine._validate_retry_on(retry_on);

    IF compensate_with IS NOT NULL THEN
        PERFORM job_engine._require_name(compensate_with, 'compensate_with');
        IF compensate_with OPERATOR(pg_catalog.<>) name
           AND NOT EXISTS (SELECT 1 FROM job_engine.handlers h
                           WHERE h.name OPERATOR(pg_catalog.=) _validate_handler_options.compensate_with) THEN
            RAISE EXCEPTION 'compensation handler "%" does not exist', compensate_with
                USING ERRCODE = 'undefined_function',
                      HINT = 'Register the compensation handler before naming it in compensate_with.';
        END IF;
    END IF;
END
$$;

CREATE FUNCTION job_engine._register_handler(caller oid, name text, fn regprocedure,
        queue text, max_attempts integer, backoff_base interval, backoff_max interval,
        timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pg_catalog.pg_proc;
BEGIN
    PERFORM job_engine._validate_handler_options(name, queue, max_attempts, backoff_base,
                                                 backoff_max, timeout, retry_on, compensate_with);
    PERFORM job_engine._require(fn, 'fn');

    SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid OPERATOR(pg_catalog.=) fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', fn::oid
            USING ERRCODE = 'undefined_function',
                  HINT = 'Name the handler function by signature, e.g. ''my_handler(jsonb)''.';
    END IF;
    IF p.prokind OPERATOR(pg_catalog.<>) 'f' THEN
        RAISE EXCEPTION 'handler function % must be a plain function', fn
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Procedures, aggregates and window functions cannot be handlers.';
    END IF;
    IF p.pronargs OPERATOR(pg_catalog.<>) 1
       OR p.proargtypes[0] OPERATOR(pg_catalog.<>) 'pg_catalog.jsonb'::pg_catalog.regtype THEN
        RAISE EXCEPTION 'handler function % must take exactly one argument of type jsonb', fn
            USING ERRCODE = 'invalid_function_definition',
                  HINT = 'Declare it as CREATE FUNCTION f(args jsonb) RETURNS ...; the job''s args are passed to it.';
    END IF;
    IF p.proretset THEN
        RAISE EXCEPTION 'handler function % must not return a set', fn
            USING ERRCODE = 'invalid_function_definition',
                  HINT = 'Return one value (e.g. jsonb); it is stored as the job''s result.';
    END IF;
    IF NOT pg_catalog.has_function_privilege(caller, fn, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function %', fn
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'GRANT EXECUTE on the function to the registering role.';
    END IF;
    PERFORM job_engine._ensure_queue(queue);
    INSERT INTO job_engine.handlers AS h
        (name, fn, queue, max_attempts, backoff_base, backoff_max, timeout,
         retry_on, compensate_with, owner)
    VALUES (name, fn, queue, max_attempts, backoff_base, backoff_max, timeout,
            retry_on, compensate_with, caller)
    ON CONFLICT ON CONSTRAINT handlers_pkey DO UPDATE
        SET fn = EXCLUDED.fn, library = NULL, symbol = NULL, queue = EXCLUDED.queue,
            max_attempts = EXCLUDED.max_attempts, backoff_base = EXCLUDED.backoff_base,
            backoff_max = EXCLUDED.backoff_max, timeout = EXCLUDED.timeout,
            retry_on = EXCLUDED.retry_on, compensate_with = EXCLUDED.compensate_with,
            owner = EXCLUDED.owner, registered_at = pg_catalog.now();
END
$$;

CREATE FUNCTION job_engine.register_handler(name text, fn regprocedure,
        queue text DEFAULT 'default', max_attempts integer DEFAULT 3,
        backoff_base interval DEFAULT '1 second', backoff_max interval DEFAULT '1 hour',
        timeout interval DEFAULT NULL, retry_on text[] DEFAULT NULL,
        compensate_with text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._unregister_handler(caller oid, name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    waiting bigint;
BEGIN
    PERFORM job_engine._require_name(name, 'name');
    h := job_engine._require_handler(name);
    IF NOT pg_catalog.pg_has_role(caller, h.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'must be a member of role % to unregister handler "%"',
                pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(h.owner)), name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Ask the role that registered the handler, or a superuser.';
    END IF;
    SELECT pg_catalog.count(*) INTO waiting FROM job_engine._jobs j
     WHERE j.handler OPERATOR(pg_catalog.=) name
       AND j.state IN ('created', 'running', 'retrying');
    IF waiting OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'handler "%" still has % unfinished job(s)', name, waiting
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Wait for them to finish or abort them with job_engine.abort().';
    END IF;
    IF EXISTS (SELECT 1 FROM job_engine.subscriptions s WHERE s.handler OPERATOR(pg_catalog.=) name) THEN
        RAISE EXCEPTION 'handler "%" is used by event subscriptions', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Remove them with job_engine.unsubscribe() first.';
    END IF;
    IF EXISTS (SELECT 1 FROM job_engine.handlers o
               WHERE o.compensate_with OPERATOR(pg_catalog.=) _unregister_handler.name
                 AND o.name OPERATOR(pg_catalog.<>) _unregister_handler.name) THEN
        RAISE EXCEPTION 'handler "%" is the compensation handler of other handlers', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Re-register those handlers without compensate_with first.';
    END IF;
    DELETE FROM job_engine.handlers WHERE handlers.name OPERATOR(pg_catalog.=) h.name;
END
$$;

CREATE FUNCTION job_engine.unregister_handler(name text)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

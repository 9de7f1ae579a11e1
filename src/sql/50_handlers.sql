-------------------------------------------------------------------------------
-- Handlers
--
-- Piece src/sql/50_handlers.sql.  C twin: src/handler_function.c (a
-- handler's function, looked up by signature).  Its public functions are thin
-- C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

-- Checks the options shared by register_handler and register_c_handler.
CREATE FUNCTION job_engine_internal._validate_handler_options(name text, queue text,
        max_attempts integer, backoff_base interval, backoff_max interval,
        timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._require_name(name, 'name');
    PERFORM job_engine_internal._require_name(queue, 'queue', has_default => true);
    PERFORM job_engine_internal._require(max_attempts, 'max_attempts', has_default => true);
    PERFORM job_engine_internal._require(backoff_base, 'backoff_base', has_default => true);
    PERFORM job_engine_internal._require(backoff_max, 'backoff_max', has_default => true);
    IF max_attempts OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'argument "max_attempts" must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_attempts counts the first attempt too; 1 means never retry.';
    END IF;
    PERFORM job_engine_internal._require_interval(backoff_base, 'backoff_base', true);
    PERFORM job_engine_internal._require_interval(backoff_max, 'backoff_max', true);
    -- The timeout is armed as the attempt's statement_timeout, an int of
    -- milliseconds: a longer one would be cut short silently.  Checked
    -- before _require_interval(), so that '200 years' gets this hint rather
    -- than the one about 100 years.
    IF pg_catalog.date_part('epoch', timeout) OPERATOR(pg_catalog.*) 1000
       OPERATOR(pg_catalog.>) 2147483647 THEN
        RAISE EXCEPTION 'argument "timeout" is out of range: % is longer than 2147483647 ms', timeout
            USING ERRCODE = 'interval_field_overflow',
                  HINT = 'An attempt''s timeout is a statement_timeout, at most 2147483647 ms (24 days 20:31:23.647); split longer work into several jobs.';
    END IF;
    PERFORM job_engine_internal._require_interval(timeout, 'timeout', false);
    IF backoff_max OPERATOR(pg_catalog.<) backoff_base THEN
        RAISE EXCEPTION 'argument "backoff_max" (%) is below "backoff_base" (%)', backoff_max, backoff_base
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'backoff_max caps the exponential delay and must be at least backoff_base.';
    END IF;
    PERFORM job_engine_internal._validate_retry_on(retry_on);

    IF compensate_with IS NOT NULL THEN
        PERFORM job_engine_internal._require_name(compensate_with, 'compensate_with');
        -- Key-share locked, like a submit's handler: unregister_handler
        -- waits and then sees that this handler names it.
        PERFORM 1 FROM job_engine.handlers h
          WHERE h.name OPERATOR(pg_catalog.=) _validate_handler_options.compensate_with
            FOR KEY SHARE;
        IF NOT FOUND AND compensate_with OPERATOR(pg_catalog.<>) name THEN
            RAISE EXCEPTION 'compensation handler "%" does not exist', compensate_with
                USING ERRCODE = 'undefined_function',
                      HINT = 'Register the compensation handler before naming it in compensate_with.';
        END IF;
    END IF;
END
$$;

-- The OID of the function whose signature a handler stores ('schema.name(jsonb)',
-- see job_engine.handlers.fn), NULL when there is none now.
CREATE FUNCTION job_engine_internal._handler_function(signature text)
RETURNS oid
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_handler_function';

-- Registers a handler (a SQL function's signature, or a library and symbol,
-- with its options), or updates the handler of that name, which needs
-- membership in its owner role.  Nothing is written, and no queue created,
-- before that check.  An updated handler keeps its owner, like a function
-- replaced with CREATE OR REPLACE.  The row is taken FOR NO KEY UPDATE,
-- which does not wait for submits holding it FOR KEY SHARE.  A concurrent
-- first registration of the same name is checked like an existing handler
-- once it has committed.
CREATE FUNCTION job_engine_internal._store_handler(caller oid, name text, fn text, library text,
        symbol text, queue text, max_attempts integer, backoff_base interval,
        backoff_max interval, timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    old job_engine.handlers;
BEGIN
    LOOP
        SELECT * INTO old FROM job_engine.handlers o
         WHERE o.name OPERATOR(pg_catalog.=) name FOR NO KEY UPDATE;
        IF FOUND THEN
            PERFORM job_engine_internal._require_handler_owner(caller, old, 'change');
            PERFORM job_engine_internal._ensure_queue(queue);
            UPDATE job_engine.handlers o
               SET fn = _store_handler.fn, library = _store_handler.library,
                   symbol = _store_handler.symbol, queue = _store_handler.queue,
                   max_attempts = _store_handler.max_attempts,
                   backoff_base = _store_handler.backoff_base,
                   backoff_max = _store_handler.backoff_max, timeout = _store_handler.timeout,
                   retry_on = _store_handler.retry_on,
                   compensate_with = _store_handler.compensate_with,
                   registered_at = pg_catalog.now()
             WHERE o.name OPERATOR(pg_catalog.=) _store_handler.name;
            RETURN;
        END IF;
        PERFORM job_engine_internal._ensure_queue(queue);
        INSERT INTO job_engine.handlers AS o
            (name, fn, library, symbol, queue, max_attempts, backoff_base, backoff_max,
             timeout, retry_on, compensate_with, owner)
        VALUES (name, fn, library, symbol, queue, max_attempts, backoff_base, backoff_max,
                timeout, retry_on, compensate_with, caller)
        ON CONFLICT ON CONSTRAINT handlers_pkey DO NOTHING;
        IF FOUND THEN
            RETURN;
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION job_engine_internal._register_handler(caller oid, name text, fn regprocedure,
        queue text, max_attempts integer, backoff_base interval, backoff_max interval,
        timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pg_catalog.pg_proc;
BEGIN
    PERFORM job_engine_internal._validate_handler_options(name, queue, max_attempts, backoff_base,
                                                 backoff_max, timeout, retry_on, compensate_with);
    PERFORM job_engine_internal._require(fn, 'fn');

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
                  HINT = 'GRANT EXECUTE on the handler''s function to the registering role.';
    END IF;
    -- By signature, always schema-qualified (src/handler_function.c reads it).
    PERFORM job_engine_internal._store_handler(caller, name,
        pg_catalog.format('%I.%I(jsonb)',
                          (SELECT n.nspname FROM pg_catalog.pg_namespace n
                            WHERE n.oid OPERATOR(pg_catalog.=) p.pronamespace),
                          p.proname),
        NULL, NULL, queue, max_attempts, backoff_base, backoff_max, timeout, retry_on,
        compensate_with);
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

CREATE FUNCTION job_engine_internal._unregister_handler(caller oid, name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    waiting bigint;
    dependents text;
BEGIN
    PERFORM job_engine_internal._require_name(name, 'name');
    -- Locked first: a submit still uncommitted holds the row FOR KEY SHARE,
    -- so this waits for it and then counts its job.
    h := job_engine_internal._require_handler(name, for_change => true);
    PERFORM job_engine_internal._require_handler_owner(caller, h, 'unregister');
    SELECT pg_catalog.count(*) INTO waiting FROM job_engine._jobs j
     WHERE j.handler OPERATOR(pg_catalog.=) name
       AND j.state IN ('created', 'running', 'retrying');
    IF waiting OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'handler "%" still has % unfinished job(s)', name, waiting
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Wait for them to finish or abort them with job_engine.abort().';
    END IF;
    -- The dependents are named, as DROP names them: they may be another
    -- role's, which the caller has to ask to remove them.
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s, owned by %s)', s.id, s.event_type,
                                     pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(s.owner))),
                                 ', ' ORDER BY s.id)
      INTO dependents
      FROM job_engine.subscriptions s WHERE s.handler OPERATOR(pg_catalog.=) name;
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'handler "%" is used by event subscriptions', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = pg_catalog.format('Subscriptions: %s.', dependents),
                  HINT = 'Remove them with job_engine.unsubscribe() first.';
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('"%s" (owned by %s)', o.name,
                                     pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.owner))),
                                 ', ' ORDER BY o.name)
      INTO dependents
      FROM job_engine.handlers o
     WHERE o.compensate_with OPERATOR(pg_catalog.=) _unregister_handler.name
       AND o.name OPERATOR(pg_catalog.<>) _unregister_handler.name;
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'handler "%" is the compensation handler of other handlers', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = pg_catalog.format('Handlers naming it in compensate_with: %s.', dependents),
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

-------------------------------------------------------------------------------
-- Native C handlers
--
-- Piece src/sql/52_native_handlers.sql.  C twin: src/native_handler.c
-- (job_engine_check_c_symbol, and the call the executors make).
-------------------------------------------------------------------------------

-- Resolves library/symbol now so that a typo fails at registration, not at
-- the first run.  Errors come from the dynamic loader (58P01, 42883).
CREATE FUNCTION job_engine_internal._check_c_symbol(library text, symbol text)
RETURNS void
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_check_c_symbol';

CREATE FUNCTION job_engine_internal._register_c_handler(caller oid, name text, library text,
        symbol text, queue text, max_attempts integer, backoff_base interval,
        backoff_max interval, timeout interval, retry_on text[], compensate_with text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) caller) THEN
        RAISE EXCEPTION 'permission denied to register C handler "%"', name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only superusers can register native C handlers: they run code loaded into the server.';
    END IF;
    PERFORM job_engine_internal._require_name(library, 'library');
    PERFORM job_engine_internal._require_name(symbol, 'symbol');
    -- Same validation as SQL handlers, with a stand-in function.
    PERFORM job_engine_internal._validate_handler_options(name, queue, max_attempts, backoff_base,
                                                 backoff_max, timeout, retry_on, compensate_with);
    PERFORM job_engine_internal._check_c_symbol(library, symbol);
    PERFORM job_engine_internal._store_handler(caller, name, NULL, library, symbol, queue, max_attempts,
        backoff_base, backoff_max, timeout, retry_on, compensate_with);
END
$$;

CREATE FUNCTION job_engine.register_c_handler(name text, library text, symbol text,
        queue text DEFAULT 'default', max_attempts integer DEFAULT 3,
        backoff_base interval DEFAULT '1 second', backoff_max interval DEFAULT '1 hour',
        timeout interval DEFAULT NULL, retry_on text[] DEFAULT NULL,
        compensate_with text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

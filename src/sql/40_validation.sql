-------------------------------------------------------------------------------
-- Validation helpers (internal)
--
-- Piece src/sql/40_validation.sql.  C twin: none (SQL only).
-------------------------------------------------------------------------------

-- Raises 22004 if value is NULL.  has_default: whether the public function
-- gives the argument a default, so that the hint may suggest leaving it out.
CREATE FUNCTION job_engine_internal._require(value anyelement, argument text,
        has_default boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION 'argument "%" must not be NULL', argument
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = CASE WHEN has_default
                              THEN 'Pass a value or leave the argument out to get its default.'
                              ELSE 'Pass a value: this argument has no default.' END;
    END IF;
END
$$;

-- A name must have a visible character.  [[:space:]] alone follows the
-- collation's locale (nothing beyond ASCII under "C"), so the Unicode white
-- space and the invisible (default-ignorable) characters are listed: a name
-- of no-break spaces (U+00A0) or zero-width spaces (U+200B) is blank too.
-- has_default as for _require(); blank_hint: the hint for a blank value, for
-- arguments that are not names (an abort's reason, a cron expression).
CREATE FUNCTION job_engine_internal._require_name(value text, argument text,
        has_default boolean DEFAULT false, blank_hint text DEFAULT 'Give a non-blank name.')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._require(value, argument, has_default);
    IF value OPERATOR(pg_catalog.~) ('^[[:space:]\u0085\u00a0\u00ad\u034f\u061c\u115f\u1160'
                                     '\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f'
                                     '\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0'
                                     '\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a'
                                     '\U000e0000-\U000e0fff]*$') THEN
        RAISE EXCEPTION 'argument "%" must not be empty', argument
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = blank_hint;
    END IF;
    IF pg_catalog.length(value) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'argument "%" is too long (% characters)', argument, pg_catalog.length(value)
            USING ERRCODE = 'name_too_long',
                  HINT = 'Names are limited to 200 characters.';
    END IF;
END
$$;

CREATE FUNCTION job_engine_internal._require_interval(value interval, argument text, allow_zero boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RETURN;
    END IF;
    IF value OPERATOR(pg_catalog.<) '0'::interval
       OR (NOT allow_zero AND value OPERATOR(pg_catalog.=) '0'::interval) THEN
        RAISE EXCEPTION 'argument "%" must be %, got %', argument,
                CASE WHEN allow_zero THEN 'zero or positive' ELSE 'positive' END, value
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN allow_zero
                              THEN 'This interval is a delay or a duration and cannot be negative.'
                              ELSE 'This interval is a duration and must be greater than zero.' END;
    END IF;
    -- Compared as PostgreSQL compares intervals: '99 years 11 months 30
    -- days' is 100 years.
    IF value OPERATOR(pg_catalog.>=) '100 years'::interval THEN
        RAISE EXCEPTION 'argument "%" is out of range: % is at least 100 years (months count as 30 days)',
                argument, value
            USING ERRCODE = 'interval_field_overflow',
                  HINT = 'Use an interval shorter than 100 years; PostgreSQL compares intervals counting a month as 30 days and a day as 24 hours.';
    END IF;
END
$$;

-- The handler `handler_name`, row-locked until the end of the transaction:
-- FOR KEY SHARE for those that create jobs of it or name it (submit,
-- subscribe, schedule...), so that unregister_handler, which takes it FOR
-- UPDATE (`for_change`) before it looks for unfinished jobs, waits for them
-- to commit and then sees their jobs, or removes it first and they find no
-- handler.  Re-registering (an UPDATE of no key column) does not wait.
CREATE FUNCTION job_engine_internal._require_handler(handler_name text, for_change boolean DEFAULT false)
RETURNS job_engine.handlers
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
BEGIN
    PERFORM job_engine_internal._require_name(handler_name, 'handler');
    IF for_change THEN
        SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) handler_name
           FOR UPDATE;
    ELSE
        SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) handler_name
           FOR KEY SHARE;
    END IF;
    -- Only unregister_handler() changes the row: telling it to register
    -- the handler first would be no help.
    IF NOT FOUND THEN
        RAISE EXCEPTION 'handler "%" does not exist', handler_name
            USING ERRCODE = 'undefined_function',
                  HINT = CASE WHEN for_change
                              THEN 'There is nothing to unregister: registered handlers are listed in job_engine.handlers.'
                              ELSE 'Register it first with job_engine.register_handler(); registered handlers are listed in job_engine.handlers.' END;
    END IF;
    RETURN h;
END
$$;

-- Raises 42501 unless `caller` is a member of the role owning handler h:
-- changing or removing a handler is its owner's (docs/architecture.md §7).  `action`
-- completes "must be a member of role R to <action> handler ...".
CREATE FUNCTION job_engine_internal._require_handler_owner(caller oid, h job_engine.handlers, action text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(caller, h.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'must be a member of role % to % handler "%"',
                pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(h.owner)), action, h.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Ask the role that registered the handler, or a superuser; or register one under another name.';
    END IF;
END
$$;

CREATE FUNCTION job_engine_internal._ensure_queue(queue_name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._require_name(queue_name, 'queue');
    -- KEY SHARE, the lock the job's foreign key takes anyway, taken now: a
    -- purge removing unused queues (FOR UPDATE SKIP LOCKED) then leaves this
    -- row alone, instead of deleting it before the job is inserted (23503).
    PERFORM 1 FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) queue_name FOR KEY SHARE;
    IF NOT FOUND THEN
        INSERT INTO job_engine.queues (name) VALUES (queue_name) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

CREATE FUNCTION job_engine_internal._validate_retry_on(retry_on text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    code text;
BEGIN
    IF retry_on IS NULL THEN
        RETURN;
    END IF;
    IF pg_catalog.array_ndims(retry_on) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'argument "retry_on" must be a one-dimensional array'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass SQLSTATE codes like ARRAY[''40001'', ''08''].';
    END IF;
    IF pg_catalog.array_position(retry_on, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'argument "retry_on" must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'List SQLSTATE codes or classes, e.g. ARRAY[''40001'', ''08''].';
    END IF;
    FOREACH code IN ARRAY retry_on LOOP
        IF code OPERATOR(pg_catalog.!~) '^[0-9A-Z]{2}([0-9A-Z]{3})?$' THEN
            RAISE EXCEPTION 'invalid SQLSTATE or class "%" in "retry_on"', code
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Each entry is a five-character SQLSTATE (e.g. 40001) or a two-character class (e.g. 08), upper case.';
        END IF;
    END LOOP;
END
$$;

-- Refuses jobs owned by a superuser when job_engine.allow_superuser_jobs is off.
CREATE FUNCTION job_engine_internal._check_owner(owner oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.current_setting('job_engine.allow_superuser_jobs')::boolean
       AND (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) owner) THEN
        RAISE EXCEPTION 'jobs owned by superuser % are not allowed',
                pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(owner))
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Submit as an ordinary role, or set job_engine.allow_superuser_jobs = on.';
    END IF;
END
$$;

-- Raises 42883 unless the handler's function exists now (looked up by its
-- signature), and 42501 unless `caller` may execute it (native handlers
-- have none to check): a job that could only fail is refused before it is
-- created.  `action` completes "permission denied to <action> handler ...".
CREATE FUNCTION job_engine_internal._require_execute(caller oid, h job_engine.handlers, action text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn oid;
BEGIN
    IF h.fn IS NULL THEN
        RETURN;
    END IF;
    fn := job_engine_internal._handler_function(h.fn);
    IF fn IS NULL THEN
        RAISE EXCEPTION 'function % of handler "%" does not exist', h.fn, h.name
            USING ERRCODE = 'undefined_function',
                  HINT = 'Its jobs could only fail: create the function again with this signature, or register the handler with an existing function.';
    END IF;
    -- As the caller would need to call the function by name in a session of
    -- its own: USAGE on its schema, then EXECUTE.
    IF NOT pg_catalog.has_schema_privilege(caller,
               (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) fn),
               'USAGE') THEN
        RAISE EXCEPTION 'permission denied to % handler "%"', action, h.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Role %s lacks USAGE on the schema of function %s.',
                                             pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(caller)), h.fn),
                  HINT = 'GRANT USAGE on that schema to the submitting role: its jobs run as that role.';
    END IF;
    IF NOT pg_catalog.has_function_privilege(caller, fn, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied to % handler "%"', action, h.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Role %s lacks EXECUTE on function %s.',
                                             pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(caller)), h.fn),
                  HINT = 'GRANT EXECUTE on the handler''s function to the submitting role: its jobs run as that role.';
    END IF;
END
$$;

-- Raises 55000 unless pg_cron is installed in this database.
CREATE FUNCTION job_engine_internal._require_pg_cron()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database and run CREATE EXTENSION pg_cron.';
    END IF;
END
$$;

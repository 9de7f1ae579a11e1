-- job_engine 1.0: schema, lifecycle guard, SQL API and views.
--
-- Security rules for this script (PostgreSQL's extension guidelines):
--   * no CREATE OR REPLACE, every name schema-qualified, operators qualified
--     where a hostile operator could be picked up;
--   * every function pins search_path = pg_catalog, pg_temp;
--   * tables are written only through the functions below.
--
-- Public functions are thin C entry points (job_engine_gate, src/gate.c): the
-- gate captures the calling role, then runs the matching internal function
-- job_engine._<name>(caller, ...) with the extension's privileges.  Internal
-- functions are not executable by PUBLIC.

\echo Use "CREATE EXTENSION job_engine" to load this file. \quit

-- The background workers run functions of this schema as a superuser, so
-- the schema must not belong to an ordinary role: one that created it in
-- advance could later plant functions the workers would run.
DO $$
DECLARE
    owner_name name;
BEGIN
    SELECT r.rolname INTO owner_name
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'job_engine'
       AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'schema job_engine is owned by role %, which is not a superuser', owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'job_engine''s workers run the functions of this schema with superuser rights.',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION job_engine again.';
    END IF;
END
$$;

-------------------------------------------------------------------------------
-- Types
-------------------------------------------------------------------------------

CREATE TYPE job_engine.job_state AS ENUM
    ('created', 'running', 'retrying', 'succeeded', 'failed', 'aborted');

CREATE TYPE job_engine.attempt_outcome AS ENUM
    ('running', 'succeeded', 'failed', 'aborted', 'crashed');

-------------------------------------------------------------------------------
-- Tables
-------------------------------------------------------------------------------

CREATE TABLE job_engine.queues (
    name          text PRIMARY KEY
                  CONSTRAINT queue_name_not_empty CHECK (name OPERATOR(pg_catalog.<>) ''),
    paused        boolean NOT NULL DEFAULT false,
    concurrency   integer
                  CONSTRAINT queue_concurrency_positive CHECK (concurrency OPERATOR(pg_catalog.>=) 1),
    group_commit  integer NOT NULL DEFAULT 1
                  CONSTRAINT queue_group_commit_range
                  CHECK (group_commit OPERATOR(pg_catalog.>=) 1 AND group_commit OPERATOR(pg_catalog.<=) 64),
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- No row for the 'default' queue here: like every queue it is created when
-- first used, so that pg_dump keeps its settings like those of any other.

CREATE TABLE job_engine.handlers (
    name            text PRIMARY KEY
                    CONSTRAINT handler_name_not_empty CHECK (name OPERATOR(pg_catalog.<>) ''),
    fn              regprocedure,
    library         text,
    symbol          text,
    queue           text NOT NULL REFERENCES job_engine.queues (name),
    max_attempts    integer NOT NULL
                    CONSTRAINT handler_max_attempts_positive CHECK (max_attempts OPERATOR(pg_catalog.>=) 1),
    backoff_base    interval NOT NULL
                    CONSTRAINT handler_backoff_base_not_negative
                    CHECK (backoff_base OPERATOR(pg_catalog.>=) '0'::interval),
    backoff_max     interval NOT NULL,
    timeout         interval
                    CONSTRAINT handler_timeout_positive CHECK (timeout OPERATOR(pg_catalog.>) '0'::interval),
    retry_on        text[],
    compensate_with text,
    owner           oid NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT handler_backoff_max_not_below_base
        CHECK (backoff_max OPERATOR(pg_catalog.>=) backoff_base),
    CONSTRAINT handler_sql_or_c
        CHECK ((fn IS NOT NULL AND library IS NULL AND symbol IS NULL)
            OR (fn IS NULL AND library IS NOT NULL AND symbol IS NOT NULL))
);

CREATE TABLE job_engine._events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type      text NOT NULL
                    CONSTRAINT event_type_not_empty CHECK (event_type OPERATOR(pg_catalog.<>) ''),
    payload         jsonb NOT NULL,
    correlation_id  uuid NOT NULL,
    publisher       oid NOT NULL,
    published_by_job bigint,
    published_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE job_engine.subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type  text NOT NULL
                CONSTRAINT subscription_type_not_empty CHECK (event_type OPERATOR(pg_catalog.<>) ''),
    handler     text NOT NULL REFERENCES job_engine.handlers (name),
    owner       oid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- One row per job.  Waiting rows ('created', 'retrying') are the hot set the
-- executors scan; the partial indexes below cover only them, so terminal
-- history does not slow the claim down.
CREATE TABLE job_engine._jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler          text NOT NULL,
    queue            text NOT NULL,
    state            job_engine.job_state NOT NULL DEFAULT 'created',
    priority         integer NOT NULL DEFAULT 0,
    args             jsonb NOT NULL,
    result           jsonb,
    attempts         integer NOT NULL DEFAULT 0
                     CONSTRAINT job_attempts_not_negative CHECK (attempts OPERATOR(pg_catalog.>=) 0),
    max_attempts     integer NOT NULL
                     CONSTRAINT job_max_attempts_positive CHECK (max_attempts OPERATOR(pg_catalog.>=) 1),
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    state_changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    worker_pid       integer,
    owner            oid NOT NULL,
    correlation_id   uuid NOT NULL,
    parent_job_id    bigint,
    event_id         bigint,
    resubmitted_from bigint,
    compensation_of  bigint,
    idempotency_key  text,
    depends_on       bigint[],
    ordering_key     text,
    abort_reason     text,
    last_error       text,
    CONSTRAINT job_run_at_finite CHECK (pg_catalog.isfinite(run_at)),
    CONSTRAINT job_attempts_within_max CHECK (attempts OPERATOR(pg_catalog.<=) max_attempts)
) WITH (fillfactor = 80,
       autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
       autovacuum_vacuum_cost_delay = 0);

-- The claim: waiting rows of one queue in (priority, run_at, id) order.
-- Queue first, so that jobs piling up in a paused or full queue are never
-- scanned by claims for the other queues.
CREATE INDEX jobs_claim_idx ON job_engine._jobs (queue, priority, run_at, id)
    WHERE state IN ('created', 'retrying');
-- The next due time, for executors sleeping until a delayed job is due.
-- Its predicate names priority on purpose: the claim query does not imply
-- it, so the planner can never pick this index (and a sort) for the claim.
CREATE INDEX jobs_due_idx ON job_engine._jobs (run_at)
    WHERE state IN ('created', 'retrying') AND priority IS NOT NULL;
-- Crash recovery looks up running jobs by worker.  The predicate names
-- worker_pid so that statements on one job by id (recording an outcome)
-- cannot pick this index, whose dead entries pile up between vacuums.
CREATE INDEX jobs_running_idx ON job_engine._jobs (worker_pid)
    WHERE state = 'running' AND worker_pid IS NOT NULL;
-- Idempotency: one live job per (handler, owner, key); roles do not share
-- keys, so no role learns of another's job through one.
CREATE UNIQUE INDEX jobs_idempotency_idx ON job_engine._jobs (handler, owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('created', 'running', 'retrying');
CREATE INDEX jobs_ordering_idx ON job_engine._jobs (ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('created', 'running', 'retrying');
CREATE INDEX jobs_correlation_idx ON job_engine._jobs (correlation_id);
CREATE INDEX jobs_parent_idx ON job_engine._jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_finished_idx ON job_engine._jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Declared dependencies as edges (job waits for depends_on), so that both
-- directions are plain btree probes on the hot path.  No foreign key on
-- depends_on: a prerequisite purged by retention had finished, and a
-- missing prerequisite counts as succeeded (a failed one aborted us first).
CREATE TABLE job_engine._dependencies (
    job_id      bigint NOT NULL REFERENCES job_engine._jobs (id) ON DELETE CASCADE,
    depends_on  bigint NOT NULL,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX dependencies_depends_on_idx ON job_engine._dependencies (depends_on);

-- One row per attempt of a job.  job_id has no foreign key: its check, a
-- query and a row lock per attempt inserted, cost more than the insert; the
-- executors insert attempts only for jobs they hold locked, and a trigger
-- (jobs_delete_attempts) deletes the attempts of deleted jobs.
CREATE TABLE job_engine._attempts (
    job_id       bigint NOT NULL,
    attempt      integer NOT NULL
                 CONSTRAINT attempt_number_positive CHECK (attempt OPERATOR(pg_catalog.>=) 1),
    outcome      job_engine.attempt_outcome NOT NULL DEFAULT 'running',
    started_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at  timestamptz,
    worker_pid   integer,
    sqlstate     text,
    message      text,
    detail       text,
    hint         text,
    context      text,
    PRIMARY KEY (job_id, attempt)
) WITH (fillfactor = 80);

SELECT pg_catalog.pg_extension_config_dump('job_engine.queues', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._events', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._jobs', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._attempts', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.subscriptions_id_seq', '');

REVOKE ALL ON ALL TABLES IN SCHEMA job_engine FROM PUBLIC;

-------------------------------------------------------------------------------
-- Lifecycle guard (DESIGN §2).  Fires for every role, superusers included.
-------------------------------------------------------------------------------

-- New jobs start 'created'; only terminal jobs may be deleted; terminal
-- jobs never change; the state moves only along the lifecycle's edges, and
-- state_changed_at, started_at and finished_at follow it (src/guard.c).
-- The one function without SET search_path: it is C that runs no SQL and
-- looks up no name, and the SET clause, applied on every row of every claim
-- and outcome, cost a fifth of a group-commit executor's time.
CREATE FUNCTION job_engine._jobs_guard()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'job_engine_jobs_guard';

CREATE TRIGGER jobs_lifecycle_guard
    BEFORE INSERT OR UPDATE OR DELETE ON job_engine._jobs
    FOR EACH ROW EXECUTE FUNCTION job_engine._jobs_guard();

-- The attempts of deleted jobs go with them (_attempts has no foreign key).
CREATE FUNCTION job_engine._delete_attempts()
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
    FOR EACH STATEMENT EXECUTE FUNCTION job_engine._delete_attempts();

CREATE FUNCTION job_engine._events_immutable()
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
    FOR EACH ROW EXECUTE FUNCTION job_engine._events_immutable();

-------------------------------------------------------------------------------
-- C entry points
-------------------------------------------------------------------------------

-- Runs job_engine._<name>(caller, args...) for a public function <name>.
-- Declared per public function below; see src/gate.c.

-- Wakes idle executors of this database when the transaction commits.
CREATE FUNCTION job_engine._wake_on_commit(jobs integer)
RETURNS void
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_wake_on_commit';

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

CREATE FUNCTION job_engine._workers()
RETURNS TABLE (pid integer, database oid, state text, job_id bigint,
               attempt integer, since timestamptz)
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_workers';

-- Asks the executor running (job_id, attempt) to stop its attempt once the
-- calling transaction commits (an abort that rolls back interrupts nothing).
CREATE FUNCTION job_engine._interrupt(job_id bigint, attempt integer)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_interrupt';

-------------------------------------------------------------------------------
-- Validation helpers (internal)
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._require(value anyelement, argument text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION 'argument "%" must not be NULL', argument
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass a value or leave the argument out to get its default.';
    END IF;
END
$$;

CREATE FUNCTION job_engine._require_name(value text, argument text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require(value, argument);
    IF value OPERATOR(pg_catalog.~) '^[[:space:]]*$' THEN
        RAISE EXCEPTION 'argument "%" must not be empty', argument
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a non-blank name.';
    END IF;
    IF pg_catalog.length(value) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'argument "%" is too long (% characters)', argument, pg_catalog.length(value)
            USING ERRCODE = 'name_too_long',
                  HINT = 'Names are limited to 200 characters.';
    END IF;
END
$$;

CREATE FUNCTION job_engine._require_interval(value interval, argument text, allow_zero boolean)
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
                  HINT = 'Intervals here measure a delay or a duration and cannot be negative.';
    END IF;
    IF value OPERATOR(pg_catalog.>) '100 years'::interval THEN
        RAISE EXCEPTION 'argument "%" is out of range: %', argument, value
            USING ERRCODE = 'interval_field_overflow',
                  HINT = 'Use an interval shorter than 100 years.';
    END IF;
END
$$;

CREATE FUNCTION job_engine._require_handler(handler_name text)
RETURNS job_engine.handlers
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
BEGIN
    PERFORM job_engine._require_name(handler_name, 'handler');
    SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) handler_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'handler "%" does not exist', handler_name
            USING ERRCODE = 'undefined_function',
                  HINT = 'Register it first with job_engine.register_handler(); registered handlers are listed in job_engine.handlers.';
    END IF;
    RETURN h;
END
$$;

CREATE FUNCTION job_engine._ensure_queue(queue_name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require_name(queue_name, 'queue');
    IF NOT EXISTS (SELECT 1 FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) queue_name) THEN
        INSERT INTO job_engine.queues (name) VALUES (queue_name) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

CREATE FUNCTION job_engine._validate_retry_on(retry_on text[])
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
CREATE FUNCTION job_engine._check_owner(owner oid)
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

-- Raises 42501 unless `caller` may execute the handler's function (native
-- handlers have none to check).  `action` completes "permission denied to
-- <action> handler ...".
CREATE FUNCTION job_engine._require_execute(caller oid, h job_engine.handlers, action text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF h.fn IS NOT NULL AND NOT pg_catalog.has_function_privilege(caller, h.fn, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied to % handler "%"', action, h.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Role %s lacks EXECUTE on function %s.',
                                             pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(caller)), h.fn),
                  HINT = 'GRANT EXECUTE on the handler''s function to the submitting role: its jobs run as that role.';
    END IF;
END
$$;

-- Raises 55000 unless pg_cron is installed in this database.
CREATE FUNCTION job_engine._require_pg_cron()
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

-------------------------------------------------------------------------------
-- Handlers
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

-------------------------------------------------------------------------------
-- Commands
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._submit(caller oid, handler text, args jsonb, queue text,
        priority integer, run_at timestamptz, max_attempts integer,
        idempotency_key text, correlation_id uuid, depends_on bigint[],
        ordering_key text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    h job_engine.handlers;
    job_queue text;
    new_id bigint;
    missing bigint;
    parent bigint := job_engine.current_job_id();
    corr uuid := correlation_id;
    doomed record;
    aborted_job job_engine._jobs;
BEGIN
    h := job_engine._require_handler(handler);
    PERFORM job_engine._check_owner(caller);
    PERFORM job_engine._require(args, 'args');
    PERFORM job_engine._require(priority, 'priority');
    IF run_at IS NOT NULL AND NOT pg_catalog.isfinite(run_at) THEN
        RAISE EXCEPTION 'argument "run_at" must be a finite time, got %', run_at
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass NULL to run as soon as possible, or a real point in time.';
    END IF;
    IF max_attempts IS NOT NULL AND max_attempts OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'argument "max_attempts" must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_attempts counts the first attempt too; 1 means never retry.';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        PERFORM job_engine._require_name(idempotency_key, 'idempotency_key');
    END IF;
    IF ordering_key IS NOT NULL THEN
        PERFORM job_engine._require_name(ordering_key, 'ordering_key');
    END IF;
    IF depends_on IS NOT NULL THEN
        IF pg_catalog.array_ndims(depends_on) OPERATOR(pg_catalog.>) 1 THEN
            RAISE EXCEPTION 'argument "depends_on" must be a one-dimensional array'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'List job ids: ARRAY[1, 2, 3].';
        END IF;
        IF pg_catalog.array_position(depends_on, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'argument "depends_on" must not contain NULL'
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'List the ids of existing jobs.';
        END IF;
        -- Share-lock the prerequisites: one finishing now waits for this
        -- transaction, and then sees the dependency edges written below.
        PERFORM 1 FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) ANY (_submit.depends_on)
         ORDER BY j.id
         FOR SHARE;
        -- Jobs of roles the caller does not belong to do not exist for it.
        SELECT d INTO missing FROM pg_catalog.unnest(_submit.depends_on) AS d
         WHERE NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                            WHERE j.id OPERATOR(pg_catalog.=) d
                              AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER'))
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'job % named in "depends_on" does not exist', missing
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'A job can only depend on jobs that were already submitted.';
        END IF;
        IF pg_catalog.cardinality(depends_on) OPERATOR(pg_catalog.=) 0 THEN
            depends_on := NULL;
        END IF;
    END IF;
    PERFORM job_engine._require_execute(caller, h, 'submit jobs to');

    job_queue := COALESCE(queue, h.queue);
    IF queue IS NOT NULL THEN
        PERFORM job_engine._ensure_queue(queue);
    END IF;
    IF corr IS NULL AND parent IS NOT NULL THEN
        corr := (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid;
    END IF;

    INSERT INTO job_engine._jobs AS j
        (handler, queue, priority, args, max_attempts, run_at, owner,
         correlation_id, parent_job_id, idempotency_key, depends_on, ordering_key)
    VALUES (h.name, job_queue, priority, args,
            COALESCE(max_attempts, h.max_attempts),
            COALESCE(run_at, pg_catalog.now()), caller,
            COALESCE(corr, pg_catalog.gen_random_uuid()), parent,
            idempotency_key, depends_on, ordering_key)
    ON CONFLICT (handler, owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND state IN ('created', 'running', 'retrying')
        DO NOTHING
    RETURNING j.id INTO new_id;

    IF new_id IS NULL THEN
        -- A live job of this role already has the key (perhaps from a
        -- concurrent submit, which the unique index made us wait for).
        SELECT j.id INTO new_id FROM job_engine._jobs j
         WHERE j.handler OPERATOR(pg_catalog.=) h.name
           AND j.owner OPERATOR(pg_catalog.=) caller
           AND j.idempotency_key OPERATOR(pg_catalog.=) _submit.idempotency_key
           AND j.state IN ('created', 'running', 'retrying');
        RETURN new_id;
    END IF;

    IF depends_on IS NOT NULL THEN
        INSERT INTO job_engine._dependencies (job_id, depends_on)
        SELECT DISTINCT new_id, d FROM pg_catalog.unnest(_submit.depends_on) AS d;
        -- A prerequisite that already failed or was aborted dooms the job at
        -- once.  The prerequisites are share-locked (above), so none can
        -- finish unseen before this transaction's edges are visible.
        SELECT j.id, j.state INTO doomed FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) ANY (_submit.depends_on)
           AND j.state IN ('failed', 'aborted')
         ORDER BY j.id LIMIT 1;
        IF FOUND THEN
            UPDATE job_engine._jobs j
               SET state = 'aborted',
                   abort_reason = pg_catalog.format('dependency %s %s', doomed.id, doomed.state)
             WHERE j.id OPERATOR(pg_catalog.=) new_id
            RETURNING * INTO aborted_job;
            PERFORM job_engine._after_transition(aborted_job);
            RETURN new_id;
        END IF;
    END IF;
    PERFORM job_engine._wake_on_commit(1);
    RETURN new_id;
END
$$;

CREATE FUNCTION job_engine.submit(handler text, args jsonb DEFAULT '{}',
        queue text DEFAULT NULL, priority integer DEFAULT 0,
        run_at timestamptz DEFAULT NULL, max_attempts integer DEFAULT NULL,
        idempotency_key text DEFAULT NULL, correlation_id uuid DEFAULT NULL,
        depends_on bigint[] DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._submit_many(caller oid, handler text, args jsonb[],
        queue text, priority integer, run_at timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    job_queue text;
    parent bigint := job_engine.current_job_id();
    corr uuid;
    n integer;
BEGIN
    h := job_engine._require_handler(handler);
    PERFORM job_engine._check_owner(caller);
    PERFORM job_engine._require(args, 'args');
    PERFORM job_engine._require(priority, 'priority');
    IF pg_catalog.array_ndims(args) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'argument "args" must be a one-dimensional array'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass one jsonb value per job: ARRAY[''{}''::jsonb, ...].';
    END IF;
    IF pg_catalog.array_position(args, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'argument "args" must not contain NULL elements'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use ''{}''::jsonb for a job without arguments.';
    END IF;
    IF run_at IS NOT NULL AND NOT pg_catalog.isfinite(run_at) THEN
        RAISE EXCEPTION 'argument "run_at" must be a finite time, got %', run_at
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass NULL to run as soon as possible, or a real point in time.';
    END IF;
    PERFORM job_engine._require_execute(caller, h, 'submit jobs to');
    job_queue := COALESCE(queue, h.queue);
    IF queue IS NOT NULL THEN
        PERFORM job_engine._ensure_queue(queue);
    END IF;
    IF parent IS NOT NULL THEN
        corr := (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid;
    END IF;

    -- One correlation id per job unless inherited from the running job.
    RETURN QUERY
    INSERT INTO job_engine._jobs
        (handler, queue, priority, args, max_attempts, run_at, owner,
         correlation_id, parent_job_id)
    SELECT h.name, job_queue, priority, a, h.max_attempts,
           COALESCE(run_at, pg_catalog.now()), caller,
           COALESCE(corr, pg_catalog.gen_random_uuid()), parent
      FROM pg_catalog.unnest(args) WITH ORDINALITY AS t(a, ord)
     ORDER BY t.ord
    RETURNING id;

    GET DIAGNOSTICS n = ROW_COUNT;
    IF n OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine._wake_on_commit(n);
    END IF;
END
$$;

CREATE FUNCTION job_engine.submit_many(handler text, args jsonb[],
        queue text DEFAULT NULL, priority integer DEFAULT 0,
        run_at timestamptz DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-------------------------------------------------------------------------------
-- Control
-------------------------------------------------------------------------------

-- Queues the 'job_engine' notification of a job's new state (src/outcome.c);
-- skipped with a WARNING when the notification queue is half full, since a
-- full one would make the recording transaction fail at commit.
CREATE FUNCTION job_engine._notify(job job_engine._jobs)
RETURNS void
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_notify';

-- Consequences of a transition, in the transaction that records it: the
-- notification, and for a job that ended failed or aborted its compensation
-- job and the abort of the jobs that depend on it.
CREATE FUNCTION job_engine._after_transition(j job_engine._jobs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c job_engine.handlers;
    d job_engine._jobs;
BEGIN
    PERFORM job_engine._notify(j);

    IF j.state OPERATOR(pg_catalog.=) 'succeeded' THEN
        -- Dependents may have become runnable: wake an executor at commit.
        IF EXISTS (SELECT 1 FROM job_engine._dependencies x
                    WHERE x.depends_on OPERATOR(pg_catalog.=) j.id) THEN
            PERFORM job_engine._wake_on_commit(1);
        END IF;
        RETURN;
    END IF;
    IF j.state NOT IN ('failed', 'aborted') THEN
        RETURN;
    END IF;

    -- Compensation: never for a compensation job itself, so a failing
    -- compensation cannot start an endless chain.
    IF j.compensation_of IS NULL THEN
        SELECT cw.* INTO c
          FROM job_engine.handlers h
          JOIN job_engine.handlers cw ON cw.name OPERATOR(pg_catalog.=) h.compensate_with
         WHERE h.name OPERATOR(pg_catalog.=) j.handler;
        IF FOUND THEN
            INSERT INTO job_engine._jobs
                (handler, queue, priority, args, max_attempts, run_at, owner,
                 correlation_id, parent_job_id, compensation_of)
            VALUES (c.name, c.queue, j.priority,
                    pg_catalog.jsonb_build_object(
                        'job_id', j.id, 'handler', j.handler, 'args', j.args,
                        'state', j.state, 'error', j.last_error, 'reason', j.abort_reason),
                    c.max_attempts, pg_catalog.clock_timestamp(), j.owner,
                    j.correlation_id, j.id, j.id);
            PERFORM job_engine._wake_on_commit(1);
        END IF;
    END IF;

    -- Jobs waiting for this one can never run.
    FOR d IN UPDATE job_engine._jobs x
                SET state = 'aborted',
                    abort_reason = pg_catalog.format('dependency %s %s', j.id, j.state)
              WHERE x.id IN (SELECT e.job_id FROM job_engine._dependencies e
                              WHERE e.depends_on OPERATOR(pg_catalog.=) j.id)
                AND x.state IN ('created', 'retrying')
          RETURNING x.*
    LOOP
        PERFORM job_engine._after_transition(d);
    END LOOP;
END
$$;

CREATE FUNCTION job_engine._abort(caller oid, job_id bigint, reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine._require_name(reason, 'reason');
    -- Jobs of roles the caller does not belong to do not exist for it.
    j := job_engine._job_for(caller, job_id, true);
    IF j.id OPERATOR(pg_catalog.=) job_engine.current_job_id() THEN
        RAISE EXCEPTION 'job % cannot abort itself', job_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Raise an error to fail the attempt; abort() is for other jobs.';
    END IF;
    IF j.state IN ('succeeded', 'failed', 'aborted') THEN
        RETURN false;
    END IF;
    IF j.state OPERATOR(pg_catalog.=) 'running' THEN
        RETURN job_engine._abort_running(j, reason);
    END IF;
    UPDATE job_engine._jobs SET state = 'aborted', abort_reason = reason
     WHERE id OPERATOR(pg_catalog.=) job_id
    RETURNING * INTO j;
    PERFORM job_engine._after_transition(j);
    RETURN true;
END
$$;

-- A running job: the attempt and the job are recorded aborted here, fenced
-- by attempt number; the executor is interrupted so its own transaction
-- (holding the handler's work) rolls back and cannot record anything else.
CREATE FUNCTION job_engine._abort_running(j job_engine._jobs, reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._interrupt(j.id, j.attempts);
    UPDATE job_engine._attempts SET outcome = 'aborted', finished_at = pg_catalog.clock_timestamp(),
           message = reason
     WHERE job_id OPERATOR(pg_catalog.=) j.id AND attempt OPERATOR(pg_catalog.=) j.attempts
       AND outcome OPERATOR(pg_catalog.=) 'running';
    UPDATE job_engine._jobs SET state = 'aborted', abort_reason = reason, worker_pid = NULL
     WHERE id OPERATOR(pg_catalog.=) j.id
    RETURNING * INTO j;
    PERFORM job_engine._after_transition(j);
    RETURN true;
END
$$;

CREATE FUNCTION job_engine.abort(job_id bigint, reason text)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-------------------------------------------------------------------------------
-- Execution bookkeeping, called by the executors (src/attempt.c)
-------------------------------------------------------------------------------

-- Claims the next runnable job for worker `pid`, and with it up to
-- group_commit - 1 more of the same queue when the queue groups commits.
-- The executors run the same code (src/claim.c) directly; this function is
-- for tests that race claims from ordinary sessions.
CREATE FUNCTION job_engine._claim(pid integer)
RETURNS TABLE (job_id bigint, attempt integer, fn regprocedure, owner oid,
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

-- Records a successful attempt in the attempt's own transaction.  Fenced by
-- (state, attempt): if the job was aborted meanwhile nothing is written and
-- the executor rolls the attempt back.  The executors run the same code
-- (src/outcome.c) directly; this function is for tests.
CREATE FUNCTION job_engine._record_success(job_id bigint, attempt integer, result jsonb)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_record_success';

-- True when an error with this SQLSTATE may be retried under `retry_on`.
-- With retry_on NULL every error is retried except the permanent classes:
-- 22 (data exception), 42 (syntax error or access rule violation),
-- 0A (feature not supported) and 57014 raised by an abort (handled apart).
CREATE FUNCTION job_engine._retryable(sqlstate text, retry_on text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN sqlstate IS NULL THEN true
        WHEN retry_on IS NULL THEN
            pg_catalog.left(sqlstate, 2) OPERATOR(pg_catalog.<>) ALL (ARRAY['22', '42', '0A'])
        ELSE sqlstate OPERATOR(pg_catalog.=) ANY (retry_on)
             OR pg_catalog.left(sqlstate, 2) OPERATOR(pg_catalog.=) ANY (retry_on)
    END
$$;

-- Delay before attempt n+1: least(backoff_max, backoff_base * 2^least(n-1, 40)) plus
-- up to 10% jitter, so retries of many jobs failing together spread out.
CREATE FUNCTION job_engine._backoff(n integer, backoff_base interval, backoff_max interval)
RETURNS interval
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- In seconds as double precision: base * 2^(n-1) overflows an interval
    -- long before LEAST() could cap it (backoff_max is at most 100 years).
    SELECT pg_catalog.make_interval(secs => d OPERATOR(pg_catalog.+)
                                            (d OPERATOR(pg_catalog.*) pg_catalog.random() OPERATOR(pg_catalog.*) 0.1))
      FROM (SELECT LEAST(pg_catalog.date_part('epoch', backoff_max),
                         pg_catalog.date_part('epoch', backoff_base) OPERATOR(pg_catalog.*)
                         pg_catalog.power(2::double precision,
                                          LEAST(n OPERATOR(pg_catalog.-) 1, 40)::double precision)) AS d) s
$$;

-- Records a failed (or crashed) attempt and applies the retry policy, in a
-- transaction of its own after the attempt rolled back.
CREATE FUNCTION job_engine._record_failure(job_id bigint, attempt integer,
        outcome job_engine.attempt_outcome, sqlstate text, message text,
        detail text, hint text, context text)
RETURNS job_engine.job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    h job_engine.handlers;
    next_state job_engine.job_state;
    summary text;
BEGIN
    SELECT * INTO j FROM job_engine._jobs
     WHERE id OPERATOR(pg_catalog.=) job_id FOR UPDATE;
    IF NOT FOUND OR j.state OPERATOR(pg_catalog.<>) 'running'
       OR j.attempts OPERATOR(pg_catalog.<>) attempt THEN
        RETURN NULL;            -- aborted or recovered meanwhile: nothing to record
    END IF;

    UPDATE job_engine._attempts a
       SET outcome = _record_failure.outcome, finished_at = pg_catalog.clock_timestamp(),
           sqlstate = _record_failure.sqlstate, message = _record_failure.message,
           detail = _record_failure.detail, hint = _record_failure.hint,
           context = _record_failure.context
     WHERE a.job_id OPERATOR(pg_catalog.=) _record_failure.job_id
       AND a.attempt OPERATOR(pg_catalog.=) _record_failure.attempt;

    SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) j.handler;
    summary := pg_catalog.format('%s%s (SQLSTATE %s, attempt %s)',
                   CASE WHEN outcome OPERATOR(pg_catalog.=) 'crashed' THEN 'worker crashed: ' ELSE '' END,
                   COALESCE(message, 'unknown error'),
                   COALESCE(sqlstate, '?????'), attempt);

    IF j.attempts OPERATOR(pg_catalog.<) j.max_attempts
       AND job_engine._retryable(sqlstate, h.retry_on) THEN
        next_state := 'retrying';
        UPDATE job_engine._jobs
           SET state = 'retrying', worker_pid = NULL, last_error = summary,
               run_at = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                        job_engine._backoff(j.attempts, h.backoff_base, h.backoff_max)
         WHERE id OPERATOR(pg_catalog.=) job_id
        RETURNING * INTO j;
    ELSE
        next_state := 'failed';
        UPDATE job_engine._jobs SET state = 'failed', worker_pid = NULL, last_error = summary
         WHERE id OPERATOR(pg_catalog.=) job_id
        RETURNING * INTO j;
    END IF;
    PERFORM job_engine._after_transition(j);
    RETURN next_state;
END
$$;

-- Crash recovery: records the attempts of running jobs whose executor died
-- as crashed and applies the retry policy.  `dead_pids` lists the pids of
-- executors that exited; NULL means every running job of this database
-- (the supervisor's start, when no executor of ours can be alive).
CREATE FUNCTION job_engine._recover_crashed(dead_pids integer[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
    n integer := 0;
BEGIN
    FOR j IN SELECT id, attempts, worker_pid FROM job_engine._jobs
              WHERE state OPERATOR(pg_catalog.=) 'running'
                AND (dead_pids IS NULL OR worker_pid OPERATOR(pg_catalog.=) ANY (dead_pids))
              ORDER BY id
              FOR UPDATE
    LOOP
        BEGIN
            PERFORM job_engine._record_failure(j.id, j.attempts, 'crashed', NULL,
                pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid),
                NULL, 'The attempt''s work was rolled back; the retry policy decides what happens next.', NULL);
        EXCEPTION WHEN OTHERS THEN
            -- Recording must never wedge recovery (and with it the whole
            -- database): end the job failed, saying what went wrong.
            UPDATE job_engine._attempts a
               SET outcome = 'crashed', finished_at = pg_catalog.clock_timestamp(),
                   message = pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid)
             WHERE a.job_id OPERATOR(pg_catalog.=) j.id
               AND a.attempt OPERATOR(pg_catalog.=) j.attempts;
            UPDATE job_engine._jobs x
               SET state = 'failed', worker_pid = NULL,
                   last_error = pg_catalog.format('recovery could not apply the retry policy: %s (SQLSTATE %s)',
                                                  SQLERRM, SQLSTATE)
             WHERE x.id OPERATOR(pg_catalog.=) j.id;
        END;
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Running jobs whose worker process is gone (no process of that pid is
-- connected to this database) although no executor of this database was
-- seen to exit: claimed by a session that then disconnected, or restored
-- from a dump taken while they ran.  Their attempts are
-- recorded as crashed like any other (the supervisor, every few seconds).
CREATE FUNCTION job_engine._recover_orphans()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone integer[];
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT j.worker_pid) INTO gone
      FROM job_engine._jobs j
     WHERE j.state OPERATOR(pg_catalog.=) 'running'
       AND j.worker_pid IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(NULL) a
                        WHERE a.pid OPERATOR(pg_catalog.=) j.worker_pid
                          AND a.datid OPERATOR(pg_catalog.=)
                              (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
    IF gone IS NULL THEN
        RETURN 0;           -- never _recover_crashed(NULL), which means all
    END IF;
    RETURN job_engine._recover_crashed(gone);
END
$$;

-------------------------------------------------------------------------------
-- Native C handlers
-------------------------------------------------------------------------------

-- Resolves library/symbol now so that a typo fails at registration, not at
-- the first run.  Errors come from the dynamic loader (58P01, 42883).
CREATE FUNCTION job_engine._check_c_symbol(library text, symbol text)
RETURNS void
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_check_c_symbol';

CREATE FUNCTION job_engine._register_c_handler(caller oid, name text, library text,
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
    PERFORM job_engine._require_name(library, 'library');
    PERFORM job_engine._require_name(symbol, 'symbol');
    -- Same validation as SQL handlers, with a stand-in function.
    PERFORM job_engine._validate_handler_options(name, queue, max_attempts, backoff_base,
                                                 backoff_max, timeout, retry_on, compensate_with);
    PERFORM job_engine._check_c_symbol(library, symbol);
    PERFORM job_engine._ensure_queue(queue);
    INSERT INTO job_engine.handlers AS h
        (name, fn, library, symbol, queue, max_attempts, backoff_base, backoff_max,
         timeout, retry_on, compensate_with, owner)
    VALUES (name, NULL, library, symbol, queue, max_attempts, backoff_base, backoff_max,
            timeout, retry_on, compensate_with, caller)
    ON CONFLICT ON CONSTRAINT handlers_pkey DO UPDATE
        SET fn = NULL, library = EXCLUDED.library, symbol = EXCLUDED.symbol,
            queue = EXCLUDED.queue, max_attempts = EXCLUDED.max_attempts,
            backoff_base = EXCLUDED.backoff_base, backoff_max = EXCLUDED.backoff_max,
            timeout = EXCLUDED.timeout, retry_on = EXCLUDED.retry_on,
            compensate_with = EXCLUDED.compensate_with, owner = EXCLUDED.owner,
            registered_at = pg_catalog.now();
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

-------------------------------------------------------------------------------
-- Events
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._subscribe(caller oid, event_type text, handler text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    new_id bigint;
BEGIN
    PERFORM job_engine._require_name(event_type, 'event_type');
    IF pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.>) 0
       AND pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.<>) pg_catalog.length(event_type) THEN
        RAISE EXCEPTION 'invalid event type pattern "%"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an exact type, or a prefix ending in a single "*", e.g. ''order.*''.';
    END IF;
    h := job_engine._require_handler(handler);
    PERFORM job_engine._check_owner(caller);
    PERFORM job_engine._require_execute(caller, h, 'subscribe');
    INSERT INTO job_engine.subscriptions (event_type, handler, owner)
    VALUES (event_type, h.name, caller)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

CREATE FUNCTION job_engine.subscribe(event_type text, handler text)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._unsubscribe(caller oid, subscription_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub_owner oid;
BEGIN
    PERFORM job_engine._require(subscription_id, 'subscription_id');
    SELECT s.owner INTO sub_owner FROM job_engine.subscriptions s
     WHERE s.id OPERATOR(pg_catalog.=) subscription_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', subscription_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Subscriptions are listed in job_engine.subscriptions.';
    END IF;
    IF NOT pg_catalog.pg_has_role(caller, sub_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to remove subscription %', subscription_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only members of the subscription''s owner role can remove it.';
    END IF;
    DELETE FROM job_engine.subscriptions s WHERE s.id OPERATOR(pg_catalog.=) subscription_id;
    RETURN true;
END
$$;

CREATE FUNCTION job_engine.unsubscribe(subscription_id bigint)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- True when a subscription pattern (exact, or prefix ending in '*') matches.
CREATE FUNCTION job_engine._event_matches(pattern text, event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN pg_catalog.right(pattern, 1) OPERATOR(pg_catalog.=) '*'
            THEN pg_catalog.starts_with(event_type, pg_catalog.left(pattern, -1))
        ELSE pattern OPERATOR(pg_catalog.=) event_type
    END
$$;

CREATE FUNCTION job_engine._publish(caller oid, event_type text, payload jsonb,
        correlation_id uuid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev job_engine._events;
    parent bigint := job_engine.current_job_id();
    corr uuid := correlation_id;
    n integer;
BEGIN
    PERFORM job_engine._require_name(event_type, 'event_type');
    PERFORM job_engine._require(payload, 'payload');
    IF pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'event type "%" must not contain "*"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"*" is only for subscription patterns.';
    END IF;
    IF corr IS NULL AND parent IS NOT NULL THEN
        corr := (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid;
    END IF;
    INSERT INTO job_engine._events (event_type, payload, correlation_id, publisher, published_by_job)
    VALUES (event_type, payload, COALESCE(corr, pg_catalog.gen_random_uuid()), caller, parent)
    RETURNING * INTO ev;

    INSERT INTO job_engine._jobs
        (handler, queue, args, max_attempts, run_at, owner, correlation_id, event_id)
    SELECT h.name, h.queue, ev.payload, h.max_attempts, pg_catalog.now(), s.owner,
           ev.correlation_id, ev.id
      FROM job_engine.subscriptions s
      JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) s.handler
     WHERE job_engine._event_matches(s.event_type, ev.event_type)
     ORDER BY s.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine._wake_on_commit(n);
    END IF;
    RETURN ev.id;
END
$$;

CREATE FUNCTION job_engine.publish(event_type text, payload jsonb DEFAULT '{}',
        correlation_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-------------------------------------------------------------------------------
-- More control: resubmit, wait, queues
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._job_for(caller oid, job_id bigint, lock boolean)
RETURNS job_engine._jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine._require(job_id, 'job_id');
    IF lock THEN
        SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id FOR UPDATE;
    ELSE
        SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id;
    END IF;
    IF NOT FOUND OR NOT pg_catalog.pg_has_role(caller, j.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'job % does not exist', job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Look the job up in job_engine.jobs; you see only jobs of roles you belong to, and purged jobs are gone.';
    END IF;
    RETURN j;
END
$$;

CREATE FUNCTION job_engine._resubmit(caller oid, job_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    h job_engine.handlers;
    new_id bigint;
BEGIN
    j := job_engine._job_for(caller, job_id, false);
    PERFORM job_engine._check_owner(caller);
    IF j.state NOT IN ('succeeded', 'failed', 'aborted') THEN
        RAISE EXCEPTION 'job % is still %', job_id, j.state
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only finished jobs can be resubmitted; abort it first or wait for it.';
    END IF;
    h := job_engine._require_handler(j.handler);
    PERFORM job_engine._require_execute(caller, h, 'submit jobs to');
    INSERT INTO job_engine._jobs
        (handler, queue, priority, args, max_attempts, run_at, owner, correlation_id,
         parent_job_id, event_id, resubmitted_from, depends_on, ordering_key)
    VALUES (j.handler, j.queue, j.priority, j.args, j.max_attempts, pg_catalog.now(), caller,
            j.correlation_id, j.parent_job_id, j.event_id, j.id, NULL, j.ordering_key)
    RETURNING id INTO new_id;
    PERFORM job_engine._wake_on_commit(1);
    RETURN new_id;
END
$$;

CREATE FUNCTION job_engine.resubmit(job_id bigint)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Opt-in blocking wait.  Sleeps between looks (10 ms growing to 200 ms) and
-- reads with a fresh snapshot each time, so it needs READ COMMITTED.
CREATE FUNCTION job_engine._wait(caller oid, job_id bigint, timeout interval)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    deadline timestamptz;
    nap double precision := 0.01;
BEGIN
    PERFORM job_engine._require(timeout, 'timeout');
    PERFORM job_engine._require_interval(timeout, 'timeout', true);
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'job_engine.wait() needs READ COMMITTED isolation'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'Under a snapshot isolation level the job''s progress is invisible; call wait() outside such a transaction.';
    END IF;
    deadline := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
    LOOP
        j := job_engine._job_for(caller, job_id, false);
        IF j.state IN ('succeeded', 'failed', 'aborted')
           OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=) deadline THEN
            RETURN j.state::text;
        END IF;
        PERFORM pg_catalog.pg_sleep(LEAST(nap,
            pg_catalog.date_part('epoch', deadline OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())));
        nap := LEAST(nap OPERATOR(pg_catalog.*) 2, 0.2);
    END LOOP;
END
$$;

CREATE FUNCTION job_engine.wait(job_id bigint, timeout interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._existing_queue(queue text)
RETURNS job_engine.queues
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q job_engine.queues;
BEGIN
    PERFORM job_engine._require_name(queue, 'queue');
    SELECT * INTO q FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) queue FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Queues are created by register_handler(), submit(..., queue => ...) or configure_queue().';
    END IF;
    RETURN q;
END
$$;

CREATE FUNCTION job_engine._pause_queue(caller oid, queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._existing_queue(queue);
    UPDATE job_engine.queues SET paused = true WHERE name OPERATOR(pg_catalog.=) queue;
END
$$;

CREATE FUNCTION job_engine._resume_queue(caller oid, queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._existing_queue(queue);
    UPDATE job_engine.queues SET paused = false WHERE name OPERATOR(pg_catalog.=) queue;
    PERFORM job_engine._wake_on_commit(pg_catalog.current_setting('job_engine.max_workers')::integer);
END
$$;

CREATE FUNCTION job_engine._configure_queue(caller oid, queue text, concurrency integer,
        group_commit integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require_name(queue, 'queue');
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
    PERFORM job_engine._ensure_queue(queue);
    UPDATE job_engine.queues q
       SET concurrency = _configure_queue.concurrency,
           group_commit = COALESCE(_configure_queue.group_commit, 1)
     WHERE q.name OPERATOR(pg_catalog.=) _configure_queue.queue;
    PERFORM job_engine._wake_on_commit(pg_catalog.current_setting('job_engine.max_workers')::integer);
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

CREATE FUNCTION job_engine.configure_queue(queue text, concurrency integer DEFAULT NULL,
        group_commit integer DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-------------------------------------------------------------------------------
-- Schedules through pg_cron
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._schedule(caller oid, schedule_name text, cron text,
        handler text, args jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    cron_job bigint;
    caller_name text := pg_catalog.pg_get_userbyid(caller);
    command text;
BEGIN
    PERFORM job_engine._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine._require_name(cron, 'cron');
    PERFORM job_engine._require(args, 'args');
    h := job_engine._require_handler(handler);
    PERFORM job_engine._require_execute(caller, h, 'schedule jobs of');
    PERFORM job_engine._require_pg_cron();
    IF EXISTS (SELECT 1 FROM cron.job c
                WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
                  AND c.username OPERATOR(pg_catalog.=) caller_name) THEN
        RAISE EXCEPTION 'schedule "%" already exists', schedule_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Remove it with job_engine.unschedule() first, or pick another name.';
    END IF;

    -- pg_cron runs a SQL string; every user value is quoted as a literal.
    command := pg_catalog.format('SELECT job_engine.submit(%L, %L::jsonb)', h.name, args::text);
    BEGIN
        cron_job := cron.schedule_in_database(schedule_name, cron, command,
                                              pg_catalog.current_database(), caller_name, true);
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%invalid schedule%' THEN
            RAISE EXCEPTION 'invalid cron expression "%"', cron
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Use five cron fields, e.g. ''*/5 * * * *'' or ''0 3 * * *''.';
        END IF;
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%can not log in%' THEN
            RAISE EXCEPTION 'role % cannot own a schedule: it cannot log in', caller_name
                USING ERRCODE = 'invalid_authorization_specification',
                      HINT = 'pg_cron runs each schedule as its owner; schedule as a role with LOGIN.';
        END IF;
        RAISE;
    END;
    RETURN cron_job;
END
$$;

CREATE FUNCTION job_engine.schedule(schedule_name text, cron text, handler text,
        args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._unschedule(caller oid, schedule_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_job bigint;
BEGIN
    PERFORM job_engine._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine._require_pg_cron();
    SELECT c.jobid INTO cron_job FROM cron.job c
     WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
       AND c.username OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(caller);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(cron_job);
END
$$;

CREATE FUNCTION job_engine.unschedule(schedule_name text)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-------------------------------------------------------------------------------
-- Retention
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._purge_before(cutoff timestamptz, caller oid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- Attempts go with their jobs (ON DELETE CASCADE).
    DELETE FROM job_engine._jobs j
     WHERE j.state IN ('succeeded', 'failed', 'aborted')
       AND j.finished_at OPERATOR(pg_catalog.<) cutoff
       AND (caller IS NULL OR pg_catalog.pg_has_role(caller, j.owner, 'MEMBER'));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION job_engine._purge(caller oid, older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require(older_than, 'older_than');
    PERFORM job_engine._require_interval(older_than, 'older_than', true);
    RETURN job_engine._purge_before(pg_catalog.now() OPERATOR(pg_catalog.-) older_than, caller);
END
$$;

-- Deletes the terminal jobs of every role that finished `older_than`
-- ago or more (the caller must be allowed to see them).
CREATE FUNCTION job_engine.purge(older_than interval)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Called by the supervisor per job_engine.retention (seconds).
CREATE FUNCTION job_engine._purge_expired(retention_s integer)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT job_engine._purge_before(
        pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => retention_s), NULL)
$$;

-------------------------------------------------------------------------------
-- Views (a non-superuser sees only rows of roles it belongs to)
-------------------------------------------------------------------------------

CREATE VIEW job_engine.jobs WITH (security_barrier) AS
SELECT j.id, j.handler, j.queue, j.state, j.priority, j.attempts, j.max_attempts,
       j.args, j.result, j.created_at, j.run_at, j.started_at, j.finished_at,
       j.finished_at OPERATOR(pg_catalog.-) j.started_at AS duration,
       j.correlation_id, j.parent_job_id, j.event_id, j.resubmitted_from,
       pg_catalog.pg_get_userbyid(j.owner)::name AS owner,
       j.last_error, j.abort_reason
  FROM job_engine._jobs j
 WHERE pg_catalog.pg_has_role(j.owner, 'MEMBER');

CREATE VIEW job_engine.attempts WITH (security_barrier) AS
SELECT a.job_id, a.attempt, a.outcome, a.started_at, a.finished_at,
       a.finished_at OPERATOR(pg_catalog.-) a.started_at AS duration,
       a.worker_pid, a.sqlstate, a.message, a.detail, a.hint, a.context
  FROM job_engine._attempts a
  JOIN job_engine._jobs j ON j.id OPERATOR(pg_catalog.=) a.job_id
 WHERE pg_catalog.pg_has_role(j.owner, 'MEMBER');

CREATE VIEW job_engine.workers AS
SELECT w.pid, d.datname AS database, w.state, w.job_id, w.attempt, w.since
  FROM job_engine._workers() w
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) w.database;

CREATE VIEW job_engine.events WITH (security_barrier) AS
SELECT e.id, e.event_type, e.payload, e.correlation_id, e.published_at,
       (SELECT pg_catalog.count(*) FROM job_engine._jobs j
         WHERE j.event_id OPERATOR(pg_catalog.=) e.id
           AND pg_catalog.pg_has_role(j.owner, 'MEMBER')) AS jobs_created
  FROM job_engine._events e
 WHERE pg_catalog.pg_has_role(e.publisher, 'MEMBER')
    OR EXISTS (SELECT 1 FROM job_engine._jobs j
                WHERE j.event_id OPERATOR(pg_catalog.=) e.id
                  AND pg_catalog.pg_has_role(j.owner, 'MEMBER'));

CREATE INDEX jobs_event_idx ON job_engine._jobs (event_id) WHERE event_id IS NOT NULL;

-- Per queue: jobs by state, the age of the oldest job that is due but not
-- started, and throughput and durations over the last one and five minutes.
CREATE VIEW job_engine.queue_stats WITH (security_barrier) AS
SELECT q.name AS queue, q.paused, q.concurrency, q.group_commit,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'created') AS created,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'running') AS running,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'retrying') AS retrying,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'succeeded') AS succeeded,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'failed') AS failed,
       pg_catalog.count(j.id) FILTER (WHERE j.state OPERATOR(pg_catalog.=) 'aborted') AS aborted,
       pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(j.run_at)
           FILTER (WHERE j.state IN ('created', 'retrying')
                     AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS oldest_waiting_age,
       pg_catalog.round(pg_catalog.count(j.id) FILTER (WHERE j.finished_at OPERATOR(pg_catalog.>=)
           (pg_catalog.now() OPERATOR(pg_catalog.-) '1 minute'::interval))::numeric
           OPERATOR(pg_catalog./) 60, 2) AS jobs_per_second_1m,
       pg_catalog.round(pg_catalog.count(j.id) FILTER (WHERE j.finished_at OPERATOR(pg_catalog.>=)
           (pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::interval))::numeric
           OPERATOR(pg_catalog./) 300, 2) AS jobs_per_second_5m,
       pg_catalog.percentile_cont(0.5) WITHIN GROUP
           (ORDER BY j.finished_at OPERATOR(pg_catalog.-) j.started_at)
           FILTER (WHERE j.finished_at OPERATOR(pg_catalog.>=)
                   (pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::interval)) AS p50_duration_5m,
       pg_catalog.percentile_cont(0.95) WITHIN GROUP
           (ORDER BY j.finished_at OPERATOR(pg_catalog.-) j.started_at)
           FILTER (WHERE j.finished_at OPERATOR(pg_catalog.>=)
                   (pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::interval)) AS p95_duration_5m
  FROM job_engine.queues q
  LEFT JOIN job_engine._jobs j
         ON j.queue OPERATOR(pg_catalog.=) q.name
        AND pg_catalog.pg_has_role(j.owner, 'MEMBER')
 GROUP BY q.name, q.paused, q.concurrency, q.group_commit;

-- Sort key of a trace node: creation time, then kind, then id, as text of
-- fixed width so that siblings sort by time and id, not by digits.
CREATE FUNCTION job_engine._trace_key(created_at timestamptz, kind text, id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.lpad(((pg_catalog.date_part('epoch', created_at)
                OPERATOR(pg_catalog.*) 1000000)::bigint)::text, 20, '0')
           OPERATOR(pg_catalog.||) kind
           OPERATOR(pg_catalog.||) pg_catalog.lpad(id::text, 20, '0')
$$;

-- What one request set in motion: the events and jobs sharing a correlation
-- id, as a tree linked by cause (event -> job, parent -> child,
-- compensation, resubmission, job -> published event), depth-first.
CREATE FUNCTION job_engine._trace(caller oid, correlation_id uuid)
RETURNS TABLE (depth integer, kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE
    nodes AS (
        SELECT 'event'::text AS kind, e.id, e.event_type AS name, NULL::text AS state,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'published' ELSE 'root' END AS cause,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'job' END AS parent_kind,
               e.published_by_job AS parent_id,
               e.published_at AS created_at, NULL::timestamptz AS finished_at,
               NULL::text AS detail
          FROM job_engine._events e
         WHERE e.correlation_id OPERATOR(pg_catalog.=) _trace.correlation_id
           AND (pg_catalog.pg_has_role(caller, e.publisher, 'MEMBER')
                OR EXISTS (SELECT 1 FROM job_engine._jobs x
                            WHERE x.event_id OPERATOR(pg_catalog.=) e.id
                              AND pg_catalog.pg_has_role(caller, x.owner, 'MEMBER')))
        UNION ALL
        SELECT 'job', j.id, j.handler, j.state::text,
               CASE WHEN j.compensation_of IS NOT NULL THEN 'compensation'
                    WHEN j.resubmitted_from IS NOT NULL THEN 'resubmission'
                    WHEN j.parent_job_id IS NOT NULL THEN 'child'
                    WHEN j.event_id IS NOT NULL THEN 'event'
                    ELSE 'root' END,
               CASE WHEN j.compensation_of IS NOT NULL OR j.resubmitted_from IS NOT NULL
                         OR j.parent_job_id IS NOT NULL THEN 'job'
                    WHEN j.event_id IS NOT NULL THEN 'event' END,
               COALESCE(j.compensation_of, j.resubmitted_from, j.parent_job_id, j.event_id),
               j.created_at, j.finished_at,
               COALESCE(j.last_error, j.abort_reason)
          FROM job_engine._jobs j
         WHERE j.correlation_id OPERATOR(pg_catalog.=) _trace.correlation_id
           AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER')
    ),
    tree AS (
        SELECT n.*, 0 AS depth, ARRAY[job_engine._trace_key(n.created_at, n.kind, n.id)] AS path
          FROM nodes n
         WHERE n.parent_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM nodes p
                            WHERE p.kind OPERATOR(pg_catalog.=) n.parent_kind
                              AND p.id OPERATOR(pg_catalog.=) n.parent_id)
        UNION ALL
        SELECT c.*, t.depth OPERATOR(pg_catalog.+) 1,
               t.path OPERATOR(pg_catalog.||) job_engine._trace_key(c.created_at, c.kind, c.id)
          FROM nodes c
          JOIN tree t ON t.kind OPERATOR(pg_catalog.=) c.parent_kind
                     AND t.id OPERATOR(pg_catalog.=) c.parent_id
         WHERE t.depth OPERATOR(pg_catalog.<) 100
    )
    SELECT t.depth, t.kind, t.id, t.name, t.state, t.cause, t.parent_kind, t.parent_id,
           t.created_at, t.finished_at, t.detail
      FROM tree t
     ORDER BY t.path
$$;

CREATE FUNCTION job_engine.trace(correlation_id uuid)
RETURNS TABLE (depth integer, kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text)
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Escapes a Prometheus label value.
CREATE FUNCTION job_engine._prom_label(value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(value,
           E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

-- Counters and gauges in Prometheus text format, over the rows the caller
-- may see.  Attempt counters count retained attempts (purge removes them).
CREATE FUNCTION job_engine.metrics()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_agg(line, E'\n' ORDER BY section, line) OPERATOR(pg_catalog.||) E'\n'
      FROM (
        SELECT 1 AS section, '# HELP job_engine_jobs Jobs by queue and state.' AS line
        UNION ALL SELECT 1, '# TYPE job_engine_jobs gauge'
        UNION ALL
        SELECT 1, pg_catalog.format('job_engine_jobs{queue="%s",state="%s"} %s',
                   job_engine._prom_label(q.queue), s.state, s.n)
          FROM job_engine.queue_stats q,
               LATERAL (VALUES ('created', q.created), ('running', q.running),
                               ('retrying', q.retrying), ('succeeded', q.succeeded),
                               ('failed', q.failed), ('aborted', q.aborted)) AS s(state, n)
        UNION ALL SELECT 2, '# HELP job_engine_attempts Retained attempts by outcome (purge removes them, so this is a gauge).'
        UNION ALL SELECT 2, '# TYPE job_engine_attempts gauge'
        UNION ALL
        SELECT 2, pg_catalog.format('job_engine_attempts{outcome="%s"} %s', o.outcome,
                   (SELECT pg_catalog.count(*) FROM job_engine.attempts a
                     WHERE a.outcome::text OPERATOR(pg_catalog.=) o.outcome))
          FROM pg_catalog.unnest(ARRAY['running', 'succeeded', 'failed', 'aborted', 'crashed']) AS o(outcome)
        UNION ALL SELECT 3, '# HELP job_engine_oldest_waiting_seconds Age of the oldest due job not yet started.'
        UNION ALL SELECT 3, '# TYPE job_engine_oldest_waiting_seconds gauge'
        UNION ALL
        SELECT 3, pg_catalog.format('job_engine_oldest_waiting_seconds{queue="%s"} %s',
                   job_engine._prom_label(q.queue),
                   pg_catalog.round(COALESCE(pg_catalog.date_part('epoch', q.oldest_waiting_age), 0)::numeric, 3))
          FROM job_engine.queue_stats q
        UNION ALL SELECT 4, '# HELP job_engine_job_duration_seconds Durations of jobs finished in the last 5 minutes.'
        UNION ALL SELECT 4, '# TYPE job_engine_job_duration_seconds summary'
        UNION ALL
        SELECT 4, pg_catalog.format('job_engine_job_duration_seconds{queue="%s",quantile="%s"} %s',
                   job_engine._prom_label(q.queue), p.quantile,
                   pg_catalog.round(COALESCE(pg_catalog.date_part('epoch', p.value), 0)::numeric, 6))
          FROM job_engine.queue_stats q,
               LATERAL (VALUES ('0.5', q.p50_duration_5m), ('0.95', q.p95_duration_5m)) AS p(quantile, value)
        UNION ALL SELECT 5, '# HELP job_engine_workers Live executors by state.'
        UNION ALL SELECT 5, '# TYPE job_engine_workers gauge'
        UNION ALL
        SELECT 5, pg_catalog.format('job_engine_workers{database="%s",state="%s"} %s',
                   job_engine._prom_label(pg_catalog.current_database()), st.state,
                   (SELECT pg_catalog.count(*) FROM job_engine.workers w
                     WHERE w.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                       AND w.state OPERATOR(pg_catalog.=) st.state))
          FROM pg_catalog.unnest(ARRAY['idle', 'busy']) AS st(state)
      ) m
$$;

GRANT USAGE ON SCHEMA job_engine TO PUBLIC;
GRANT SELECT ON job_engine.jobs, job_engine.attempts, job_engine.events,
                job_engine.workers, job_engine.queue_stats TO PUBLIC;
GRANT SELECT ON job_engine.handlers, job_engine.queues, job_engine.subscriptions TO PUBLIC;

-- Internal functions: only the extension (through the gate) and superusers.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'job_engine'::regnamespace
                AND p.proname OPERATOR(pg_catalog.~~) '\_%'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

-- Used by views and metrics() that run with the caller's privileges.
GRANT EXECUTE ON FUNCTION job_engine._workers(), job_engine._prom_label(text) TO PUBLIC;

-- Administration is granted explicitly, never to PUBLIC.
REVOKE ALL ON FUNCTION job_engine.register_handler(text, regprocedure, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.register_c_handler(text, text, text, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.unregister_handler(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.pause_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.resume_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.configure_queue(text, integer, integer) FROM PUBLIC;

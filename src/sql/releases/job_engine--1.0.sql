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
--
-- The script is built by the Makefile from the pieces in src/sql/, in the
-- order listed there (types and tables before the functions that use
-- them, views before the functions that read them).  Each piece opens
-- with a banner naming its C twin: the module of src/ that does the same
-- work in C, or the one that calls it.  Edit the pieces, not this script.
--
-- Piece src/sql/00_schema.sql.  C twin: none; it refuses a job_engine
-- schema that an ordinary role prepared in advance.

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
-- Types and tables
--
-- Piece src/sql/10_tables.sql.  C twin: none; src/claim.c, src/outcome.c,
-- src/guard.c and src/vacuum.c work on these tables.
-------------------------------------------------------------------------------

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
    -- The function of a SQL handler by signature, 'schema.name(jsonb)', looked
    -- up when a job is submitted and when an attempt starts: no OID, so a
    -- function dropped and created again repairs the handler, and no
    -- regprocedure, which pg_upgrade refuses in a table.
    fn              text,
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
    -- Why a waiting job is held out of the claim: 'd' a dependency, 'k' an
    -- earlier job with its ordering key (src/claim.c).  NULL: a candidate.
    -- Only claims set it, and whatever may unblock the job clears it.
    blocked          "char"
                     CONSTRAINT job_blocked_reason CHECK (blocked IN ('d', 'k')),
    CONSTRAINT job_run_at_finite CHECK (pg_catalog.isfinite(run_at)),
    CONSTRAINT job_attempts_within_max CHECK (attempts OPERATOR(pg_catalog.<=) max_attempts)
) WITH (fillfactor = 80,
       autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
       autovacuum_vacuum_cost_delay = 0);

-- The claim: candidates (waiting rows not held back) of one queue in
-- (priority, run_at, id) order.  Queue first, so that jobs piling up in a
-- paused or full queue are never scanned by claims for the other queues,
-- and so that the claim can step from queue to queue; jobs held back by a
-- dependency or an ordering key are not in it at all.
CREATE INDEX jobs_claim_idx ON job_engine._jobs (queue, priority, run_at, id)
    WHERE state IN ('created', 'retrying') AND blocked IS NULL;
-- The next due time, for executors sleeping until a delayed job is due.
-- Its predicate names priority on purpose: the claim query does not imply
-- it, so the planner can never pick this index (and a sort) for the claim.
CREATE INDEX jobs_due_idx ON job_engine._jobs (run_at)
    WHERE state IN ('created', 'retrying') AND blocked IS NULL AND priority IS NOT NULL;
-- Crash recovery looks up running jobs by worker.  The predicate names
-- worker_pid so that statements on one job by id (recording an outcome)
-- cannot pick this index, whose dead entries pile up between vacuums.
CREATE INDEX jobs_running_idx ON job_engine._jobs (worker_pid)
    WHERE state = 'running' AND worker_pid IS NOT NULL;
-- Idempotency: one live job per (handler, owner, key); roles do not share
-- keys, so no role learns of another's job through one.
CREATE UNIQUE INDEX jobs_idempotency_idx ON job_engine._jobs (handler, owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('created', 'running', 'retrying');
-- Ordering keys, like idempotency keys, belong to the owner: a job waits
-- only for earlier unfinished jobs of its own owner with its key.
CREATE INDEX jobs_ordering_idx ON job_engine._jobs (owner, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('created', 'running', 'retrying');
-- Whether a queue still has jobs (retention removes queues left empty):
-- with jobs_claim_idx (candidates) and jobs_running_idx, every job is found
-- by its queue, and an entry is made only when a job ends or is held.
CREATE INDEX jobs_queue_idx ON job_engine._jobs (queue)
    WHERE finished_at IS NOT NULL OR blocked IS NOT NULL;
CREATE INDEX jobs_correlation_idx ON job_engine._jobs (correlation_id);
CREATE INDEX jobs_parent_idx ON job_engine._jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_finished_idx ON job_engine._jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_event_idx ON job_engine._jobs (event_id) WHERE event_id IS NOT NULL;

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

-- Claims for a queue with a concurrency limit take turns on its row here,
-- not on its row of job_engine.queues: that row can be locked by the
-- transaction of a role that may configure queues (or FOR KEY SHARE by a
-- handler being registered), and a claim must never wait for a user's
-- transaction.  Only claims lock or insert these rows.
CREATE TABLE job_engine._queue_turns (
    queue  text PRIMARY KEY
);

-- Jobs whose release a transition could not write because the job's row was
-- locked by another transaction (an abort() left open, say).  Crash
-- recovery's periodic pass makes them candidates again (src/sql/74_recovery.sql).
-- No unique index: an insert must never wait for another transaction's.
CREATE TABLE job_engine._recheck (
    job_id     bigint NOT NULL,
    noted_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Failures an executor could not record because the job's row stayed locked
-- by another transaction (an abort() left open) beyond a bounded wait: the
-- job stays running, and crash recovery's periodic pass records them once
-- the row is free (src/outcome.c, src/sql/74_recovery.sql).
CREATE TABLE job_engine._pending_outcomes (
    job_id       bigint NOT NULL,
    attempt      integer NOT NULL,
    sqlstate     text,
    message      text,
    detail       text,
    hint         text,
    context      text,
    noted_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job_id, attempt)
);

SELECT pg_catalog.pg_extension_config_dump('job_engine.queues', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._events', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._jobs', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._attempts', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._recheck', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._pending_outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine._events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_engine.subscriptions_id_seq', '');

REVOKE ALL ON ALL TABLES IN SCHEMA job_engine FROM PUBLIC;

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

-------------------------------------------------------------------------------
-- Attempts follow their jobs; events never change
-------------------------------------------------------------------------------

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
-- Waking executors on commit
--
-- Piece src/sql/30_wakeup.sql.  C twin: src/wakeup.c.
-------------------------------------------------------------------------------

-- Wakes idle executors of this database when the transaction commits.
CREATE FUNCTION job_engine._wake_on_commit(jobs integer)
RETURNS void
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_wake_on_commit';

-- Whether a row version with xmin `row_xmin` was written by this
-- transaction, not committed yet: its jobs cannot start before it commits.
CREATE FUNCTION job_engine._written_in_this_transaction(row_xmin xid)
RETURNS boolean
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_written_in_this_transaction';

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
--
-- Piece src/sql/40_validation.sql.  C twin: none (SQL only).
-------------------------------------------------------------------------------

-- Raises 22004 if value is NULL.  has_default: whether the public function
-- gives the argument a default, so that the hint may suggest leaving it out.
CREATE FUNCTION job_engine._require(value anyelement, argument text,
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
CREATE FUNCTION job_engine._require_name(value text, argument text,
        has_default boolean DEFAULT false, blank_hint text DEFAULT 'Give a non-blank name.')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require(value, argument, has_default);
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
CREATE FUNCTION job_engine._require_handler(handler_name text, for_change boolean DEFAULT false)
RETURNS job_engine.handlers
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
BEGIN
    PERFORM job_engine._require_name(handler_name, 'handler');
    IF for_change THEN
        SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) handler_name
           FOR UPDATE;
    ELSE
        SELECT * INTO h FROM job_engine.handlers WHERE name OPERATOR(pg_catalog.=) handler_name
           FOR KEY SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'handler "%" does not exist', handler_name
            USING ERRCODE = 'undefined_function',
                  HINT = 'Register it first with job_engine.register_handler(); registered handlers are listed in job_engine.handlers.';
    END IF;
    RETURN h;
END
$$;

-- Raises 42501 unless `caller` is a member of the role owning handler h:
-- changing or removing a handler is its owner's (docs/architecture.md §7).  `action`
-- completes "must be a member of role R to <action> handler ...".
CREATE FUNCTION job_engine._require_handler_owner(caller oid, h job_engine.handlers, action text)
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

CREATE FUNCTION job_engine._ensure_queue(queue_name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._require_name(queue_name, 'queue');
    -- KEY SHARE, the lock the job's foreign key takes anyway, taken now: a
    -- purge removing unused queues (FOR UPDATE SKIP LOCKED) then leaves this
    -- row alone, instead of deleting it before the job is inserted (23503).
    PERFORM 1 FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) queue_name FOR KEY SHARE;
    IF NOT FOUND THEN
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

-- Raises 42883 unless the handler's function exists now (looked up by its
-- signature), and 42501 unless `caller` may execute it (native handlers
-- have none to check): a job that could only fail is refused before it is
-- created.  `action` completes "permission denied to <action> handler ...".
CREATE FUNCTION job_engine._require_execute(caller oid, h job_engine.handlers, action text)
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
    fn := job_engine._handler_function(h.fn);
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
--
-- Piece src/sql/50_handlers.sql.  C twin: src/handler_function.c (a
-- handler's function, looked up by signature).  Its public functions are thin
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
    PERFORM job_engine._require_name(queue, 'queue', has_default => true);
    PERFORM job_engine._require(max_attempts, 'max_attempts', has_default => true);
    PERFORM job_engine._require(backoff_base, 'backoff_base', has_default => true);
    PERFORM job_engine._require(backoff_max, 'backoff_max', has_default => true);
    IF max_attempts OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'argument "max_attempts" must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_attempts counts the first attempt too; 1 means never retry.';
    END IF;
    PERFORM job_engine._require_interval(backoff_base, 'backoff_base', true);
    PERFORM job_engine._require_interval(backoff_max, 'backoff_max', true);
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
    PERFORM job_engine._require_interval(timeout, 'timeout', false);
    IF backoff_max OPERATOR(pg_catalog.<) backoff_base THEN
        RAISE EXCEPTION 'argument "backoff_max" (%) is below "backoff_base" (%)', backoff_max, backoff_base
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'backoff_max caps the exponential delay and must be at least backoff_base.';
    END IF;
    PERFORM job_engine._validate_retry_on(retry_on);

    IF compensate_with IS NOT NULL THEN
        PERFORM job_engine._require_name(compensate_with, 'compensate_with');
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
CREATE FUNCTION job_engine._handler_function(signature text)
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
CREATE FUNCTION job_engine._store_handler(caller oid, name text, fn text, library text,
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
            PERFORM job_engine._require_handler_owner(caller, old, 'change');
            PERFORM job_engine._ensure_queue(queue);
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
        PERFORM job_engine._ensure_queue(queue);
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
                  HINT = 'GRANT EXECUTE on the handler''s function to the registering role.';
    END IF;
    -- By signature, always schema-qualified (src/handler_function.c reads it).
    PERFORM job_engine._store_handler(caller, name,
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

CREATE FUNCTION job_engine._unregister_handler(caller oid, name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    waiting bigint;
    dependents text;
BEGIN
    PERFORM job_engine._require_name(name, 'name');
    -- Locked first: a submit still uncommitted holds the row FOR KEY SHARE,
    -- so this waits for it and then counts its job.
    h := job_engine._require_handler(name, for_change => true);
    PERFORM job_engine._require_handler_owner(caller, h, 'unregister');
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

-------------------------------------------------------------------------------
-- Native C handlers
--
-- Piece src/sql/52_native_handlers.sql.  C twin: src/native_handler.c
-- (job_engine_check_c_symbol, and the call the executors make).
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
    PERFORM job_engine._store_handler(caller, name, NULL, library, symbol, queue, max_attempts,
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

-------------------------------------------------------------------------------
-- Jobs: submit, resubmit, abort, wait
--
-- Piece src/sql/60_jobs.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.  An abort's interrupt is sent at commit by src/wakeup.c.
-------------------------------------------------------------------------------

-------------------------------------------------------------------------------
-- Creating jobs: every job is inserted by _create_job()
-------------------------------------------------------------------------------

-- Creates a job per element of `args`, all of handler h and owned by
-- `owner`, and returns their ids in the order of `args`.  What is not given
-- is the handler's queue and max_attempts, now, and the running job's
-- correlation id (outside a job, a new one per job).  Executors are woken at
-- commit for every job created.  With an idempotency key or prerequisites
-- (one job only), a live job of the same handler, owner and key is returned
-- instead of a new one, and a prerequisite that already failed or was
-- aborted aborts the new job at once.  The callers check the arguments.
--
-- A job that cannot run yet (a prerequisite or an earlier job of the owner
-- with its ordering key is unfinished) is held back from the claim at once
-- (blocked), so that no claim ever looks at it until a transition releases
-- it (_unblock).  No lock is taken on the jobs it waits for: the submitting
-- transaction belongs to a user and may stay open, and the engine must
-- never wait for it.  One of them may end while the submit is uncommitted,
-- unseen by the transition that ends it; so every job held back here is
-- also noted in _recheck, and decided again after the submit commits
-- (_release_rechecks, by an idle executor, which the submit wakes).
-- The unfinished job of handler `handler_name` and role `owner` that has
-- idempotency key `key` (at most one, by a unique index), or NULL.
CREATE FUNCTION job_engine._live_job_with_key(handler_name text, owner oid, key text)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id FROM job_engine._jobs j
     WHERE j.handler OPERATOR(pg_catalog.=) handler_name
       AND j.owner OPERATOR(pg_catalog.=) _live_job_with_key.owner
       AND j.idempotency_key OPERATOR(pg_catalog.=) key
       AND j.state IN ('created', 'running', 'retrying')
$$;

CREATE FUNCTION job_engine._create_job(h job_engine.handlers, owner oid, args jsonb[],
        queue text DEFAULT NULL, priority integer DEFAULT 0,
        run_at timestamptz DEFAULT NULL, max_attempts integer DEFAULT NULL,
        correlation_id uuid DEFAULT NULL, parent_job_id bigint DEFAULT NULL,
        event_id bigint DEFAULT NULL, resubmitted_from bigint DEFAULT NULL,
        compensation_of bigint DEFAULT NULL, idempotency_key text DEFAULT NULL,
        depends_on bigint[] DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    job_queue text := COALESCE(queue, h.queue);
    job_max_attempts integer := COALESCE(max_attempts, h.max_attempts);
    job_run_at timestamptz := COALESCE(run_at, pg_catalog.now());
    corr uuid := COALESCE(correlation_id,
                          (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid);
    new_id bigint;
    n integer;
    held "char";
    doomed record;
    aborted_job job_engine._jobs;
BEGIN
    IF idempotency_key IS NULL AND depends_on IS NULL AND ordering_key IS NULL THEN
        -- Without ON CONFLICT: it would make every row of a submit_many a
        -- speculative insertion, about 7% of its time.
        RETURN QUERY
        INSERT INTO job_engine._jobs AS j
            (handler, queue, priority, args, max_attempts, run_at, owner, correlation_id,
             parent_job_id, event_id, resubmitted_from, compensation_of, ordering_key)
        SELECT h.name, job_queue, _create_job.priority, t.a, job_max_attempts, job_run_at,
               _create_job.owner, COALESCE(corr, pg_catalog.gen_random_uuid()),
               _create_job.parent_job_id, _create_job.event_id, _create_job.resubmitted_from,
               _create_job.compensation_of, NULL
          FROM pg_catalog.unnest(_create_job.args) WITH ORDINALITY AS t(a, ord)
         ORDER BY t.ord
        RETURNING j.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n OPERATOR(pg_catalog.>) 0 THEN
            PERFORM job_engine._wake_on_commit(n);
        END IF;
        RETURN;
    END IF;

    IF depends_on IS NOT NULL
       AND EXISTS (SELECT 1 FROM job_engine._jobs p
                    WHERE p.id OPERATOR(pg_catalog.=) ANY (_create_job.depends_on)
                      AND p.state OPERATOR(pg_catalog.<>) 'succeeded') THEN
        held := 'd';
    ELSIF ordering_key IS NOT NULL
          AND EXISTS (SELECT 1 FROM job_engine._jobs o
                       WHERE o.owner OPERATOR(pg_catalog.=) _create_job.owner
                         AND o.ordering_key OPERATOR(pg_catalog.=) _create_job.ordering_key
                         AND o.state IN ('created', 'running', 'retrying')) THEN
        held := 'k';
    END IF;
    INSERT INTO job_engine._jobs AS j
        (handler, queue, priority, args, max_attempts, run_at, owner, correlation_id,
         parent_job_id, event_id, resubmitted_from, compensation_of, ordering_key,
         idempotency_key, depends_on, blocked)
    VALUES (h.name, job_queue, _create_job.priority, _create_job.args[1], job_max_attempts,
            job_run_at, _create_job.owner, COALESCE(corr, pg_catalog.gen_random_uuid()),
            _create_job.parent_job_id, _create_job.event_id, _create_job.resubmitted_from,
            _create_job.compensation_of, _create_job.ordering_key,
            _create_job.idempotency_key, _create_job.depends_on, held)
    ON CONFLICT (handler, owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND state IN ('created', 'running', 'retrying')
        DO NOTHING
    RETURNING j.id INTO new_id;

    IF new_id IS NULL THEN
        -- A live job of this role already has the key (perhaps from a
        -- concurrent submit, which the unique index made us wait for).
        RETURN NEXT job_engine._live_job_with_key(h.name, owner, idempotency_key);
        RETURN;
    END IF;

    IF depends_on IS NOT NULL THEN
        INSERT INTO job_engine._dependencies (job_id, depends_on)
        SELECT DISTINCT new_id, d FROM pg_catalog.unnest(_create_job.depends_on) AS d;
        -- A prerequisite that already failed or was aborted dooms the job at
        -- once (one that ends later is caught by the claim, see above).
        SELECT j.id, j.state INTO doomed FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) ANY (_create_job.depends_on)
           AND j.state IN ('failed', 'aborted')
         ORDER BY j.id LIMIT 1;
        IF FOUND THEN
            UPDATE job_engine._jobs j
               SET state = 'aborted',
                   abort_reason = pg_catalog.format('dependency %s %s', doomed.id, doomed.state)
             WHERE j.id OPERATOR(pg_catalog.=) new_id
            RETURNING * INTO aborted_job;
            PERFORM job_engine._after_transition(aborted_job);
            RETURN NEXT new_id;
            RETURN;
        END IF;
    END IF;
    IF held IS NOT NULL THEN
        INSERT INTO job_engine._recheck (job_id) VALUES (new_id);
    END IF;
    PERFORM job_engine._wake_on_commit(1);
    RETURN NEXT new_id;
END
$$;

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
    missing bigint;
BEGIN
    h := job_engine._require_handler(handler);
    PERFORM job_engine._check_owner(caller);
    PERFORM job_engine._require(args, 'args', has_default => true);
    PERFORM job_engine._require(priority, 'priority', has_default => true);
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
        -- Jobs of roles the caller does not belong to do not exist for it:
        -- the rule of abort(), and the same error as for an unknown id.  No
        -- lock is taken on them (see _create_job), so that neither a wait
        -- nor a lock tells the caller anything about another role's job.
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

    -- A submit answered by a live job's idempotency key creates no queue
    -- row (one that is committed meanwhile is found by _create_job).
    IF queue IS NOT NULL AND (idempotency_key IS NULL
            OR job_engine._live_job_with_key(h.name, caller, idempotency_key) IS NULL) THEN
        PERFORM job_engine._ensure_queue(queue);
    END IF;
    RETURN job_engine._create_job(h, caller, ARRAY[args], queue => queue,
        priority => priority, run_at => run_at, max_attempts => max_attempts,
        correlation_id => correlation_id, parent_job_id => job_engine.current_job_id(),
        idempotency_key => idempotency_key, depends_on => depends_on,
        ordering_key => ordering_key);
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
BEGIN
    h := job_engine._require_handler(handler);
    PERFORM job_engine._check_owner(caller);
    PERFORM job_engine._require(args, 'args');
    PERFORM job_engine._require(priority, 'priority', has_default => true);
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
    -- No jobs, no queue row: nothing would ever remove it but retention.
    IF queue IS NOT NULL AND pg_catalog.cardinality(args) OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine._ensure_queue(queue);
    END IF;
    RETURN QUERY
    SELECT * FROM job_engine._create_job(h, caller, args, queue => queue,
        priority => priority, run_at => run_at, parent_job_id => job_engine.current_job_id());
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
-- One existing job: resubmit, abort, wait
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
    -- Visibility is decided by a plain read before any lock: a lock wait,
    -- its timeout (55P03, naming the tuple) or a serialization failure
    -- (40001) on another role's job would tell the caller that it exists.
    SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id;
    IF lock AND FOUND AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER') THEN
        SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id FOR UPDATE;
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
    RETURN job_engine._create_job(h, caller, ARRAY[j.args], queue => j.queue,
        priority => j.priority, max_attempts => j.max_attempts,
        correlation_id => j.correlation_id, parent_job_id => j.parent_job_id,
        event_id => j.event_id, resubmitted_from => j.id, ordering_key => j.ordering_key);
END
$$;

CREATE FUNCTION job_engine.resubmit(job_id bigint)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._abort(caller oid, job_id bigint, reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine._require_name(reason, 'reason',
        blank_hint => 'Give a reason: it is recorded as the job''s abort_reason.');
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
    PERFORM job_engine._require(timeout, 'timeout', has_default => true);
    PERFORM job_engine._require_interval(timeout, 'timeout', true);
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'job_engine.wait() needs READ COMMITTED isolation'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'Under a snapshot isolation level the job''s progress is invisible; call wait() outside such a transaction.';
    END IF;
    j := job_engine._job_for(caller, job_id, false);
    IF j.state IN ('created', 'retrying')
       AND job_engine._written_in_this_transaction(
               (SELECT x.xmin FROM job_engine._jobs x WHERE x.id OPERATOR(pg_catalog.=) job_id)) THEN
        RAISE NOTICE 'job % cannot start before this transaction commits', job_id
            USING DETAIL = 'This transaction created or changed the job; no executor may claim it until then.',
                  HINT = 'Commit first, then call job_engine.wait(), or wait from another session.';
        RETURN j.state::text;
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
-- count, nor delayed jobs held back by a claim: whatever unblocks them wakes
-- an executor.
CREATE FUNCTION job_engine._next_due_in()
RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.date_part('epoch', j.run_at OPERATOR(pg_catalog.-) pg_catalog.now())
      FROM job_engine._jobs j
     WHERE j.state IN ('created', 'retrying') AND j.blocked IS NULL AND j.priority IS NOT NULL
       AND j.run_at OPERATOR(pg_catalog.>) pg_catalog.now()
     ORDER BY j.run_at
     LIMIT 1
$$;

-- Decides, for waiting job `job_id`, whether it is held back from the claim,
-- and records it: 'd' blocked by a dependency, 'k' by an earlier unfinished
-- job of its owner with its ordering key, 'r' runnable (a candidate), 'x'
-- aborted here because a prerequisite failed or was aborted (or no longer
-- waiting), 'b' not decided because another transaction holds its row,
-- 'w' held back ('d' or 'k') by a blocker whose row another transaction
-- holds, and noted in _recheck to be decided again.  A held job is not in jobs_claim_idx, so that no claim looks at it again
-- until a transition that may unblock it releases it (_unblock): claims
-- cost the same however many blocked jobs wait.
--
-- Safe against a concurrent release because a job is held only while this
-- transaction holds (1) the job's row, locked before anything else is
-- looked at, so that every look has a snapshot taken after the lock, and
-- (2) a share lock on one blocker that is unfinished in its latest version.
-- The transition ending that blocker updates its row, so it waits for this
-- transaction (one of the engine's: claims and recovery passes commit at
-- once), and its release then sees the job held.  Nothing waits here: rows
-- another transaction holds are skipped.  A blocker whose row is held (an
-- abort() left open) is still unfinished for all that is known: the job is
-- held back without the share lock, and noted in _recheck instead, so that
-- it is decided again once the row is free (never made a candidate on the
-- strength of a row an ordinary role may hold for as long as it likes).
CREATE FUNCTION job_engine._hold_job(job_id bigint)
RETURNS "char"
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- One plan per session, made of index probes, whatever the estimates.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    c record;
    why "char";
    busy boolean := false;
    doomed record;
    aborted job_engine._jobs;
BEGIN
    SELECT x.id, x.owner, x.ordering_key, x.depends_on IS NOT NULL AS has_dependencies, x.blocked
      INTO c
      FROM job_engine._jobs x
     WHERE x.id OPERATOR(pg_catalog.=) _hold_job.job_id
       AND x.state IN ('created', 'retrying')
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN CASE WHEN EXISTS (SELECT 1 FROM job_engine._jobs x
                                  WHERE x.id OPERATOR(pg_catalog.=) _hold_job.job_id
                                    AND x.state IN ('created', 'retrying'))
                    THEN 'b' ELSE 'x' END;
    END IF;

    IF c.has_dependencies THEN
        SELECT p.id, p.state INTO doomed
          FROM job_engine._dependencies d
          JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) d.depends_on
         WHERE d.job_id OPERATOR(pg_catalog.=) c.id
           AND p.state IN ('failed', 'aborted')
         ORDER BY p.id
         LIMIT 1;
        IF FOUND THEN
            UPDATE job_engine._jobs x
               SET state = 'aborted',
                   abort_reason = pg_catalog.format('dependency %s %s', doomed.id, doomed.state)
             WHERE x.id OPERATOR(pg_catalog.=) c.id
            RETURNING * INTO aborted;
            PERFORM job_engine._after_transition(aborted);
            RETURN 'x';
        END IF;
        PERFORM 1 FROM job_engine._jobs p
         WHERE p.id IN (SELECT d.depends_on FROM job_engine._dependencies d
                         WHERE d.job_id OPERATOR(pg_catalog.=) c.id)
           AND p.state IN ('created', 'running', 'retrying')
         LIMIT 1
           FOR SHARE SKIP LOCKED;
        IF FOUND THEN
            why := 'd';
        ELSIF EXISTS (SELECT 1 FROM job_engine._jobs p
                       WHERE p.id IN (SELECT d.depends_on FROM job_engine._dependencies d
                                       WHERE d.job_id OPERATOR(pg_catalog.=) c.id)
                         AND p.state IN ('created', 'running', 'retrying')) THEN
            why := 'd';
            busy := true;
        END IF;
    END IF;
    IF why IS NULL AND c.ordering_key IS NOT NULL THEN
        PERFORM 1 FROM job_engine._jobs o
         WHERE o.owner OPERATOR(pg_catalog.=) c.owner
           AND o.ordering_key OPERATOR(pg_catalog.=) c.ordering_key
           AND o.id OPERATOR(pg_catalog.<) c.id
           AND o.state IN ('created', 'running', 'retrying')
         ORDER BY o.id DESC
         LIMIT 1
           FOR SHARE SKIP LOCKED;
        IF FOUND THEN
            why := 'k';
        ELSIF EXISTS (SELECT 1 FROM job_engine._jobs o
                       WHERE o.owner OPERATOR(pg_catalog.=) c.owner
                         AND o.ordering_key OPERATOR(pg_catalog.=) c.ordering_key
                         AND o.id OPERATOR(pg_catalog.<) c.id
                         AND o.state IN ('created', 'running', 'retrying')) THEN
            why := 'k';
            busy := true;
        END IF;
    END IF;
    IF why IS DISTINCT FROM c.blocked THEN
        UPDATE job_engine._jobs x SET blocked = why WHERE x.id OPERATOR(pg_catalog.=) c.id;
    END IF;
    IF busy THEN
        -- Held without a lock on its blocker, whose end may not see it:
        -- decided again later (once noted is enough: _release_rechecks
        -- keeps the note).
        INSERT INTO job_engine._recheck (job_id)
        SELECT c.id WHERE NOT EXISTS (SELECT 1 FROM job_engine._recheck r
                                       WHERE r.job_id OPERATOR(pg_catalog.=) c.id);
        RETURN 'w';
    END IF;
    RETURN COALESCE(why, 'r');
END
$$;

-- Holds back the run of blocked candidates of `queue` that starts at the
-- head a claim picked (key head_priority, head_run_at, head_id), at most 64
-- looked at, in claim order (_hold_job for each).  Returns how many were
-- held or aborted: 0 means the head could not be (its row is busy, or it is
-- no longer blocked), and the claim takes the jobs behind it instead.
CREATE FUNCTION job_engine._hold(queue text, head_priority integer, head_run_at timestamptz,
        head_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    c record;
    n integer := 0;
    seen integer := 0;
    why "char";
BEGIN
    FOR c IN SELECT j.id FROM job_engine._jobs j
              WHERE j.queue OPERATOR(pg_catalog.=) _hold.queue
                AND j.state IN ('created', 'retrying') AND j.blocked IS NULL
                AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=)
                    ROW(head_priority, head_run_at, head_id)
              ORDER BY j.priority, j.run_at, j.id
    LOOP
        EXIT WHEN seen OPERATOR(pg_catalog.>=) 64;
        seen := seen OPERATOR(pg_catalog.+) 1;
        why := job_engine._hold_job(c.id);
        CONTINUE WHEN why OPERATOR(pg_catalog.=) 'b';
        -- Runnable: the run of blocked jobs ends here.
        EXIT WHEN why OPERATOR(pg_catalog.=) 'r';
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-------------------------------------------------------------------------------
-- Recording outcomes and their consequences
--
-- Piece src/sql/72_outcome.sql.  C twin: src/outcome.c: successes are recorded
-- there in C; failures and aborts here.
-------------------------------------------------------------------------------

-- Queues the 'job_engine' notification of a job's new state (src/outcome.c);
-- skipped with a WARNING when the notification queue is half full, since a
-- full one would make the recording transaction fail at commit.
CREATE FUNCTION job_engine._notify(job job_engine._jobs)
RETURNS void
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_notify';

-- Makes candidates for the claim again the waiting jobs that the end of the
-- jobs `ended` may have unblocked, and wakes an executor for each at commit:
-- the dependants of those that succeeded, and for each the next unfinished
-- job of its owner with its ordering key.  (Dependants of a job that failed
-- or was aborted are aborted instead, by _after_end.)  A job held back by a
-- claim (blocked) is released; one that is a candidate already needs only
-- the wake-up.  A row another transaction holds (an abort() left open) is
-- not waited for: it is noted in _recheck for recovery's periodic pass.
-- No claim can hold a job back on the strength of a job in `ended` after
-- this: it would need a share lock on that job, whose row this transaction
-- has updated (see _hold).  Returns how many jobs were found waiting.
CREATE FUNCTION job_engine._unblock(ended bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- One plan per session (planning this statement costs more than running it),
-- made of index probes: a handful of rows drive it, whatever the estimates.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n integer;
BEGIN
    WITH f AS (
        SELECT j.id, j.state, j.owner, j.ordering_key FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) ANY (ended)),
    t AS (
        SELECT e.job_id AS id
          FROM job_engine._dependencies e
          JOIN f ON f.id OPERATOR(pg_catalog.=) e.depends_on
         WHERE f.state OPERATOR(pg_catalog.=) 'succeeded'
        UNION
        SELECT s.id
          FROM f CROSS JOIN LATERAL (
                SELECT o.id FROM job_engine._jobs o
                 WHERE o.owner OPERATOR(pg_catalog.=) f.owner
                   AND o.ordering_key OPERATOR(pg_catalog.=) f.ordering_key
                   AND o.id OPERATOR(pg_catalog.>) f.id
                   AND o.state IN ('created', 'running', 'retrying')
                 ORDER BY o.id
                 LIMIT 1) s
         WHERE f.ordering_key IS NOT NULL),
    w AS (
        SELECT x.id, x.blocked FROM job_engine._jobs x
         WHERE x.id IN (SELECT t.id FROM t)
           AND x.state IN ('created', 'retrying')),
    l AS (
        SELECT x.id FROM job_engine._jobs x
         WHERE x.id IN (SELECT w.id FROM w WHERE w.blocked IS NOT NULL)
           AND x.state IN ('created', 'retrying')
           FOR NO KEY UPDATE SKIP LOCKED),
    u AS (
        UPDATE job_engine._jobs x SET blocked = NULL
         WHERE x.id IN (SELECT l.id FROM l)),
    r AS (
        INSERT INTO job_engine._recheck (job_id)
        SELECT w.id FROM w
         WHERE w.blocked IS NOT NULL
           AND w.id NOT IN (SELECT l.id FROM l))
    SELECT pg_catalog.count(*)::integer INTO n FROM w;
    IF n OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine._wake_on_commit(n);
    END IF;
    RETURN n;
END
$$;

-- Aborts the waiting dependants of the jobs `ended`, which failed or were
-- aborted: they can never run.  Each names one prerequisite that ended.  A
-- row another transaction holds is waited for at most a second (the engine's
-- own transactions hold such rows for moments); if it stays held (by an
-- abort() left open, say), the job is noted in _recheck instead, and aborted
-- when it is decided again.  Returns the jobs aborted.
CREATE FUNCTION job_engine._abort_dependants(ended bigint[])
RETURNS job_engine._jobs[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- One plan per session, made of index probes, whatever the estimates.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    ids bigint[];
    reasons text[];
    aborted job_engine._jobs[] := '{}';
    more job_engine._jobs[];
    busy bigint[];
    waited boolean := false;
    prior_timeout text := pg_catalog.current_setting('lock_timeout');
BEGIN
    SELECT pg_catalog.array_agg(d.job_id ORDER BY d.job_id),
           pg_catalog.array_agg(pg_catalog.format('dependency %s %s', d.depends_on, d.state) ORDER BY d.job_id)
      INTO ids, reasons
      FROM (SELECT DISTINCT ON (e.job_id) e.job_id, e.depends_on, p.state
              FROM job_engine._dependencies e
              JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) e.depends_on
             WHERE e.depends_on OPERATOR(pg_catalog.=) ANY (ended)
             ORDER BY e.job_id, e.depends_on) d
      JOIN job_engine._jobs x ON x.id OPERATOR(pg_catalog.=) d.job_id
     WHERE x.state IN ('created', 'retrying');
    IF ids IS NULL THEN
        RETURN aborted;
    END IF;
    LOOP
        WITH v AS (
            SELECT * FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(reasons)) AS v(id, reason)),
        l AS (
            SELECT x.id FROM job_engine._jobs x
             WHERE x.id OPERATOR(pg_catalog.=) ANY (ids)
               AND x.state IN ('created', 'retrying')
               FOR NO KEY UPDATE SKIP LOCKED),
        u AS (
            UPDATE job_engine._jobs x SET state = 'aborted', abort_reason = v.reason
              FROM v
             WHERE x.id OPERATOR(pg_catalog.=) v.id
               AND x.id IN (SELECT l.id FROM l)
            RETURNING x)
        SELECT pg_catalog.array_agg(u.x ORDER BY (u.x).id) INTO more FROM u;
        aborted := aborted OPERATOR(pg_catalog.||) COALESCE(more, '{}');
        SELECT pg_catalog.array_agg(x.id) INTO busy FROM job_engine._jobs x
         WHERE x.id OPERATOR(pg_catalog.=) ANY (ids) AND x.state IN ('created', 'retrying');
        EXIT WHEN busy IS NULL OR waited;
        waited := true;
        -- The skipped rows, waited for a bounded time; then locked by this
        -- transaction, they are aborted by the statement above.
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', '1s', true);
            PERFORM 1 FROM job_engine._jobs x
             WHERE x.id OPERATOR(pg_catalog.=) ANY (busy) AND x.state IN ('created', 'retrying')
               FOR NO KEY UPDATE;
            PERFORM pg_catalog.set_config('lock_timeout', prior_timeout, true);
        EXCEPTION WHEN lock_not_available THEN
            INSERT INTO job_engine._recheck (job_id) SELECT pg_catalog.unnest(busy);
            PERFORM job_engine._wake_on_commit(1);
            EXIT;
        END;
    END LOOP;
    RETURN aborted;
END
$$;

-- What follows the end of the jobs `ended` (already 'failed' or 'aborted',
-- and notified), in the transaction that recorded it: the compensation jobs
-- of their handlers, the release of the next job with their ordering keys,
-- and the abort of the jobs that depend on them, which can never run now,
-- with the same consequences for each of those.  One level of dependants
-- at a time, each by a few statements, so that a chain of any length costs
-- neither recursion nor more than its own size.
CREATE FUNCTION job_engine._after_end(ended bigint[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- One plan per session (planning these statements costs more than running
-- them), made of index probes: a handful of rows drive each, whatever the
-- estimates.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    level bigint[] := ended;
    keyed boolean;
    c record;
    aborted job_engine._jobs[];
BEGIN
    keyed := EXISTS (SELECT 1 FROM job_engine._jobs j
                      WHERE j.id OPERATOR(pg_catalog.=) ANY (level) AND j.ordering_key IS NOT NULL);
    WHILE pg_catalog.cardinality(level) OPERATOR(pg_catalog.>) 0 LOOP
        -- Compensation: never for a compensation job itself, so a failing
        -- compensation cannot start an endless chain.
        FOR c IN SELECT cw AS h, j
                   FROM job_engine._jobs j
                   JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) j.handler
                   JOIN job_engine.handlers cw ON cw.name OPERATOR(pg_catalog.=) h.compensate_with
                  WHERE j.id OPERATOR(pg_catalog.=) ANY (level)
                    AND j.compensation_of IS NULL
                  ORDER BY j.id
        LOOP
            PERFORM job_engine._create_job(c.h, (c.j).owner,
                ARRAY[pg_catalog.jsonb_build_object(
                    'job_id', (c.j).id, 'handler', (c.j).handler, 'args', (c.j).args,
                    'state', (c.j).state, 'error', (c.j).last_error, 'reason', (c.j).abort_reason)],
                priority => (c.j).priority, run_at => pg_catalog.clock_timestamp(),
                correlation_id => (c.j).correlation_id, parent_job_id => (c.j).id,
                compensation_of => (c.j).id);
        END LOOP;

        IF keyed THEN
            PERFORM job_engine._unblock(level);
        END IF;

        aborted := job_engine._abort_dependants(level);
        PERFORM job_engine._notify(a) FROM pg_catalog.unnest(aborted) AS a;
        SELECT COALESCE(pg_catalog.array_agg((a).id), '{}'), COALESCE(pg_catalog.bool_or((a).ordering_key IS NOT NULL), false)
          INTO level, keyed
          FROM pg_catalog.unnest(aborted) AS a;
    END LOOP;
END
$$;

-- Consequences of a transition, in the transaction that records it: the
-- notification, a wake-up when a job left a queue with a concurrency limit
-- (a place is free), and for a job that ended failed or aborted what
-- _after_end does.  Called for 'retrying', 'failed' and 'aborted' only: a
-- success is recorded, notified and followed up in C (src/outcome.c).
CREATE FUNCTION job_engine._after_transition(j job_engine._jobs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._notify(j);
    IF EXISTS (SELECT 1 FROM job_engine.queues q
                WHERE q.name OPERATOR(pg_catalog.=) j.queue AND q.concurrency IS NOT NULL) THEN
        PERFORM job_engine._wake_on_commit(1);
    END IF;
    IF j.state IN ('failed', 'aborted') THEN
        PERFORM job_engine._after_end(ARRAY[j.id]);
    END IF;
END
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
-- A crash (no SQLSTATE) always may.  With retry_on NULL every error is
-- retried except the permanent classes 22 (data exception), 42 (syntax
-- error or access rule violation) and 0A (feature not supported); otherwise
-- only the listed SQLSTATEs and classes are.  A cancel (57014), such as a
-- handler's timeout, counts like any other error; the cancel an abort sends
-- never gets here: abort() has already ended the job, so _record_failure's
-- fence records nothing.
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
               -- No handler row (unregistered, or not restored yet while
               -- pg_restore loads the tables one by one): retry at once;
               -- the claim then runs it, or fails it saying so.
               run_at = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                        COALESCE(job_engine._backoff(j.attempts, h.backoff_base, h.backoff_max),
                                 '0'::interval)
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

-------------------------------------------------------------------------------
-- Crash recovery
--
-- Piece src/sql/74_recovery.sql.  C twin: src/recovery.c, which calls these
-- functions.
-------------------------------------------------------------------------------

-- Records attempt `attempt` of job `job_id` with its outcome and applies the
-- retry policy (_record_failure), for recovery, which must never be wedged
-- by one job: if recording fails, the job ends failed, saying why.  The
-- caller holds the job's row.
CREATE FUNCTION job_engine._record_for_recovery(job_id bigint, attempt integer,
        outcome job_engine.attempt_outcome, sqlstate text, message text,
        detail text, hint text, context text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine._record_failure(job_id, attempt, outcome, sqlstate, message, detail, hint, context);
EXCEPTION WHEN OTHERS THEN
    UPDATE job_engine._attempts a
       SET outcome = _record_for_recovery.outcome, finished_at = pg_catalog.clock_timestamp(),
           sqlstate = _record_for_recovery.sqlstate, message = _record_for_recovery.message
     WHERE a.job_id OPERATOR(pg_catalog.=) _record_for_recovery.job_id
       AND a.attempt OPERATOR(pg_catalog.=) _record_for_recovery.attempt
       AND a.outcome OPERATOR(pg_catalog.=) 'running';
    UPDATE job_engine._jobs x
       SET state = 'failed', worker_pid = NULL,
           last_error = pg_catalog.format('recovery could not apply the retry policy: %s (SQLSTATE %s)',
                                          SQLERRM, SQLSTATE)
     WHERE x.id OPERATOR(pg_catalog.=) _record_for_recovery.job_id
       AND x.state OPERATOR(pg_catalog.=) 'running'
       AND x.attempts OPERATOR(pg_catalog.=) _record_for_recovery.attempt;
END
$$;

-- Crash recovery: records the attempts of running jobs whose executor died
-- as crashed and applies the retry policy.  `dead_pids` lists the pids of
-- executors that exited; NULL means every running job of this database
-- (the supervisor's start, when no executor of ours can be alive).  A job
-- whose row another transaction holds (an abort() left open) is not waited
-- for: its executor is gone, so the periodic pass (_recover_orphans) finds
-- it later if it is still running then.
CREATE FUNCTION job_engine._recover_crashed(dead_pids integer[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
    n integer := 0;
BEGIN
    -- A running job whose handler row is missing is left for a later round:
    -- unregister_handler refuses while jobs of the handler are unfinished,
    -- so that happens only while pg_restore loads the tables one by one
    -- (_jobs before handlers), and the retry policy needs the handler.
    FOR j IN SELECT id, attempts, worker_pid FROM job_engine._jobs r
              WHERE state OPERATOR(pg_catalog.=) 'running'
                AND (dead_pids IS NULL OR worker_pid OPERATOR(pg_catalog.=) ANY (dead_pids))
                AND EXISTS (SELECT FROM job_engine.handlers h
                             WHERE h.name OPERATOR(pg_catalog.=) r.handler)
              ORDER BY id
              FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM job_engine._record_for_recovery(j.id, j.attempts, 'crashed', NULL,
            pg_catalog.format('executor process %s exited while the attempt was running', j.worker_pid),
            NULL, 'The attempt''s work was rolled back; the retry policy decides what happens next.', NULL);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Failures the executors could not record (src/outcome.c): each is recorded
-- once its job's row is free, fenced by attempt like any record (a job
-- aborted meanwhile records nothing).  Returns how many were recorded.
CREATE FUNCTION job_engine._record_pending_outcomes()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    n integer := 0;
BEGIN
    FOR p IN SELECT o.* FROM job_engine._pending_outcomes o ORDER BY o.noted_at, o.job_id LOOP
        PERFORM 1 FROM job_engine._jobs j
         WHERE j.id OPERATOR(pg_catalog.=) p.job_id
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND
            AND EXISTS (SELECT 1 FROM job_engine._jobs j WHERE j.id OPERATOR(pg_catalog.=) p.job_id);
        PERFORM job_engine._record_for_recovery(p.job_id, p.attempt, 'failed', p.sqlstate,
                                                p.message, p.detail, p.hint, p.context);
        DELETE FROM job_engine._pending_outcomes o
         WHERE o.job_id OPERATOR(pg_catalog.=) p.job_id
           AND o.attempt OPERATOR(pg_catalog.=) p.attempt;
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;

-- Decides again (_hold_job) for up to `batch` jobs noted in _recheck:
-- jobs held back at submit (whose blocker may have ended before the submit
-- committed, unseen by the transition that ended it), and jobs a transition
-- could not write because another transaction held their row.  Each is held
-- back again, made a candidate, or aborted; a job whose row (or whose
-- blocker's row) is still busy stays noted, and goes to the back: the
-- oldest notes are taken first, and a note another pass has locked is
-- skipped, so that rows an open transaction holds never keep the others
-- from being decided however many there are.  Wakes an executor per job made a candidate.  Returns how
-- many were decided (`batch`: perhaps more are noted).  Run by executors
-- about to sleep (src/claim.c) and by recovery's periodic pass, in batches
-- so that the rows it locks are held for moments only.
CREATE FUNCTION job_engine._release_rechecks(batch integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    noted record;
    why "char";
    decided integer := 0;
    released integer := 0;
BEGIN
    FOR noted IN SELECT r.ctid AS tid, r.job_id FROM job_engine._recheck r
                  ORDER BY r.noted_at, r.job_id LIMIT batch
                    FOR UPDATE SKIP LOCKED LOOP
        why := job_engine._hold_job(noted.job_id);
        IF why IN ('b', 'w') THEN
            UPDATE job_engine._recheck r SET noted_at = pg_catalog.clock_timestamp()
             WHERE r.ctid OPERATOR(pg_catalog.=) noted.tid;
            CONTINUE;
        END IF;
        -- The job's other notes too, but none another pass has locked.
        DELETE FROM job_engine._recheck r
         WHERE r.ctid IN (SELECT o.ctid FROM job_engine._recheck o
                           WHERE o.job_id OPERATOR(pg_catalog.=) noted.job_id
                             FOR UPDATE SKIP LOCKED);
        decided := decided OPERATOR(pg_catalog.+) 1;
        IF why OPERATOR(pg_catalog.=) 'r' THEN
            released := released OPERATOR(pg_catalog.+) 1;
        END IF;
    END LOOP;
    IF released OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine._wake_on_commit(released);
    END IF;
    RETURN decided;
END
$$;

-- Running jobs whose worker process is gone (no process of that pid is
-- connected to this database) although no executor of this database was
-- seen to exit: claimed by a session that then disconnected, or restored
-- from a dump taken while they ran.  Their attempts are recorded as crashed
-- like any other (the supervisor, every few seconds).  The same pass
-- records the failures the executors had to leave pending and releases the
-- jobs noted in _recheck.  Returns how many orphans were recovered.
CREATE FUNCTION job_engine._recover_orphans()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone integer[];
BEGIN
    PERFORM job_engine._record_pending_outcomes();
    PERFORM job_engine._release_rechecks(256);
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
-- Events
--
-- Piece src/sql/80_events.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.
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
    sub record;
BEGIN
    PERFORM job_engine._require_name(event_type, 'event_type');
    PERFORM job_engine._require(payload, 'payload', has_default => true);
    IF pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'event type "%" must not contain "*"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"*" is only for subscription patterns.';
    END IF;
    INSERT INTO job_engine._events (event_type, payload, correlation_id, publisher, published_by_job)
    VALUES (event_type, payload,
            COALESCE(correlation_id,
                     (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid,
                     pg_catalog.gen_random_uuid()),
            caller, parent)
    RETURNING * INTO ev;

    -- A job per matching subscription, owned by the subscriber.  Handlers
    -- are key-share locked like a submit's (_require_handler), so that an
    -- unregister_handler racing this waits and then sees the jobs.
    FOR sub IN SELECT h, s.owner
                 FROM job_engine.subscriptions s
                 JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) s.handler
                WHERE job_engine._event_matches(s.event_type, ev.event_type)
                ORDER BY s.id
                  FOR KEY SHARE OF h
    LOOP
        PERFORM job_engine._create_job(sub.h, sub.owner, ARRAY[ev.payload],
            correlation_id => ev.correlation_id, event_id => ev.id);
    END LOOP;
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
-- Queues
--
-- Piece src/sql/82_queues.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.
-------------------------------------------------------------------------------

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
--
-- Piece src/sql/84_schedules.sql.  C twin: none.  Its public functions are
-- thin C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

-- The time zone pg_cron reads cron expressions in: its setting cron.timezone
-- where the pg_cron loaded defines it (1.5 and later), else GMT, which pg_cron
-- 1.4 and earlier always use.  pg_settings lists only settings that a loaded
-- module defined, not a cron.timezone placeholder that is merely SET.
CREATE FUNCTION job_engine._cron_time_zone()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE((SELECT s.setting FROM pg_catalog.pg_settings s
                      WHERE s.name OPERATOR(pg_catalog.=) 'cron.timezone'), 'GMT')
$$;

-- Whether the time zones a and b read clock times alike: the same offset
-- from UTC now and in mid-January and mid-July, so that daylight saving time
-- in either counts.
CREATE FUNCTION job_engine._same_time_zone(a text, b text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.bool_and(pg_catalog.timezone(a, t) OPERATOR(pg_catalog.=) pg_catalog.timezone(b, t))
      FROM (VALUES (pg_catalog.now()),
                   (pg_catalog.date_trunc('year', pg_catalog.now()) OPERATOR(pg_catalog.+) interval '14 days'),
                   (pg_catalog.date_trunc('year', pg_catalog.now()) OPERATOR(pg_catalog.+) interval '195 days')) v(t)
$$;

-- What schedule() says in a NOTICE when pg_cron reads the clock times of
-- `cron` in another time zone than the session's TimeZone: a schedule
-- written as local time would run at another hour.  All NULL when there is
-- nothing to say ('N seconds' intervals of pg_cron 1.5 name no clock time).
CREATE FUNCTION job_engine._cron_time_zone_notice(cron text,
        OUT message text, OUT detail text, OUT hint text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_zone text := job_engine._cron_time_zone();
    session_zone text := pg_catalog.current_setting('TimeZone');
    ahead interval;
BEGIN
    IF cron OPERATOR(pg_catalog.~*) '^\s*\d+\s+seconds?\s*$'
       OR job_engine._same_time_zone(cron_zone, session_zone) THEN
        RETURN;
    END IF;
    message := pg_catalog.format('pg_cron reads the cron expression "%s" in time zone %s, not in %s',
                                 cron, cron_zone, session_zone);
    ahead := pg_catalog.timezone(session_zone, pg_catalog.now())
             OPERATOR(pg_catalog.-) pg_catalog.timezone(cron_zone, pg_catalog.now());
    detail := CASE
        WHEN ahead OPERATOR(pg_catalog.>) interval '0' THEN
            pg_catalog.format('%s is %s ahead of %s at present.', session_zone, ahead, cron_zone)
        WHEN ahead OPERATOR(pg_catalog.<) interval '0' THEN
            pg_catalog.format('%s is %s behind %s at present.', session_zone,
                              OPERATOR(pg_catalog.-) ahead, cron_zone)
        ELSE
            pg_catalog.format('%s and %s differ while daylight saving time applies in one of them.',
                              session_zone, cron_zone)
        END;
    hint := CASE
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_settings s
                      WHERE s.name OPERATOR(pg_catalog.=) 'cron.timezone') THEN
            pg_catalog.format('Write the times in %s, or set cron.timezone (a restart applies it).', cron_zone)
        ELSE
            pg_catalog.format('Write the times in %s: this pg_cron has no cron.timezone setting (pg_cron 1.5 and later have).', cron_zone)
        END;
END
$$;

-- The hint for a cron expression that pg_cron (of extension version
-- `pg_cron_version`, e.g. '1.4-1') refused.  Intervals of 'N seconds' are
-- pg_cron 1.5's: older versions refuse them as invalid schedules.
CREATE FUNCTION job_engine._invalid_cron_hint(cron text, pg_cron_version text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN cron OPERATOR(pg_catalog.!~*) '^\s*\d+\s+seconds?\s*$' THEN
            'Use five cron fields, e.g. ''*/5 * * * *'' or ''0 3 * * *''.'
        WHEN pg_cron_version OPERATOR(pg_catalog.~) '^(0|1\.[0-4])(\D|$)' THEN
            pg_catalog.format('Intervals of seconds need pg_cron 1.5 or later; this database has pg_cron %s. Use five cron fields instead, e.g. ''* * * * *'' for every minute.',
                              pg_cron_version)
        ELSE
            'pg_cron takes intervals of 1 to 59 seconds; use five cron fields for longer ones, e.g. ''*/5 * * * *''.'
        END
$$;

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
    zone_notice record;
BEGIN
    PERFORM job_engine._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine._require_name(cron, 'cron',
        blank_hint => 'Give a cron expression, e.g. ''0 3 * * *''.');
    PERFORM job_engine._require(args, 'args', has_default => true);
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
                      HINT = job_engine._invalid_cron_hint(cron,
                                 (SELECT e.extversion FROM pg_catalog.pg_extension e
                                   WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron'));
        END IF;
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%can not log in%' THEN
            RAISE EXCEPTION 'role % cannot own a schedule: it cannot log in', caller_name
                USING ERRCODE = 'invalid_authorization_specification',
                      HINT = 'pg_cron runs each schedule as its owner; schedule as a role with LOGIN.';
        END IF;
        RAISE;
    END;
    SELECT * INTO zone_notice FROM job_engine._cron_time_zone_notice(cron);
    IF zone_notice.message IS NOT NULL THEN
        RAISE NOTICE '%', zone_notice.message
            USING DETAIL = zone_notice.detail, HINT = zone_notice.hint;
    END IF;
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
--
-- Piece src/sql/86_retention.sql.  C twin: src/supervisor.c, which calls
-- _purge_expired() per job_engine.retention; purge() enters through the gate
-- (src/gate.c).
-------------------------------------------------------------------------------

-- Deletes the terminal jobs that finished before `cutoff` (of the roles
-- `caller` is a member of; NULL: all), then every queue that nothing
-- configured and that holds no job, whatever created it (emptied by this
-- purge or never given a job): a queue not paused, without a concurrency
-- limit or group commit and named by no handler is gone until it is used
-- again.  The queues are few (one per name in use), so all are looked at.  Rows that
-- another transaction holds (another purge left open) are skipped, never
-- waited for: retention must not stall behind a user's transaction.
CREATE FUNCTION job_engine._purge_before(cutoff timestamptz, caller oid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- Attempts go with their jobs (trigger jobs_delete_attempts), and so do
    -- their dependency edges (ON DELETE CASCADE).
    WITH d AS (
        DELETE FROM job_engine._jobs j
         WHERE j.id IN (SELECT x.id FROM job_engine._jobs x
                         WHERE x.state IN ('succeeded', 'failed', 'aborted')
                           AND x.finished_at OPERATOR(pg_catalog.<) cutoff
                           AND (caller IS NULL OR pg_catalog.pg_has_role(caller, x.owner, 'MEMBER'))
                           FOR UPDATE SKIP LOCKED)
        RETURNING j.queue)
    SELECT pg_catalog.count(*) INTO n FROM d;

    -- Each kind of job is found by its queue through an index: candidates
    -- (jobs_claim_idx), held or finished ones (jobs_queue_idx), running ones
    -- (jobs_running_idx).
    DELETE FROM job_engine.queues q
     WHERE q.name IN (SELECT o.name FROM job_engine.queues o
                       WHERE NOT o.paused AND o.concurrency IS NULL
                         AND o.group_commit OPERATOR(pg_catalog.=) 1
                         FOR UPDATE SKIP LOCKED)
       AND NOT EXISTS (SELECT 1 FROM job_engine.handlers h
                        WHERE h.queue OPERATOR(pg_catalog.=) q.name)
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.queue OPERATOR(pg_catalog.=) q.name
                          AND j.state IN ('created', 'retrying') AND j.blocked IS NULL)
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.queue OPERATOR(pg_catalog.=) q.name
                          AND (j.finished_at IS NOT NULL OR j.blocked IS NOT NULL))
       AND NOT EXISTS (SELECT 1 FROM job_engine._jobs j
                        WHERE j.state OPERATOR(pg_catalog.=) 'running' AND j.worker_pid IS NOT NULL
                          AND j.queue OPERATOR(pg_catalog.=) q.name);
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
--
-- Piece src/sql/90_views.sql.  C twin: none; the workers view reads _workers()
-- of src/shmem.c.
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

-------------------------------------------------------------------------------
-- Observability: trace() and metrics()
--
-- Piece src/sql/92_observability.sql.  C twin: none.  Its public functions are
-- thin C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

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

-- The nodes of trace(): the events and jobs sharing a correlation id that
-- `caller` may see, each with the node that caused it (event -> job, parent
-- -> child, compensation, resubmission, job -> published event) and its key
-- among its siblings (_trace_key).
CREATE FUNCTION job_engine._trace_nodes(caller oid, correlation_id uuid)
RETURNS TABLE (kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text, sort_key text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.*, job_engine._trace_key(n.created_at, n.kind, n.id)
      FROM (
        SELECT 'event'::text AS kind, e.id, e.event_type AS name, NULL::text AS state,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'published' ELSE 'root' END AS cause,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'job' END AS parent_kind,
               e.published_by_job AS parent_id,
               e.published_at AS created_at, NULL::timestamptz AS finished_at,
               NULL::text AS detail
          FROM job_engine._events e
         WHERE e.correlation_id OPERATOR(pg_catalog.=) _trace_nodes.correlation_id
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
         WHERE j.correlation_id OPERATOR(pg_catalog.=) _trace_nodes.correlation_id
           AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER')
      ) n
$$;

-- What one request set in motion (_trace_nodes), as a tree, depth-first,
-- siblings in key order; a node whose cause is invisible (or purged) is a
-- root.  The walk is iterative, over arrays: first child and next sibling
-- of each node, and its parent to climb back, so a tree of any depth costs
-- time and memory in proportion to its size.
CREATE FUNCTION job_engine._trace(caller oid, correlation_id uuid)
RETURNS TABLE (depth integer, kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys text[];            -- node i: kind:id, nodes in key order
    parent_keys text[];
    pos jsonb;              -- kind:id -> i
    parent integer[];
    first_child integer[];
    last_child integer[];
    next_sibling integer[];
    roots integer[] := '{}';
    walk integer[] := '{}'; -- the nodes, depth-first
    depths integer[] := '{}';
    n integer;
    p integer;
    cur integer;
    d integer;
    r integer;
BEGIN
    SELECT pg_catalog.array_agg(t.kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.id ORDER BY t.sort_key),
           pg_catalog.array_agg(t.parent_kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.parent_id
                                ORDER BY t.sort_key)
      INTO keys, parent_keys
      FROM job_engine._trace_nodes(caller, correlation_id) t;
    n := COALESCE(pg_catalog.cardinality(keys), 0);
    IF n OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;
    SELECT pg_catalog.jsonb_object_agg(k, i) INTO pos
      FROM pg_catalog.unnest(keys) WITH ORDINALITY AS u(k, i);
    parent := pg_catalog.array_fill(NULL::integer, ARRAY[n]);
    first_child := parent;
    last_child := parent;
    next_sibling := parent;
    FOR i IN 1..n LOOP
        p := (pos OPERATOR(pg_catalog.->>) parent_keys[i])::integer;
        IF p IS NULL THEN
            roots := roots OPERATOR(pg_catalog.||) i;
        ELSE
            parent[i] := p;
            IF first_child[p] IS NULL THEN
                first_child[p] := i;
            ELSE
                next_sibling[last_child[p]] := i;
            END IF;
            last_child[p] := i;
        END IF;
    END LOOP;

    FOREACH r IN ARRAY roots LOOP
        cur := r;
        d := 0;
        LOOP
            walk := walk OPERATOR(pg_catalog.||) cur;
            depths := depths OPERATOR(pg_catalog.||) d;
            IF first_child[cur] IS NOT NULL THEN
                cur := first_child[cur];
                d := d OPERATOR(pg_catalog.+) 1;
                CONTINUE;
            END IF;
            WHILE cur OPERATOR(pg_catalog.<>) r AND next_sibling[cur] IS NULL LOOP
                cur := parent[cur];
                d := d OPERATOR(pg_catalog.-) 1;
            END LOOP;
            EXIT WHEN cur OPERATOR(pg_catalog.=) r;
            cur := next_sibling[cur];
        END LOOP;
    END LOOP;

    RETURN QUERY
    SELECT w.depth, t.kind, t.id, t.name, t.state, t.cause, t.parent_kind, t.parent_id,
           t.created_at, t.finished_at, t.detail
      FROM ROWS FROM (pg_catalog.unnest(walk), pg_catalog.unnest(depths)) WITH ORDINALITY AS w(node, depth, ord)
      JOIN job_engine._trace_nodes(caller, correlation_id) t
        ON t.kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.id
           OPERATOR(pg_catalog.=) keys[w.node]
     ORDER BY w.ord;
END
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

-------------------------------------------------------------------------------
-- Served databases
--
-- Piece src/sql/96_databases.sql.  C twin: src/settings.c, which reads
-- job_engine.databases for the launcher.
-------------------------------------------------------------------------------

-- Whether job_engine.databases lists the database `dbname`, compared as
-- written (case-sensitively).
CREATE FUNCTION job_engine._serves_database(dbname name)
RETURNS boolean
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_serves_database';

-- Jobs of a database that job_engine.databases does not list are stored but
-- never run: say so when the extension is created there, not later.
DO $$
BEGIN
    IF NOT job_engine._serves_database(pg_catalog.current_database()) THEN
        RAISE WARNING 'job_engine does not serve database "%"', pg_catalog.current_database()
            USING DETAIL = pg_catalog.format('job_engine.databases is %L: jobs submitted here are stored but do not run.',
                                             pg_catalog.current_setting('job_engine.databases')),
                  HINT = 'Add the database''s name, as pg_database spells it, to job_engine.databases and restart the server.';
    END IF;
END
$$;

-------------------------------------------------------------------------------
-- Privileges
--
-- Piece src/sql/99_privileges.sql.  C twin: none.
-------------------------------------------------------------------------------

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

-- Administration, and receiving events (a subscription to '*' receives the
-- payload of every role's events), are granted explicitly, never to PUBLIC.
REVOKE ALL ON FUNCTION job_engine.register_handler(text, regprocedure, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.register_c_handler(text, text, text, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.unregister_handler(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.pause_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.resume_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.configure_queue(text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.subscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.unsubscribe(bigint) FROM PUBLIC;

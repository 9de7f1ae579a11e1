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
--
-- Roles (owner, publisher) are regrole: stored and compared as the role's
-- OID (binary-coercible to oid, so oid's operators and indexes serve), but
-- written by name, so that pg_dump writes names and a restore into another
-- cluster where the roles exist finds them again.  pg_upgrade, which keeps
-- role OIDs, accepts regrole, regclass and regtype columns, and refuses
-- every other reg* type.
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
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- How long finished jobs of the queue are kept (retention: succeeded
    -- ones, and the others unless failed_retention is set; failed_retention:
    -- failed and aborted ones).  NULL: job_engine.retention.
    retention        interval
                     CONSTRAINT queue_retention_positive CHECK (retention OPERATOR(pg_catalog.>) '0'::interval),
    failed_retention interval
                     CONSTRAINT queue_failed_retention_positive
                     CHECK (failed_retention OPERATOR(pg_catalog.>) '0'::interval),
    -- When configure_queue() last set the queue's options.  NULL: never; the
    -- queue was created by a submit or a handler's registration, and purge
    -- and retention remove it once it holds no job (86_retention.sql).  A
    -- configured queue stays even with every option at its default: its
    -- administrator named it, and a pause_queue() right after must find it.
    configured_at    timestamptz
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
    owner           regrole NOT NULL,
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
    publisher       regrole NOT NULL,
    published_by_job bigint,
    published_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Purge and retention look for old events (src/sql/86_retention.sql).
CREATE INDEX events_published_idx ON job_engine._events (published_at);

CREATE TABLE job_engine.subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type  text NOT NULL
                CONSTRAINT subscription_type_not_empty CHECK (event_type OPERATOR(pg_catalog.<>) ''),
    handler     text NOT NULL REFERENCES job_engine.handlers (name),
    owner       regrole NOT NULL,
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
    owner            regrole NOT NULL,
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
    -- earlier job with its ordering key (src/claim.c), 't' its run_at has
    -- not come (src/deferred.c).  NULL: a candidate.  Claims set 'd' and
    -- 'k', and whatever may unblock the job clears them; the lifecycle
    -- guard sets and clears 't' (src/guard.c).
    blocked          "char"
                     CONSTRAINT job_blocked_reason CHECK (blocked IN ('d', 'k', 't')),
    -- The name of the schedule whose firing submitted the job (its owner's:
    -- 84_schedules.sql); NULL for any other submit.
    schedule         text,
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
-- Jobs not yet due (deferred: src/deferred.c), by run_at: released into
-- jobs_claim_idx when due, earliest first; the next one is when an idle
-- executor wakes up.
CREATE INDEX jobs_deferred_idx ON job_engine._jobs (run_at)
    WHERE blocked = 't' AND state IN ('created', 'retrying');
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
-- Waiting jobs held back (by a dependency, an ordering key or time), by queue: with
-- jobs_claim_idx and jobs_running_idx, every unfinished job is found through
-- an index that holds only unfinished jobs, so that the metrics' gauges
-- cost nothing per retained job (src/sql/92_observability.sql).  An entry
-- is made only when a claim holds a job back.
CREATE INDEX jobs_held_idx ON job_engine._jobs (queue)
    WHERE blocked IS NOT NULL AND state IN ('created', 'retrying');
CREATE INDEX jobs_correlation_idx ON job_engine._jobs (correlation_id);
CREATE INDEX jobs_parent_idx ON job_engine._jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_finished_idx ON job_engine._jobs (finished_at) WHERE finished_at IS NOT NULL;
-- History through the jobs view (src/sql/90_views.sql): jobs by final
-- state, newest first, entered once per job as it ends; and the time jobs
-- were created, by block ranges (BRIN): rows are inserted in created_at
-- order, and an entry costs the claim and the outcome next to nothing.
CREATE INDEX jobs_history_state_idx ON job_engine._jobs (state, id)
    WHERE state IN ('succeeded', 'failed', 'aborted');
CREATE INDEX jobs_history_owner_idx ON job_engine._jobs (owner, state, id)
    WHERE state IN ('succeeded', 'failed', 'aborted');
CREATE INDEX jobs_created_idx ON job_engine._jobs USING brin (created_at);
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
-- Vacuumed as often as _jobs, whose rows come and go with its rows: so
-- that autovacuum also visits it often enough to give back the tail that
-- an old snapshot made grow (src/vacuum.c).
) WITH (fillfactor = 80,
       autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
       autovacuum_vacuum_cost_delay = 0);
-- History through the attempts view (src/sql/90_views.sql): the time
-- attempts started, by block ranges (BRIN: rows are inserted in started_at
-- order, started_at is never updated, and an entry costs the claim next to
-- nothing); and the attempts that did not succeed, by start time.  That
-- one names outcome, so recording an outcome is no longer a HOT update: it
-- adds an entry to the primary key (and one here for a failure), about
-- 1.5 us an attempt, the price of finding failures and crashes without
-- reading every retained attempt (docs/decisions.md).
CREATE INDEX attempts_started_idx ON job_engine._attempts USING brin (started_at);
CREATE INDEX attempts_unsuccessful_idx ON job_engine._attempts (started_at)
    WHERE outcome IN ('failed', 'aborted', 'crashed');

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

-- Update of job_engine from 1.0 to 1.1, run by
-- ALTER EXTENSION job_engine UPDATE.
--
-- The Makefile builds job_engine--1.0--1.1.sql from this file: the line
-- "-- @definitions" below becomes every function and view of the pieces
-- of src/sql/ (as CREATE OR REPLACE) and then the privileges piece
-- (scripts/build_update_script.pl).  What that does not carry is written
-- here, by hand: types, tables, columns, indexes, triggers, sequences,
-- pg_extension_config_dump() calls, data to migrate, and the DROP of
-- functions and views that were removed, renamed, or changed in a way that
-- CREATE OR REPLACE refuses (another result type or argument names, view
-- columns removed or reordered).  Statements that need the new functions
-- (a trigger on a new trigger function) go after the marker.  See
-- docs/upgrading.md.

\echo Use "ALTER EXTENSION job_engine UPDATE TO '1.1'" to load this file. \quit

-- Owners are regrole, so that pg_dump writes their names (10_tables.sql).
-- The views read the columns: they go first, and come back with the
-- definitions below.  oid to regrole rewrites neither tables nor indexes.
DROP VIEW job_engine.jobs, job_engine.attempts, job_engine.events, job_engine.queue_stats;
ALTER TABLE job_engine._jobs ALTER COLUMN owner TYPE regrole;
ALTER TABLE job_engine._events ALTER COLUMN publisher TYPE regrole;
ALTER TABLE job_engine.handlers ALTER COLUMN owner TYPE regrole;
ALTER TABLE job_engine.subscriptions ALTER COLUMN owner TYPE regrole;

-- Retention per queue (src/sql/10_tables.sql, 86_retention.sql).
ALTER TABLE job_engine.queues
    ADD COLUMN retention interval
        CONSTRAINT queue_retention_positive CHECK (retention OPERATOR(pg_catalog.>) '0'::interval),
    ADD COLUMN failed_retention interval
        CONSTRAINT queue_failed_retention_positive
        CHECK (failed_retention OPERATOR(pg_catalog.>) '0'::interval),
    ADD COLUMN configured_at timestamptz;
-- A queue 1.0 kept for its settings, or paused, is a configured one
-- (86_retention.sql); 1.0 did not record when, so its creation stands in.
UPDATE job_engine.queues SET configured_at = created_at
 WHERE concurrency IS NOT NULL OR group_commit OPERATOR(pg_catalog.<>) 1 OR paused;
-- configure_queue and the purge take more arguments: the old signatures go.
DROP FUNCTION job_engine.configure_queue(text, integer, integer);
DROP FUNCTION job_engine._configure_queue(oid, text, integer, integer);
DROP FUNCTION job_engine._purge_before(timestamptz, oid);

-- Events purged by age; history through the views by index.
CREATE INDEX events_published_idx ON job_engine._events (published_at);
CREATE INDEX jobs_history_state_idx ON job_engine._jobs (state, id)
    WHERE state IN ('succeeded', 'failed', 'aborted');
CREATE INDEX jobs_history_owner_idx ON job_engine._jobs (owner, state, id)
    WHERE state IN ('succeeded', 'failed', 'aborted');
CREATE INDEX jobs_created_idx ON job_engine._jobs USING brin (created_at);
CREATE INDEX attempts_started_idx ON job_engine._attempts USING brin (started_at);
CREATE INDEX attempts_unsuccessful_idx ON job_engine._attempts (started_at)
    WHERE outcome IN ('failed', 'aborted', 'crashed');
-- metrics() counts held jobs by queue without scanning the others.
CREATE INDEX jobs_held_idx ON job_engine._jobs (queue)
    WHERE blocked IS NOT NULL AND state IN ('created', 'retrying');
-- Jobs not yet due are deferred, out of jobs_claim_idx, until they are
-- (src/deferred.c): blocked 't', found by jobs_deferred_idx, which takes
-- the place of jobs_due_idx.
ALTER TABLE job_engine._jobs DROP CONSTRAINT job_blocked_reason,
    ADD CONSTRAINT job_blocked_reason CHECK (blocked IN ('d', 'k', 't'));
DROP INDEX job_engine.jobs_due_idx;
CREATE INDEX jobs_deferred_idx ON job_engine._jobs (run_at)
    WHERE blocked = 't' AND state IN ('created', 'retrying');
UPDATE job_engine._jobs SET blocked = 't'
 WHERE state IN ('created', 'retrying') AND blocked IS NULL AND run_at > pg_catalog.now();

-- Attempts are vacuumed as often as jobs (src/vacuum.c).
ALTER TABLE job_engine._attempts
    SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
         autovacuum_vacuum_cost_delay = 0);

-- Jobs record the schedule that submitted them; schedule() takes the
-- database to run in (src/sql/84_schedules.sql).
ALTER TABLE job_engine._jobs ADD COLUMN schedule text;
DROP FUNCTION job_engine.schedule(text, text, text, jsonb);
DROP FUNCTION job_engine._schedule(oid, text, text, text, jsonb);

-- Internal functions move to their own schema (00_schema.sql), out of
-- the way of \df job_engine.*; the definitions below replace them there.
-- ALTER ... SET SCHEMA keeps their OIDs: triggers and grants follow them.
CREATE SCHEMA job_engine_internal;
COMMENT ON SCHEMA job_engine_internal IS
    'Internal functions of job_engine: called by its public functions and workers, not by applications.';
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'job_engine'::regnamespace
                AND p.proname OPERATOR(pg_catalog.~~) '\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET SCHEMA job_engine_internal', f);
    END LOOP;
END
$$;

-- @definitions

-- The lifecycle guard also notes the rows the claim marks and the running
-- counts in shared memory follow (src/guard.c, 20_guard.sql), under
-- session_replication_role = replica too; a TRUNCATE makes the running
-- counts untrusted (70_claim.sql).
ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard;
CREATE TRIGGER jobs_running_truncated
    AFTER TRUNCATE ON job_engine._jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION job_engine_internal._running_truncated();
ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated;

-- The jobs view reads _jobs as the caller, under row-level security
-- (src/sql/90_views.sql); the policy needs _member_roles() from above.
ALTER TABLE job_engine._jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_of_member_roles ON job_engine._jobs FOR SELECT TO PUBLIC
    USING (owner OPERATOR(pg_catalog.=) ANY (job_engine_internal._member_roles()));
CREATE POLICY jobs_of_database_owner ON job_engine._jobs FOR SELECT TO pg_database_owner
    USING (true);
GRANT SELECT (id, handler, queue, state, priority, attempts, max_attempts, args, result,
              created_at, run_at, started_at, finished_at, correlation_id, parent_job_id,
              event_id, resubmitted_from, owner, last_error, abort_reason, schedule)
    ON job_engine._jobs TO PUBLIC;

-- So do the attempts, events and queue_stats views, under the policies of
-- _attempts and _events (src/sql/90_views.sql).
ALTER TABLE job_engine._attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY attempts_of_visible_jobs ON job_engine._attempts FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM job_engine._jobs j
                    WHERE j.id OPERATOR(pg_catalog.=) _attempts.job_id OFFSET 0));
CREATE POLICY attempts_of_database_owner ON job_engine._attempts FOR SELECT TO pg_database_owner
    USING (true);
GRANT SELECT (job_id, attempt, outcome, started_at, finished_at, worker_pid,
              sqlstate, message, detail, hint, context)
    ON job_engine._attempts TO PUBLIC;
ALTER TABLE job_engine._events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_of_member_roles ON job_engine._events FOR SELECT TO PUBLIC
    USING (publisher OPERATOR(pg_catalog.=) ANY (job_engine_internal._member_roles()));
CREATE POLICY events_of_visible_jobs ON job_engine._events FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM job_engine._jobs j
                    WHERE j.event_id OPERATOR(pg_catalog.=) _events.id OFFSET 0));
CREATE POLICY events_of_database_owner ON job_engine._events FOR SELECT TO pg_database_owner
    USING (true);
GRANT SELECT (id, event_type, payload, correlation_id, published_at)
    ON job_engine._events TO PUBLIC;

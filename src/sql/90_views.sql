-------------------------------------------------------------------------------
-- Views (a non-superuser sees only rows of roles it belongs to)
--
-- Piece src/sql/90_views.sql.  C twin: none; the workers view reads _workers()
-- of src/shmem.c.
-------------------------------------------------------------------------------

-- The roles the current user is a member of (itself included), as
-- pg_has_role(role, 'MEMBER') decides it (src/visibility.c).  Without SET
-- search_path, like _jobs_guard(): C that runs no SQL and looks up no name,
-- called once per row by a scan the policy filters.
CREATE FUNCTION job_engine_internal._member_roles()
RETURNS oid[]
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'job_engine_member_roles';

-- The jobs view reads _jobs with the caller's rights (security_invoker):
-- row-level security on _jobs (below) shows a role the jobs of the roles it
-- belongs to.  Unlike a security-barrier view, whose rows come out of a
-- subquery that the planner keeps apart, the view is planned as a scan of
-- _jobs: a superuser's or BYPASSRLS role's query uses any index, and a
-- plain role's filters with leakproof operators (ids, times) and ORDER BY
-- id use the indexes too.  Non-leakproof filters (a user's function,
-- enum equality) run only after the policy: nothing of another role's row
-- reaches them (docs/decisions.md).
CREATE VIEW job_engine.jobs WITH (security_invoker) AS
SELECT j.id, j.handler, j.queue, j.state, j.priority, j.attempts, j.max_attempts,
       j.args, j.result, j.created_at, j.run_at, j.started_at, j.finished_at,
       j.finished_at OPERATOR(pg_catalog.-) j.started_at AS duration,
       j.correlation_id, j.parent_job_id, j.event_id, j.resubmitted_from,
       pg_catalog.pg_get_userbyid(j.owner)::name AS owner,
       j.last_error, j.abort_reason, j.schedule
  FROM job_engine._jobs j;

ALTER TABLE job_engine._jobs ENABLE ROW LEVEL SECURITY;
-- Reading only: nobody but the engine (the bootstrap superuser, which
-- bypasses the policy) writes _jobs, and no role has the privilege to.
-- As pg_has_role(owner, 'MEMBER'), but as a list of roles, so that the
-- policy itself is an index condition: a plain role's history is found
-- through jobs_history_owner_idx.
CREATE POLICY jobs_of_member_roles ON job_engine._jobs FOR SELECT TO PUBLIC
    USING (owner OPERATOR(pg_catalog.=) ANY (job_engine_internal._member_roles()));
-- The database's owner reads every job (99_privileges.sql grants it the
-- table) so that it can pg_dump the database.  A dump by a role that row
-- security applies to needs pg_dump --enable-row-security: without it,
-- pg_dump refuses rather than leave rows out.
CREATE POLICY jobs_of_database_owner ON job_engine._jobs FOR SELECT TO pg_database_owner
    USING (true);
-- The columns the view shows, and no more: idempotency and ordering keys,
-- dependencies and the engine's bookkeeping stay unreadable.
GRANT SELECT (id, handler, queue, state, priority, attempts, max_attempts, args, result,
              created_at, run_at, started_at, finished_at, correlation_id, parent_job_id,
              event_id, resubmitted_from, owner, last_error, abort_reason, schedule)
    ON job_engine._jobs TO PUBLIC;

-- The attempts of the jobs the caller sees, by the same design as the jobs
-- view: security_invoker, over row-level security on _attempts whose policy
-- is "the attempt's job is visible", asked of _jobs as the caller, so that
-- _jobs's own policies (above) decide it and nothing is written twice.  So
-- WHERE job_id = n (the primary key), time ranges (attempts_started_idx)
-- and failures (attempts_unsuccessful_idx) are index scans, and the
-- policy's probe of _jobs by id runs only for the attempts they find.
CREATE VIEW job_engine.attempts WITH (security_invoker) AS
SELECT a.job_id, a.attempt, a.outcome, a.started_at, a.finished_at,
       a.finished_at OPERATOR(pg_catalog.-) a.started_at AS duration,
       a.worker_pid, a.sqlstate, a.message, a.detail, a.hint, a.context
  FROM job_engine._attempts a;

ALTER TABLE job_engine._attempts ENABLE ROW LEVEL SECURITY;
-- OFFSET 0 keeps the EXISTS a probe of _jobs_pkey per attempt the scan
-- finds: without it the planner may hash the subquery instead, reading
-- every visible job for each query, however few attempts it asks for.
-- (Likewise events_of_visible_jobs, through jobs_event_idx.)
CREATE POLICY attempts_of_visible_jobs ON job_engine._attempts FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM job_engine._jobs j
                    WHERE j.id OPERATOR(pg_catalog.=) _attempts.job_id OFFSET 0));
-- For pg_dump by the database's owner (as jobs_of_database_owner): every
-- row, an attempt whose job is gone included.
CREATE POLICY attempts_of_database_owner ON job_engine._attempts FOR SELECT TO pg_database_owner
    USING (true);
GRANT SELECT (job_id, attempt, outcome, started_at, finished_at, worker_pid,
              sqlstate, message, detail, hint, context)
    ON job_engine._attempts TO PUBLIC;

CREATE VIEW job_engine.workers AS
SELECT w.pid, d.datname AS database, w.state, w.job_id, w.attempt, w.since
  FROM job_engine_internal._workers() w
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) w.database;

-- The events a role published, or that created a job it sees; jobs_created
-- counts the jobs it sees.  As the jobs view: security_invoker over
-- row-level security on _events, so ORDER BY id, WHERE id = n and
-- published_at ranges use the primary key and events_published_idx.  The
-- two rules are two policies (PostgreSQL joins them with OR); the second
-- asks _jobs as the caller, whose policies decide which jobs it sees.
CREATE VIEW job_engine.events WITH (security_invoker) AS
SELECT e.id, e.event_type, e.payload, e.correlation_id, e.published_at,
       (SELECT pg_catalog.count(*) FROM job_engine._jobs j
         WHERE j.event_id OPERATOR(pg_catalog.=) e.id) AS jobs_created
  FROM job_engine._events e;

ALTER TABLE job_engine._events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_of_member_roles ON job_engine._events FOR SELECT TO PUBLIC
    USING (publisher OPERATOR(pg_catalog.=) ANY (job_engine_internal._member_roles()));
CREATE POLICY events_of_visible_jobs ON job_engine._events FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM job_engine._jobs j
                    WHERE j.event_id OPERATOR(pg_catalog.=) _events.id OFFSET 0));
CREATE POLICY events_of_database_owner ON job_engine._events FOR SELECT TO pg_database_owner
    USING (true);
-- Not publisher or published_by_job, which the view does not show.
GRANT SELECT (id, event_type, payload, correlation_id, published_at)
    ON job_engine._events TO PUBLIC;

-- Per queue: jobs by state, the age of the oldest job that is due but not
-- started, and throughput and durations over the last one and five minutes,
-- over the jobs the caller sees: _jobs read as the caller, under its
-- policies, like the jobs view.
CREATE VIEW job_engine.queue_stats WITH (security_invoker) AS
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
 GROUP BY q.name, q.paused, q.concurrency, q.group_commit;

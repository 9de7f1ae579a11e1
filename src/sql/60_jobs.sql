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
CREATE FUNCTION job_engine_internal._live_job_with_key(handler_name text, owner oid, key text)
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

CREATE FUNCTION job_engine_internal._create_job(h job_engine.handlers, owner oid, args jsonb[],
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
        PERFORM job_engine_internal._count_created(_create_job.owner, n);
        IF n OPERATOR(pg_catalog.>) 0 THEN
            PERFORM job_engine_internal._wake_on_commit(n);
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
        RETURN NEXT job_engine_internal._live_job_with_key(h.name, owner, idempotency_key);
        RETURN;
    END IF;
    PERFORM job_engine_internal._count_created(_create_job.owner, 1);

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
            PERFORM job_engine_internal._after_transition(aborted_job);
            RETURN NEXT new_id;
            RETURN;
        END IF;
    END IF;
    IF held IS NOT NULL THEN
        INSERT INTO job_engine._recheck (job_id) VALUES (new_id);
    END IF;
    PERFORM job_engine_internal._wake_on_commit(1);
    RETURN NEXT new_id;
END
$$;

-------------------------------------------------------------------------------
-- Commands
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine_internal._submit(caller oid, handler text, args jsonb, queue text,
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
    h := job_engine_internal._require_handler(handler);
    PERFORM job_engine_internal._check_owner(caller);
    PERFORM job_engine_internal._require(args, 'args', has_default => true);
    PERFORM job_engine_internal._require(priority, 'priority', has_default => true);
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
        PERFORM job_engine_internal._require_name(idempotency_key, 'idempotency_key');
    END IF;
    IF ordering_key IS NOT NULL THEN
        PERFORM job_engine_internal._require_name(ordering_key, 'ordering_key');
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
    PERFORM job_engine_internal._require_execute(caller, h, 'submit jobs to');

    -- A submit answered by a live job's idempotency key creates no queue
    -- row (one that is committed meanwhile is found by _create_job).
    IF queue IS NOT NULL AND (idempotency_key IS NULL
            OR job_engine_internal._live_job_with_key(h.name, caller, idempotency_key) IS NULL) THEN
        PERFORM job_engine_internal._ensure_queue(queue);
    END IF;
    RETURN job_engine_internal._create_job(h, caller, ARRAY[args], queue => queue,
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

CREATE FUNCTION job_engine_internal._submit_many(caller oid, handler text, args jsonb[],
        queue text, priority integer, run_at timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
BEGIN
    h := job_engine_internal._require_handler(handler);
    PERFORM job_engine_internal._check_owner(caller);
    PERFORM job_engine_internal._require(args, 'args');
    PERFORM job_engine_internal._require(priority, 'priority', has_default => true);
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
    PERFORM job_engine_internal._require_execute(caller, h, 'submit jobs to');
    -- No jobs, no queue row: nothing would ever remove it but retention.
    IF queue IS NOT NULL AND pg_catalog.cardinality(args) OPERATOR(pg_catalog.>) 0 THEN
        PERFORM job_engine_internal._ensure_queue(queue);
    END IF;
    RETURN QUERY
    SELECT * FROM job_engine_internal._create_job(h, caller, args, queue => queue,
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

CREATE FUNCTION job_engine_internal._job_for(caller oid, job_id bigint, lock boolean)
RETURNS job_engine._jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine_internal._require(job_id, 'job_id');
    -- Visibility is decided by a plain read before any lock: a lock wait,
    -- its timeout (55P03, naming the tuple) or a serialization failure
    -- (40001) on another role's job would tell the caller that it exists.
    SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id;
    IF lock AND FOUND AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER') THEN
        SELECT * INTO j FROM job_engine._jobs WHERE id OPERATOR(pg_catalog.=) job_id FOR UPDATE;
    END IF;
    -- The database's owner reads every job in the views (the policies for
    -- pg_dump), so "does not exist" would be false for it: it is told whose
    -- job it is.  Its check is the policies' (privileges of the role).
    IF FOUND AND NOT pg_catalog.pg_has_role(caller, j.owner, 'MEMBER')
       AND pg_catalog.pg_has_role(caller, 'pg_database_owner', 'USAGE') THEN
        RAISE EXCEPTION 'job % belongs to role %, of which role % is not a member',
                job_id, j.owner, caller::regrole
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The database''s owner sees every job, but acts only on the jobs of roles it is a member of.',
                  HINT = pg_catalog.format('Call it as role %s, or as a superuser.', j.owner);
    END IF;
    IF NOT FOUND OR NOT pg_catalog.pg_has_role(caller, j.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'job % does not exist', job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Look the job up in job_engine.jobs; you see only jobs of roles you belong to, and purged jobs are gone.';
    END IF;
    RETURN j;
END
$$;

CREATE FUNCTION job_engine_internal._resubmit(caller oid, job_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    h job_engine.handlers;
BEGIN
    j := job_engine_internal._job_for(caller, job_id, false);
    PERFORM job_engine_internal._check_owner(caller);
    IF j.state NOT IN ('succeeded', 'failed', 'aborted') THEN
        RAISE EXCEPTION 'job % is still %', job_id, j.state
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only finished jobs can be resubmitted; abort it first or wait for it.';
    END IF;
    h := job_engine_internal._require_handler(j.handler);
    PERFORM job_engine_internal._require_execute(caller, h, 'submit jobs to');
    RETURN job_engine_internal._create_job(h, caller, ARRAY[j.args], queue => j.queue,
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

CREATE FUNCTION job_engine_internal._abort(caller oid, job_id bigint, reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine_internal._require_name(reason, 'reason',
        blank_hint => 'Give a reason: it is recorded as the job''s abort_reason.');
    -- Jobs of roles the caller does not belong to do not exist for it.
    j := job_engine_internal._job_for(caller, job_id, true);
    IF j.id OPERATOR(pg_catalog.=) job_engine.current_job_id() THEN
        RAISE EXCEPTION 'job % cannot abort itself', job_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Raise an error to fail the attempt; abort() is for other jobs.';
    END IF;
    IF j.state IN ('succeeded', 'failed', 'aborted') THEN
        RETURN false;
    END IF;
    IF j.state OPERATOR(pg_catalog.=) 'running' THEN
        RETURN job_engine_internal._abort_running(j, reason);
    END IF;
    UPDATE job_engine._jobs SET state = 'aborted', abort_reason = reason
     WHERE id OPERATOR(pg_catalog.=) job_id
    RETURNING * INTO j;
    PERFORM job_engine_internal._after_transition(j);
    RETURN true;
END
$$;

-- A running job: the attempt and the job are recorded aborted here, fenced
-- by attempt number; the executor is interrupted so its own transaction
-- (holding the handler's work) rolls back and cannot record anything else.
CREATE FUNCTION job_engine_internal._abort_running(j job_engine._jobs, reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._interrupt(j.id, j.attempts);
    UPDATE job_engine._attempts SET outcome = 'aborted', finished_at = pg_catalog.clock_timestamp(),
           message = reason
     WHERE job_id OPERATOR(pg_catalog.=) j.id AND attempt OPERATOR(pg_catalog.=) j.attempts
       AND outcome OPERATOR(pg_catalog.=) 'running';
    UPDATE job_engine._jobs SET state = 'aborted', abort_reason = reason, worker_pid = NULL
     WHERE id OPERATOR(pg_catalog.=) j.id
    RETURNING * INTO j;
    PERFORM job_engine_internal._after_transition(j);
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
CREATE FUNCTION job_engine_internal._wait(caller oid, job_id bigint, timeout interval)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    deadline timestamptz;
    nap double precision := 0.01;
BEGIN
    PERFORM job_engine_internal._require(timeout, 'timeout', has_default => true);
    PERFORM job_engine_internal._require_interval(timeout, 'timeout', true);
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'job_engine.wait() needs READ COMMITTED isolation'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'Under a snapshot isolation level the job''s progress is invisible; call wait() outside such a transaction.';
    END IF;
    j := job_engine_internal._job_for(caller, job_id, false);
    IF j.state IN ('created', 'retrying')
       AND job_engine_internal._written_in_this_transaction(
               (SELECT x.xmin FROM job_engine._jobs x WHERE x.id OPERATOR(pg_catalog.=) job_id)) THEN
        RAISE NOTICE 'job % cannot start before this transaction commits', job_id
            USING DETAIL = 'This transaction created or changed the job; no executor may claim it until then.',
                  HINT = 'Commit first, then call job_engine.wait(), or wait from another session.';
        RETURN j.state::text;
    END IF;
    deadline := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
    LOOP
        j := job_engine_internal._job_for(caller, job_id, false);
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
-- Acting on one job in place: run_now, reschedule, retry
--
-- Each keeps the job's id and is a transition of its own: it stamps
-- state_changed_at, notifies like any transition (_after_transition) and
-- wakes an executor at commit.  Visibility is abort()'s (_job_for): a job of
-- a role the caller does not belong to reads as a missing one.  The job's
-- row is locked, so a claim either took the job first (and the call finds
-- it running) or skips it until the call commits.  Nothing here ends a job:
-- no dependant is aborted and no compensation is submitted.
-------------------------------------------------------------------------------

-- The job `job_id` locked, which must be waiting (created or retrying) for
-- `action`, else 55000 saying what it is.
CREATE FUNCTION job_engine_internal._waiting_job_for(caller oid, job_id bigint, action text)
RETURNS job_engine._jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    j := job_engine_internal._job_for(caller, job_id, true);
    IF j.state NOT IN ('created', 'retrying') THEN
        RAISE EXCEPTION 'job % is %, not waiting: cannot %', job_id, j.state, action
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN j.state OPERATOR(pg_catalog.=) 'running'
                              THEN 'The job is running now; wait for its attempt to end.'
                              WHEN j.state IN ('failed', 'aborted')
                              THEN 'Use job_engine.retry() to run a failed or aborted job again.'
                              ELSE 'The job succeeded; use job_engine.resubmit() to run the same work again.' END;
    END IF;
    RETURN j;
END
$$;

-- Moves waiting job `j` (locked) to run at `at`: a recorded transition.
CREATE FUNCTION job_engine_internal._move_run_at(j job_engine._jobs, at timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE job_engine._jobs x SET run_at = at, state_changed_at = pg_catalog.clock_timestamp()
     WHERE x.id OPERATOR(pg_catalog.=) j.id
    RETURNING * INTO j;
    PERFORM job_engine_internal._after_transition(j);
    -- Due now, or sooner than an executor sleeping until the next due job
    -- expects: one recomputes its sleep.
    PERFORM job_engine_internal._wake_on_commit(1);
END
$$;

CREATE FUNCTION job_engine_internal._run_now(caller oid, job_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    j := job_engine_internal._waiting_job_for(caller, job_id, 'run it now');
    IF j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
        -- Due already: nothing to record.  Still deferred (no release has
        -- come to it yet: a prepared submit, say), it is released now.
        IF j.blocked OPERATOR(pg_catalog.=) 't' THEN
            UPDATE job_engine._jobs x SET blocked = NULL WHERE x.id OPERATOR(pg_catalog.=) j.id;
            PERFORM job_engine_internal._wake_on_commit(1);
        END IF;
        RETURN false;
    END IF;
    PERFORM job_engine_internal._move_run_at(j, pg_catalog.now());
    RETURN true;
END
$$;

-- Makes waiting job `job_id` due now (a delayed job, or a retry waiting
-- out its backoff).  False when it was due already.
CREATE FUNCTION job_engine.run_now(job_id bigint)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';
COMMENT ON FUNCTION job_engine.run_now(bigint) IS
    'Makes a waiting job due now, keeping its id; false if it was due already.';

CREATE FUNCTION job_engine_internal._reschedule(caller oid, job_id bigint, run_at timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
BEGIN
    PERFORM job_engine_internal._require(run_at, 'run_at');
    IF NOT pg_catalog.isfinite(run_at) THEN
        RAISE EXCEPTION 'argument "run_at" must be a finite time, got %', run_at
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a real point in time; to stop the job, use job_engine.abort().';
    END IF;
    j := job_engine_internal._waiting_job_for(caller, job_id, 'reschedule it');
    PERFORM job_engine_internal._move_run_at(j, run_at);
END
$$;

-- Moves waiting job `job_id` to run at `run_at` (earlier or later).
CREATE FUNCTION job_engine.reschedule(job_id bigint, run_at timestamptz)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';
COMMENT ON FUNCTION job_engine.reschedule(bigint, timestamptz) IS
    'Moves a waiting job to run at the given time, keeping its id.';

-- A failed or aborted job back to waiting, due now, with its attempts kept
-- and, if they are used up, one more allowed (as Oban's retry_job does):
-- 'retrying' if it ran before, else 'created'.  Its last_error stays; its
-- abort_reason is cleared with the state it explained.  Refused (55000)
-- when it could not run as itself again: a prerequisite failed or was
-- aborted, a live job of its owner holds its idempotency key, or a later
-- job of its owner with its ordering key is running.  A later waiting job
-- with its ordering key is held back behind it again.  Its dependants,
-- aborted when it ended, stay aborted.
CREATE FUNCTION job_engine_internal._retry(caller oid, job_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j job_engine._jobs;
    other bigint;
    nxt job_engine._jobs;
BEGIN
    j := job_engine_internal._job_for(caller, job_id, true);
    IF j.state NOT IN ('failed', 'aborted') THEN
        RAISE EXCEPTION 'job % is %: only a failed or aborted job can be retried', job_id, j.state
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN j.state OPERATOR(pg_catalog.=) 'succeeded'
                              THEN 'Use job_engine.resubmit() to run the same work again as a new job.'
                              WHEN j.state OPERATOR(pg_catalog.=) 'running'
                              THEN 'The job is running now; wait for its attempt to end.'
                              ELSE 'The job is waiting already; use job_engine.run_now() to run it at once.' END;
    END IF;
    -- An attempt aborted while running is still being rolled back by its
    -- executor until that executor leaves it: never two attempts at once.
    -- In a group (group_commit) the executor goes on to the group's next
    -- job, while the aborted attempt's work stays in the group's
    -- transaction until the group ends: so also while the process that ran
    -- the attempt is still in a transaction begun before the abort.
    IF EXISTS (SELECT 1 FROM job_engine_internal._workers() w
                WHERE w.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                  AND w.job_id OPERATOR(pg_catalog.=) j.id)
       OR EXISTS (SELECT 1 FROM job_engine._attempts a,
                                pg_catalog.pg_stat_get_activity(a.worker_pid) s
                   WHERE a.job_id OPERATOR(pg_catalog.=) j.id
                     AND a.attempt OPERATOR(pg_catalog.=) j.attempts
                     AND a.outcome OPERATOR(pg_catalog.=) 'aborted'
                     AND a.worker_pid IS NOT NULL
                     AND a.worker_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                     AND s.xact_start OPERATOR(pg_catalog.<=) a.finished_at) THEN
        RAISE EXCEPTION 'job % is still being rolled back by its executor', job_id
            USING ERRCODE = 'object_in_use',
                  HINT = 'Its aborted attempt ends in a moment (in a group-commit queue, with its group); try again then.';
    END IF;
    SELECT p.id INTO other
      FROM job_engine._dependencies d
      JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) d.depends_on
     WHERE d.job_id OPERATOR(pg_catalog.=) j.id AND p.state IN ('failed', 'aborted')
     ORDER BY p.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % depends on job %, which did not succeed', job_id, other
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Retry job %s first; this job would only be aborted again.', other);
    END IF;
    IF j.idempotency_key IS NOT NULL THEN
        other := job_engine_internal._live_job_with_key(j.handler, j.owner, j.idempotency_key);
        IF other IS NOT NULL THEN
            PERFORM job_engine_internal._key_taken(j.id, other);
        END IF;
    END IF;
    IF j.ordering_key IS NOT NULL THEN
        -- The first unfinished later job of the key, locked: a claim either
        -- started it already (refused below) or cannot take it before this
        -- commits, and then finds it held back behind this job.
        LOOP
            SELECT * INTO nxt FROM job_engine._jobs o
             WHERE o.owner OPERATOR(pg_catalog.=) j.owner
               AND o.ordering_key OPERATOR(pg_catalog.=) j.ordering_key
               AND o.id OPERATOR(pg_catalog.>) j.id
               AND o.state IN ('created', 'running', 'retrying')
             ORDER BY o.id LIMIT 1;
            EXIT WHEN NOT FOUND;
            SELECT * INTO nxt FROM job_engine._jobs o
             WHERE o.id OPERATOR(pg_catalog.=) nxt.id FOR UPDATE;
            EXIT WHEN nxt.state IN ('created', 'running', 'retrying');
        END LOOP;
        IF nxt.state OPERATOR(pg_catalog.=) 'running' THEN
            RAISE EXCEPTION 'job % with the same ordering key is running', nxt.id
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Jobs of an ordering key run one at a time in order; retry after it ends, or resubmit to run the work after the jobs of the key.';
        END IF;
        -- Deferred ('t') or a candidate: held behind the key from now on
        -- (its release by _unblock() defers it again if it is not due).
        IF nxt.state IN ('created', 'retrying') AND (nxt.blocked IS NULL OR nxt.blocked OPERATOR(pg_catalog.=) 't') THEN
            UPDATE job_engine._jobs o SET blocked = 'k' WHERE o.id OPERATOR(pg_catalog.=) nxt.id;
        END IF;
    END IF;
    BEGIN
        UPDATE job_engine._jobs x
           SET state = CASE WHEN x.attempts OPERATOR(pg_catalog.>) 0
                            THEN 'retrying' ELSE 'created' END::job_engine.job_state,
               finished_at = NULL, worker_pid = NULL, blocked = NULL, abort_reason = NULL,
               run_at = pg_catalog.now(),
               max_attempts = GREATEST(x.max_attempts, x.attempts OPERATOR(pg_catalog.+) 1)
         WHERE x.id OPERATOR(pg_catalog.=) j.id
        RETURNING * INTO j;
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent submit took the idempotency key meanwhile.
        PERFORM job_engine_internal._key_taken(j.id,
            job_engine_internal._live_job_with_key(j.handler, j.owner, j.idempotency_key));
    END;
    PERFORM job_engine_internal._after_transition(j);
    PERFORM job_engine_internal._wake_on_commit(1);
END
$$;

CREATE FUNCTION job_engine_internal._key_taken(job_id bigint, live bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'job % cannot be retried: job % holds its idempotency key', job_id, live
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'A key names one live job of its owner; wait for that job or abort it first.';
END
$$;

-- Runs failed or aborted job `job_id` again in place (see _retry).
CREATE FUNCTION job_engine.retry(job_id bigint)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';
COMMENT ON FUNCTION job_engine.retry(bigint) IS
    'Runs a failed or aborted job again now, keeping its id and attempts (one more allowed if they are used up).';

-------------------------------------------------------------------------------
-- Jobs: submit, resubmit, abort, wait
--
-- Piece src/sql/60_jobs.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.  An abort's interrupt is sent at commit by src/wakeup.c.
-------------------------------------------------------------------------------

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

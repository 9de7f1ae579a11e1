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

-- Consequences of a transition, in the transaction that records it: the
-- notification, and for a job that ended failed or aborted its compensation
-- job and the abort of the jobs that depend on it.  Called for 'retrying',
-- 'failed' and 'aborted' only: a success is recorded, notified and wakes the
-- executors for its dependents in C (src/outcome.c).
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
            PERFORM job_engine._create_job(c, j.owner,
                ARRAY[pg_catalog.jsonb_build_object(
                    'job_id', j.id, 'handler', j.handler, 'args', j.args,
                    'state', j.state, 'error', j.last_error, 'reason', j.abort_reason)],
                priority => j.priority, run_at => pg_catalog.clock_timestamp(),
                correlation_id => j.correlation_id, parent_job_id => j.id,
                compensation_of => j.id);
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

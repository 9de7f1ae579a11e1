-------------------------------------------------------------------------------
-- Recording outcomes and their consequences
--
-- Piece src/sql/72_outcome.sql.  C twin: src/outcome.c: successes are recorded
-- there in C; failures and aborts here.
-------------------------------------------------------------------------------

-- Queues the 'job_engine' notification of a job's new state (src/outcome.c);
-- skipped with a WARNING when the notification queue is half full, since a
-- full one would make the recording transaction fail at commit.
CREATE FUNCTION job_engine_internal._notify(job job_engine._jobs)
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
CREATE FUNCTION job_engine_internal._unblock(ended bigint[])
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
        PERFORM job_engine_internal._wake_on_commit(n);
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
CREATE FUNCTION job_engine_internal._abort_dependants(ended bigint[])
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
            PERFORM job_engine_internal._wake_on_commit(1);
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
CREATE FUNCTION job_engine_internal._after_end(ended bigint[])
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
            PERFORM job_engine_internal._create_job(c.h, (c.j).owner,
                ARRAY[pg_catalog.jsonb_build_object(
                    'job_id', (c.j).id, 'handler', (c.j).handler, 'args', (c.j).args,
                    'state', (c.j).state, 'error', (c.j).last_error, 'reason', (c.j).abort_reason)],
                priority => (c.j).priority, run_at => pg_catalog.clock_timestamp(),
                correlation_id => (c.j).correlation_id, parent_job_id => (c.j).id,
                compensation_of => (c.j).id);
        END LOOP;

        IF keyed THEN
            PERFORM job_engine_internal._unblock(level);
        END IF;

        aborted := job_engine_internal._abort_dependants(level);
        PERFORM job_engine_internal._notify(a) FROM pg_catalog.unnest(aborted) AS a;
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
CREATE FUNCTION job_engine_internal._after_transition(j job_engine._jobs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM job_engine_internal._notify(j);
    IF EXISTS (SELECT 1 FROM job_engine.queues q
                WHERE q.name OPERATOR(pg_catalog.=) j.queue AND q.concurrency IS NOT NULL) THEN
        PERFORM job_engine_internal._wake_on_commit(1);
    END IF;
    IF j.state IN ('failed', 'aborted') THEN
        PERFORM job_engine_internal._after_end(ARRAY[j.id]);
    END IF;
END
$$;

-- Records a successful attempt in the attempt's own transaction.  Fenced by
-- (state, attempt): if the job was aborted meanwhile nothing is written and
-- the executor rolls the attempt back.  The executors run the same code
-- (src/outcome.c) directly; this function is for tests.
CREATE FUNCTION job_engine_internal._record_success(job_id bigint, attempt integer, result jsonb)
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
CREATE FUNCTION job_engine_internal._retryable(sqlstate text, retry_on text[])
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
CREATE FUNCTION job_engine_internal._backoff(n integer, backoff_base interval, backoff_max interval)
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
CREATE FUNCTION job_engine_internal._record_failure(job_id bigint, attempt integer,
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
    -- A crash has no SQLSTATE: none is shown rather than a placeholder.
    summary := pg_catalog.format('%s%s (%sattempt %s)',
                   CASE WHEN outcome OPERATOR(pg_catalog.=) 'crashed' THEN 'worker crashed: ' ELSE '' END,
                   COALESCE(message, 'unknown error'),
                   'SQLSTATE ' OPERATOR(pg_catalog.||) sqlstate OPERATOR(pg_catalog.||) ', ', attempt);

    IF j.attempts OPERATOR(pg_catalog.<) j.max_attempts
       AND job_engine_internal._retryable(sqlstate, h.retry_on) THEN
        next_state := 'retrying';
        UPDATE job_engine._jobs
           SET state = 'retrying', worker_pid = NULL, last_error = summary,
               -- No handler row (unregistered, or not restored yet while
               -- pg_restore loads the tables one by one): retry at once;
               -- the claim then runs it, or fails it saying so.
               run_at = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                        COALESCE(job_engine_internal._backoff(j.attempts, h.backoff_base, h.backoff_max),
                                 '0'::interval)
         WHERE id OPERATOR(pg_catalog.=) job_id
        RETURNING * INTO j;
    ELSE
        next_state := 'failed';
        UPDATE job_engine._jobs SET state = 'failed', worker_pid = NULL, last_error = summary
         WHERE id OPERATOR(pg_catalog.=) job_id
        RETURNING * INTO j;
    END IF;
    PERFORM job_engine_internal._after_transition(j);
    RETURN next_state;
END
$$;

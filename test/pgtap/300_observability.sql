-- 300_observability.sql: the views, trace() and metrics() (docs/reference.md,
-- Observation and Views) over scenarios whose outcome is known: workers really
-- run the jobs, so this file commits as it goes, waits with bounded polling
-- and cleans up after itself.  Objects are named t300/je300_* so that this
-- file does not meet the others.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(64);

-- Leftovers of an earlier run in the same database.
DO $$
BEGIN
    PERFORM job_engine.unsubscribe(id) FROM job_engine.subscriptions
      WHERE starts_with(handler, 't300_') ORDER BY id;
END
$$;
CALL pg_temp.drop_handlers('t300_', '0 seconds');
DELETE FROM job_engine._events WHERE starts_with(event_type, 't300.');
DELETE FROM job_engine.queues WHERE starts_with(name, 't300');
DROP SCHEMA IF EXISTS t300 CASCADE;

-- The lines of a metrics() text, without the final empty one.
CREATE FUNCTION pg_temp.metric_lines(m text) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(l ORDER BY n) FROM regexp_split_to_table(m, E'\n') WITH ORDINALITY AS t(l, n)
     WHERE l <> ''
$$;

-- wait_until() for conditions on pg_stat_activity, which a transaction
-- otherwise reads once and keeps: each try looks at a fresh snapshot.
CREATE FUNCTION pg_temp.wait_until_activity(condition text, timeout interval DEFAULT '30 seconds')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    held boolean;
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE condition INTO held;
        IF held OR clock_timestamp() >= deadline THEN
            RETURN coalesce(held, false);
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je300_a') THEN
        CREATE ROLE je300_a;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je300_b') THEN
        CREATE ROLE je300_b;
    END IF;
END
$$;

CREATE SCHEMA t300;
GRANT USAGE ON SCHEMA t300 TO je300_a, je300_b;
-- Receiving events is granted, not PUBLIC's (485_event_privileges.sql).
GRANT EXECUTE ON FUNCTION job_engine.subscribe, job_engine.unsubscribe TO je300_a, je300_b;
-- A row here is the "fix" that lets t300.charge succeed.
CREATE TABLE t300.fixed (at timestamptz DEFAULT now());
GRANT SELECT ON t300.fixed TO je300_b;

-- args: sleep (seconds), then fail (error message, SQLSTATE 22023).
CREATE FUNCTION t300.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::double precision, 0));
    IF a ? 'fail' THEN
        RAISE EXCEPTION '%', a ->> 'fail' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN a;
END
$$;
-- Event subscriber that hands the shipping over to a child job.
CREATE FUNCTION t300.reserve(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN jsonb_build_object('ship_job', job_engine.submit('t300_ship', a));
END
$$;
-- Event subscriber that fails until t300.fixed has a row.
CREATE FUNCTION t300.charge(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM t300.fixed) THEN
        RAISE EXCEPTION 't300 card declined';
    END IF;
    RETURN '{"charged": true}';
END
$$;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t300_work', 't300.work(jsonb)', queue => 't300_q',
                                        max_attempts => 1);
    PERFORM job_engine.register_handler('t300_sleep', 't300.work(jsonb)', queue => 't300_busy',
                                        max_attempts => 1);
    PERFORM job_engine.register_handler('t300_rls', 't300.work(jsonb)', queue => 't300_rls',
                                        max_attempts => 1);
    PERFORM job_engine.register_handler('t300_ship', 't300.work(jsonb)', queue => 't300_trace');
    PERFORM job_engine.register_handler('t300_refund', 't300.work(jsonb)', queue => 't300_trace');
    PERFORM job_engine.register_handler('t300_reserve', 't300.reserve(jsonb)', queue => 't300_trace');
    PERFORM job_engine.register_handler('t300_charge', 't300.charge(jsonb)', queue => 't300_trace',
                                        max_attempts => 1, compensate_with => 't300_refund');
END
$$;

-------------------------------------------------------------------------------
-- jobs and attempts: 3 jobs succeed and 1 fails in queue t300_q
-------------------------------------------------------------------------------

SELECT job_engine.submit('t300_work', '{"sleep": 0.2}') AS ok1 \gset
SELECT job_engine.submit('t300_work', '{"sleep": 0.1}') AS ok2 \gset
SELECT job_engine.submit('t300_work', '{"sleep": 0.1}') AS ok3 \gset
SELECT job_engine.submit('t300_work', '{"fail": "t300 boom"}') AS bad \gset

SELECT ok(pg_temp.wait_until(format(
            $$SELECT count(*) = 4 FROM job_engine.jobs
               WHERE id IN (%s, %s, %s, %s) AND state IN ('succeeded', 'failed')$$,
            :ok1, :ok2, :ok3, :bad)),
          'scenario: the four jobs of t300_q finish');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM job_engine.jobs
            WHERE id IN (:ok1, :ok2, :ok3, :bad)),
          ARRAY['succeeded', 'succeeded', 'succeeded', 'failed'],
          'scenario: three succeeded, one failed');

SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE id IN (:ok1, :ok2, :ok3, :bad)
              AND duration IS NOT NULL AND duration = finished_at - started_at),
          4::bigint,
          'jobs: duration is finished_at - started_at for finished jobs');
SELECT cmp_ok((SELECT duration FROM job_engine.jobs WHERE id = :ok1), '>=', interval '0.2 seconds',
              'jobs: the duration covers the handler''s 0.2 s sleep');
SELECT is((SELECT last_error FROM job_engine.jobs WHERE id = :bad),
          't300 boom (SQLSTATE 22023, attempt 1)',
          'jobs: last_error of a failed job reads "message (SQLSTATE xxxxx, attempt n)"');
SELECT is((SELECT last_error FROM job_engine.jobs WHERE id = :ok1), NULL,
          'jobs: a job that succeeded at once has no last_error');

SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :ok1), 1::bigint,
          'attempts: one row for a job that succeeded at its first attempt');
SELECT ok((SELECT attempt = 1 AND outcome = 'succeeded' AND worker_pid IS NOT NULL
                  AND duration = finished_at - started_at AND duration >= interval '0.2 seconds'
             FROM job_engine.attempts WHERE job_id = :ok1),
          'attempts: the row has outcome succeeded, a worker and duration = finished_at - started_at');
SELECT is((SELECT (outcome::text, sqlstate, message, duration IS NOT NULL)::text
             FROM job_engine.attempts WHERE job_id = :bad AND attempt = 1),
          ('failed', '22023', 't300 boom', true)::text,
          'attempts: the failed attempt carries outcome, SQLSTATE, message and a duration');

-- Two more jobs wait in the now paused queue.
SELECT job_engine.pause_queue('t300_q') IS NULL AS paused \gset
SELECT job_engine.submit('t300_work', '{}') AS wait1 \gset
SELECT job_engine.submit('t300_work', '{}') AS wait2 \gset

SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE id IN (:wait1, :wait2) AND state = 'created'
              AND started_at IS NULL AND duration IS NULL),
          2::bigint,
          'jobs: duration is NULL while a job waits');

-------------------------------------------------------------------------------
-- queue_stats
-------------------------------------------------------------------------------

SELECT is((SELECT (created, running, retrying, succeeded, failed, aborted)::text
             FROM job_engine.queue_stats WHERE queue = 't300_q'),
          (2, 0, 0, 3, 1, 0)::text,
          'queue_stats: created, running, retrying, succeeded, failed, aborted of t300_q');
SELECT is((SELECT paused FROM job_engine.queue_stats WHERE queue = 't300_q'), true,
          'queue_stats: t300_q is paused');
SELECT cmp_ok((SELECT oldest_waiting_age FROM job_engine.queue_stats WHERE queue = 't300_q'),
              '>', interval '0',
              'queue_stats: oldest_waiting_age > 0 for a paused queue with due jobs');
SELECT is((SELECT oldest_waiting_age FROM job_engine.queue_stats WHERE queue = 't300_q'),
          (SELECT now() - min(run_at) FROM job_engine.jobs WHERE id IN (:wait1, :wait2)),
          'queue_stats: oldest_waiting_age is the age of the oldest due job');
SELECT cmp_ok((SELECT jobs_per_second_1m FROM job_engine.queue_stats WHERE queue = 't300_q'),
              '>', 0::numeric,
              'queue_stats: jobs_per_second_1m > 0 after jobs finished');
SELECT is((SELECT jobs_per_second_1m FROM job_engine.queue_stats WHERE queue = 't300_q'),
          round(4 / 60.0, 2),
          'queue_stats: jobs_per_second_1m counts the 4 jobs finished in the last minute');
SELECT ok((SELECT p50_duration_5m IS NOT NULL AND p95_duration_5m IS NOT NULL
                  AND p50_duration_5m <= p95_duration_5m
             FROM job_engine.queue_stats WHERE queue = 't300_q'),
          'queue_stats: p50 and p95 durations are set, p50 <= p95');
SELECT is((SELECT (p50_duration_5m, p95_duration_5m)::text
             FROM job_engine.queue_stats WHERE queue = 't300_q'),
          (SELECT (percentile_cont(0.5) WITHIN GROUP (ORDER BY duration),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY duration))::text
             FROM job_engine.jobs WHERE id IN (:ok1, :ok2, :ok3, :bad)),
          'queue_stats: p50 and p95 are the percentiles of the finished jobs'' durations');
SELECT ok((SELECT oldest_waiting_age IS NULL AND jobs_per_second_1m = 0
                  AND p50_duration_5m IS NULL AND created + succeeded + failed = 0
             FROM job_engine.queue_stats WHERE queue = 't300_busy'),
          'queue_stats: a queue without jobs has zero counts, no age and no durations');

-------------------------------------------------------------------------------
-- workers
-------------------------------------------------------------------------------

SELECT ok(pg_temp.wait_until(
            $$SELECT count(*) > 0 AND bool_and(state IN ('idle', 'busy'))
                FROM job_engine.workers WHERE database = current_database()$$),
          'workers: live executors of this database are listed, idle or busy');
SELECT ok(pg_temp.wait_until_activity(
            $$SELECT (SELECT array_agg(pid ORDER BY pid) FROM job_engine.workers
                       WHERE database = current_database())
                   = (SELECT array_agg(pid ORDER BY pid) FROM pg_stat_activity
                       WHERE backend_type = 'job_engine executor' AND datname = current_database())$$),
          'workers: their pids are the job_engine executor backends of this database in pg_stat_activity');
SELECT ok((SELECT bool_and(job_id IS NULL AND attempt IS NULL)
             FROM job_engine.workers WHERE state = 'idle'),
          'workers: an idle executor shows no job and no attempt');

SELECT job_engine.submit('t300_sleep', '{"sleep": 60}') AS sleeper \gset
SELECT ok(pg_temp.wait_until(format(
            $$SELECT EXISTS (SELECT 1 FROM job_engine.workers
                              WHERE job_id = %s AND attempt = 1 AND state = 'busy')$$, :sleeper)),
          'workers: the executor running a sleeping handler is busy with its job and attempt');
SELECT is((SELECT (w.pid = a.worker_pid AND w.database = current_database() AND w.since IS NOT NULL)
             FROM job_engine.workers w
             JOIN job_engine.attempts a ON a.job_id = w.job_id AND a.attempt = w.attempt
            WHERE w.job_id = :sleeper),
          true,
          'workers: the busy row is the attempt''s worker, in this database, with a since');
SELECT is((SELECT p.backend_type FROM pg_stat_activity p
             JOIN job_engine.workers w ON w.pid = p.pid WHERE w.job_id = :sleeper),
          'job_engine executor',
          'workers: pg_stat_activity knows the busy pid as a job_engine executor');
SELECT ok(pg_temp.wait_until_activity(format(
            $$SELECT EXISTS (SELECT 1 FROM pg_stat_activity p JOIN job_engine.workers w ON w.pid = p.pid
                              WHERE w.job_id = %1$s AND p.state = 'active'
                                AND p.query ~ '\mjob %1$s\M' AND strpos(p.query, 't300_sleep') > 0)$$,
            :sleeper)),
          'workers: pg_stat_activity.query of the busy executor names the job id and the handler');
SELECT is(job_engine.abort(:sleeper, 't300 enough sleeping'), true, 'workers: the sleeping job is aborted');
SELECT ok(pg_temp.wait_until(format(
            'SELECT NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :sleeper)),
          'workers: the executor lets go of the aborted job');

-------------------------------------------------------------------------------
-- Non-superusers see only their roles' rows
-------------------------------------------------------------------------------

SET ROLE je300_a;
SELECT job_engine.submit('t300_rls', '{"n": 1}') AS a1 \gset
SELECT job_engine.submit('t300_rls', '{"n": 2}') AS a2 \gset
SELECT job_engine.publish('t300.private', '{"of": "a"}') AS ev_a \gset
RESET ROLE;
SET ROLE je300_b;
SELECT job_engine.submit('t300_rls', '{"fail": "t300 b failed"}') AS b1 \gset
RESET ROLE;
SELECT job_engine.publish('t300.private', '{"of": "superuser"}') AS ev_su \gset

SELECT ok(pg_temp.wait_until(format(
            $$SELECT count(*) = 3 FROM job_engine.jobs
               WHERE id IN (%s, %s, %s) AND state IN ('succeeded', 'failed')$$, :a1, :a2, :b1)),
          'roles: the jobs of both roles finish');

SET ROLE je300_a;
SELECT is((SELECT array_agg(id ORDER BY id) FROM job_engine.jobs), ARRAY[:a1, :a2]::bigint[],
          'roles: jobs shows a role only its own jobs');
SELECT is((SELECT array_agg(job_id ORDER BY job_id) FROM job_engine.attempts), ARRAY[:a1, :a2]::bigint[],
          'roles: attempts shows a role only the attempts of its jobs');
SELECT is((SELECT array_agg(id ORDER BY id) FROM job_engine.events), ARRAY[:ev_a]::bigint[],
          'roles: events shows a role only the events it published');
SELECT is((SELECT (created, running, succeeded, failed)::text FROM job_engine.queue_stats WHERE queue = 't300_rls'),
          (0, 0, 2, 0)::text,
          'roles: queue_stats counts only the role''s jobs (a: 2 succeeded)');
SELECT is((SELECT (created, succeeded, failed, oldest_waiting_age)::text
             FROM job_engine.queue_stats WHERE queue = 't300_q'),
          (0, 0, 0, NULL::interval)::text,
          'roles: another role''s queue shows no counts and no waiting age');
RESET ROLE;

SET ROLE je300_b;
SELECT is((SELECT array_agg(id ORDER BY id) FROM job_engine.jobs), ARRAY[:b1]::bigint[],
          'roles: the other role sees only its job');
SELECT is((SELECT array_agg((job_id, outcome)::text) FROM job_engine.attempts),
          ARRAY[(:b1, 'failed')::text],
          'roles: ... and only its failed attempt');
SELECT is((SELECT count(*) FROM job_engine.events), 0::bigint,
          'roles: ... and no event of another role');
SELECT is((SELECT (created, running, succeeded, failed)::text FROM job_engine.queue_stats WHERE queue = 't300_rls'),
          (0, 0, 0, 1)::text,
          'roles: queue_stats counts only the role''s jobs (b: 1 failed)');
RESET ROLE;

SELECT is((SELECT (succeeded, failed)::text FROM job_engine.queue_stats WHERE queue = 't300_rls'),
          (2, 1)::text,
          'roles: a superuser counts the jobs of both roles');
SELECT is((SELECT count(*) FROM job_engine.events WHERE id IN (:ev_a, :ev_su)), 2::bigint,
          'roles: a superuser sees every event');

-------------------------------------------------------------------------------
-- trace(): an event fans out to two subscribers; one submits a child job,
-- one fails and is compensated, and the failed job is resubmitted
-------------------------------------------------------------------------------

SET ROLE je300_a;
SELECT job_engine.subscribe('t300.order.placed', 't300_reserve') AS sub_a \gset
RESET ROLE;
SET ROLE je300_b;
SELECT job_engine.subscribe('t300.order.placed', 't300_charge') AS sub_b \gset
RESET ROLE;

SELECT '3000c0de-0000-4000-8000-000000000300'::uuid AS corr \gset
SELECT job_engine.publish('t300.order.placed', '{"order": 300}', :'corr') AS ev \gset

SELECT ok(pg_temp.wait_until(format(
            $$SELECT count(*) = 4 AND bool_and(state IN ('succeeded', 'failed', 'aborted'))
                FROM job_engine.jobs WHERE correlation_id = %L$$, :'corr')),
          'trace scenario: the two event jobs, the child and the compensation finish');
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev), 2::bigint,
          'events: jobs_created counts the two subscribers'' jobs');

SELECT id AS reserve FROM job_engine.jobs WHERE event_id = :ev AND handler = 't300_reserve' \gset
SELECT id AS charge FROM job_engine.jobs WHERE event_id = :ev AND handler = 't300_charge' \gset
SELECT id AS ship FROM job_engine.jobs WHERE parent_job_id = :reserve AND handler = 't300_ship' \gset
SELECT id AS refund FROM job_engine.jobs WHERE parent_job_id = :charge AND handler = 't300_refund' \gset

SELECT is((SELECT array_agg(state::text ORDER BY id) FROM job_engine.jobs
            WHERE id IN (:reserve, :charge, :ship, :refund)),
          (SELECT array_agg(s ORDER BY i) FROM (VALUES (:reserve, 'succeeded'), (:charge, 'failed'),
                                                       (:ship, 'succeeded'), (:refund, 'succeeded')) v(i, s)),
          'trace scenario: reserve, ship and refund succeeded, charge failed');

-- The cause is fixed; the failed job runs again as a new job.
INSERT INTO t300.fixed DEFAULT VALUES;
SET ROLE je300_b;
SELECT job_engine.resubmit(:charge) AS again \gset
RESET ROLE;
SELECT ok(pg_temp.wait_until(format(
            $$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :again)),
          'trace scenario: the resubmitted job succeeds');

SELECT results_eq(
    format($$SELECT depth, kind, id, name, state, cause, parent_kind, parent_id
               FROM job_engine.trace(%L)$$, :'corr'),
    format($$VALUES (0, 'event', %s::bigint, 't300.order.placed', NULL::text, 'root', NULL::text, NULL::bigint),
                    (1, 'job', %s, 't300_reserve', 'succeeded', 'event', 'event', %s),
                    (2, 'job', %s, 't300_ship', 'succeeded', 'child', 'job', %s),
                    (1, 'job', %s, 't300_charge', 'failed', 'event', 'event', %s),
                    (2, 'job', %s, 't300_refund', 'succeeded', 'compensation', 'job', %s),
                    (2, 'job', %s, 't300_charge', 'succeeded', 'resubmission', 'job', %s)$$,
           :ev, :reserve, :ev, :ship, :reserve, :charge, :ev, :refund, :charge, :again, :charge),
    'trace: the whole tree, depth-first, with depth, kind, name, state, cause and parent');
SELECT is((SELECT detail FROM job_engine.trace(:'corr') WHERE kind = 'job' AND id = :charge),
          't300 card declined (SQLSTATE P0001, attempt 1)',
          'trace: the failed job''s row carries its last error');

SET ROLE je300_a;
SELECT results_eq(
    format($$SELECT depth, kind, id, cause, parent_id FROM job_engine.trace(%L)$$, :'corr'),
    format($$VALUES (0, 'event', %s::bigint, 'root', NULL::bigint),
                    (1, 'job', %s, 'event', %s),
                    (2, 'job', %s, 'child', %s)$$,
           :ev, :reserve, :ev, :ship, :reserve),
    'trace: a subscriber role sees the event and only its own part of the tree');
RESET ROLE;
SET ROLE je300_b;
SELECT results_eq(
    format($$SELECT depth, kind, id, cause, parent_id FROM job_engine.trace(%L)$$, :'corr'),
    format($$VALUES (0, 'event', %s::bigint, 'root', NULL::bigint),
                    (1, 'job', %s, 'event', %s),
                    (2, 'job', %s, 'compensation', %s),
                    (2, 'job', %s, 'resubmission', %s)$$,
           :ev, :charge, :ev, :refund, :charge, :again, :charge),
    'trace: the other subscriber role sees the event and only its part');
RESET ROLE;

-- Siblings created together are listed in creation (id) order, also when
-- their ids differ in length: move the job id sequence (forward only) so
-- that the two jobs of the next event get ids 10^k - 1 and 10^k.
SELECT job_engine.subscribe('t300.sibling', 't300_ship') AS sub_s1 \gset
SELECT job_engine.subscribe('t300.sibling', 't300_refund') AS sub_s2 \gset
SELECT setval(pg_get_serial_sequence('job_engine._jobs', 'id'),
              (10::numeric ^ length((last_value + 1)::text))::bigint - 2) IS NOT NULL AS moved
  FROM job_engine._jobs_id_seq \gset
SELECT '3000c0de-0000-4000-8000-000000000301'::uuid AS corr2 \gset
SELECT job_engine.publish('t300.sibling', '{}', :'corr2') AS ev2 \gset
SELECT results_eq(
    format($$SELECT id, name, length(id::text) FROM job_engine.trace(%L) WHERE kind = 'job'$$, :'corr2'),
    $$SELECT id, handler, length(id::text) FROM job_engine.jobs WHERE correlation_id = '3000c0de-0000-4000-8000-000000000301' ORDER BY id$$,
    'trace: siblings are listed in creation order, also when their ids differ in length (10^k - 1, 10^k)');

-------------------------------------------------------------------------------
-- metrics()
-------------------------------------------------------------------------------

-- Queue names that need escaping in a label value: a double quote and a
-- backslash, and a newline.
SELECT job_engine.configure_queue('t300q"\x') IS NULL AS configured \gset
SELECT job_engine.configure_queue(E't300q\nnl') IS NULL AS configured \gset

CREATE TEMP TABLE t300_metrics AS SELECT pg_temp.metric_lines(job_engine.metrics()) AS lines;

SELECT ok((SELECT bool_and(l = ANY (lines)) FROM t300_metrics,
                  unnest(ARRAY['# TYPE job_engine_jobs gauge',
                               '# TYPE job_engine_attempts_total counter',
                               '# TYPE job_engine_jobs_finished_total counter',
                               '# TYPE job_engine_oldest_waiting_seconds gauge',
                               '# TYPE job_engine_job_duration_seconds summary',
                               '# TYPE job_engine_workers gauge']) AS l),
          'metrics: TYPE lines for jobs, attempts_total, jobs_finished_total, oldest_waiting_seconds, job_duration_seconds and workers');
SELECT is((SELECT array_agg(DISTINCT f)
             FROM t300_metrics, unnest(lines) AS l, substring(l FROM '^[a-z_]+') AS f
            WHERE l !~ '^#'
              AND (NOT EXISTS (SELECT 1 FROM unnest(lines) h
                                WHERE h ~ ('^# HELP ' || regexp_replace(f, '_(sum|count)$', '') || ' \S'))
                   OR NOT EXISTS (SELECT 1 FROM unnest(lines) t
                                   WHERE t ~ ('^# TYPE ' || regexp_replace(f, '_(sum|count)$', '')
                                              || ' (counter|gauge|summary|histogram|untyped)$')))),
          NULL,
          'metrics: every metric of a sample line has a HELP and a TYPE line');
SELECT is((SELECT array_agg(l) FROM t300_metrics, unnest(lines) AS l
            WHERE l !~ '^#' AND l !~ '^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+|NaN)$'),
          NULL,
          'metrics: every sample line matches ^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+|NaN)$');
SELECT is((SELECT array_agg(l) FROM t300_metrics, unnest(lines) AS l
            WHERE l ~ '^# ' AND l !~ '^# (HELP|TYPE) [a-z_]+ \S'),
          NULL,
          'metrics: every comment line is a HELP or TYPE line');
SELECT ok((SELECT format('job_engine_jobs{database="%s",queue="t300_q",state="created"} 2', current_database())
                  = ANY (lines) FROM t300_metrics),
          'metrics: job_engine_jobs{database="...",queue="t300_q",state="created"} 2');
SELECT ok((SELECT ARRAY[format('job_engine_jobs{database="%s",queue="t300_q",state="running"} 0', current_database()),
                        format('job_engine_jobs{database="%s",queue="t300_q",state="retrying"} 0', current_database())]
                  <@ lines FROM t300_metrics),
          'metrics: job_engine_jobs of t300_q for the other unfinished states');
SELECT ok((SELECT l ~ '^job_engine_oldest_waiting_seconds\{database="[^"]*",queue="t300_q"\} [0-9.e+-]+$'
                  AND substring(l FROM ' (.*)$')::numeric > 0
             FROM t300_metrics, unnest(lines) AS l
            WHERE starts_with(l, format('job_engine_oldest_waiting_seconds{database="%s",queue="t300_q"}',
                                        current_database()))),
          'metrics: job_engine_oldest_waiting_seconds of the paused queue is > 0');
SELECT ok((SELECT format('job_engine_jobs{database="%s",queue="t300q\"\\x",state="created"} 0', current_database())
                  = ANY (lines) FROM t300_metrics),
          'metrics: a double quote and a backslash in a queue name are escaped in the label (q"\x -> q\"\\x)');
SELECT ok((SELECT format('job_engine_jobs{database="%s",queue="t300q\nnl",state="created"} 0', current_database())
                  = ANY (lines) FROM t300_metrics),
          'metrics: a newline in a queue name is escaped as \n');

-- The gauges agree with queue_stats (the t300 queues are quiet by now).
SELECT ok((SELECT bool_and(format('job_engine_jobs{database="%s",queue="%s",state="%s"} %s', current_database(),
                                  job_engine_internal._prom_label(q.queue), s.state, s.n) = ANY (m.lines))
             FROM (SELECT pg_temp.metric_lines(job_engine.metrics()) AS lines) m,
                  job_engine.queue_stats q,
                  LATERAL (VALUES ('created', q.created), ('running', q.running),
                                  ('retrying', q.retrying)) AS s(state, n)
            WHERE starts_with(q.queue, 't300')),
          'metrics: job_engine_jobs of the t300 queues are queue_stats'' created, running and retrying');
SELECT ok(pg_temp.wait_until(
            $$SELECT (SELECT sum(substring(l FROM ' (\d+)$')::bigint)
                        FROM unnest(pg_temp.metric_lines(job_engine.metrics())) AS l
                       WHERE l ~ format('^job_engine_workers\{database="%s",state="(idle|busy)"\} \d+$',
                                        current_database()))
                   = (SELECT count(*) FROM job_engine.workers WHERE database = current_database())$$),
          'metrics: job_engine_workers idle + busy is the number of live executors of this database');

-- A plain role's counters cover its own jobs only: je300_b has two failed
-- (t300_rls, the first charge) and two succeeded (refund, resubmitted
-- charge), each at its first attempt.  (The role is new: its counters
-- started at zero.)
SET ROLE je300_b;
SELECT ok((SELECT ARRAY[format('job_engine_attempts_total{database="%s",outcome="succeeded"} 2', current_database()),
                        format('job_engine_attempts_total{database="%s",outcome="failed"} 2', current_database()),
                        format('job_engine_attempts_total{database="%s",outcome="aborted"} 0', current_database()),
                        format('job_engine_attempts_total{database="%s",outcome="crashed"} 0', current_database())]
                  <@ pg_temp.metric_lines(job_engine.metrics())),
          'metrics: a plain role''s attempts_total counts only its attempts, by outcome');
SELECT ok((SELECT ARRAY[format('job_engine_jobs_finished_total{database="%s",state="succeeded"} 2', current_database()),
                        format('job_engine_jobs_finished_total{database="%s",state="failed"} 2', current_database()),
                        format('job_engine_jobs_finished_total{database="%s",state="aborted"} 0', current_database()),
                        format('job_engine_jobs{database="%s",queue="t300_q",state="created"} 0', current_database())]
                  <@ pg_temp.metric_lines(job_engine.metrics())),
          'metrics: a plain role''s jobs_finished_total and job_engine_jobs count only its jobs');
RESET ROLE;

-------------------------------------------------------------------------------
-- Cleanup
-------------------------------------------------------------------------------

SELECT is((SELECT bool_and(job_engine.unsubscribe(id)) FROM job_engine.subscriptions
            WHERE id IN (:sub_a, :sub_b, :sub_s1, :sub_s2)),
          true,
          'cleanup: the subscriptions are removed');
CALL pg_temp.drop_handlers('t300_', '0 seconds');
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE starts_with(name, 't300_')), 0::bigint,
          'cleanup: the handlers are gone');
DELETE FROM job_engine._events WHERE starts_with(event_type, 't300.');
DELETE FROM job_engine.queues WHERE starts_with(name, 't300');
DROP SCHEMA t300 CASCADE;
DROP OWNED BY je300_a, je300_b;
DROP ROLE je300_a;
DROP ROLE je300_b;

SELECT * FROM finish();

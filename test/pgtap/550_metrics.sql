-- 550_metrics.sql: what a monitoring system reads from metrics() and the
-- metric_samples view (docs/monitoring.md, docs/reference.md#metrics):
-- members of pg_monitor see every owner's figures and no job's args; other
-- roles see their own; the counters count committed transitions only and
-- never drop when finished jobs are deleted; an empty quantile is NaN.
-- Workers run the jobs, so this file commits as it goes and polls.
-- Objects are named t520/je520_*.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(39);

CALL pg_temp.drop_handlers('t520_', '0 seconds');
DELETE FROM job_engine.queues WHERE starts_with(name, 't520');
DROP SCHEMA IF EXISTS t520 CASCADE;

-- je520_a submits jobs, je520_b none; je520_mon is a member of pg_monitor.
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['je520_a', 'je520_b', 'je520_mon']) r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
GRANT pg_monitor TO je520_mon;

-- The value of the sample `name{labels}` in the caller's metrics() text,
-- NULL when there is no such line; `labels` without the database label,
-- which comes first when the sample has one.
CREATE FUNCTION pg_temp.sample(name text, labels text DEFAULT '') RETURNS double precision
LANGUAGE sql AS $$
    SELECT substring(l FROM ' (\S+)$')::double precision
      FROM regexp_split_to_table(job_engine.metrics(), E'\n') AS l
     WHERE l IN (SELECT name || p || ' ' || substring(l FROM ' (\S+)$')
                   FROM unnest(ARRAY[
                        CASE WHEN labels = '' THEN '' ELSE '{' || labels || '}' END,
                        format('{database="%s"%s}', current_database(),
                               CASE WHEN labels = '' THEN '' ELSE ',' || labels END)]) AS p)
$$;
GRANT EXECUTE ON FUNCTION pg_temp.sample(text, text) TO PUBLIC;

-- The counters of the caller, as one row.
CREATE FUNCTION pg_temp.counters() RETURNS TABLE (created double precision,
        succeeded double precision, failed double precision, aborted double precision,
        a_succeeded double precision, a_failed double precision, a_aborted double precision,
        d_sum double precision, d_count double precision)
LANGUAGE sql AS $$
    SELECT pg_temp.sample('job_engine_jobs_created_total'),
           pg_temp.sample('job_engine_jobs_finished_total', 'state="succeeded"'),
           pg_temp.sample('job_engine_jobs_finished_total', 'state="failed"'),
           pg_temp.sample('job_engine_jobs_finished_total', 'state="aborted"'),
           pg_temp.sample('job_engine_attempts_total', 'outcome="succeeded"'),
           pg_temp.sample('job_engine_attempts_total', 'outcome="failed"'),
           pg_temp.sample('job_engine_attempts_total', 'outcome="aborted"'),
           pg_temp.sample('job_engine_job_duration_seconds_sum'),
           pg_temp.sample('job_engine_job_duration_seconds_count')
$$;
GRANT EXECUTE ON FUNCTION pg_temp.counters() TO PUBLIC;

CREATE SCHEMA t520;
GRANT USAGE ON SCHEMA t520 TO je520_a, je520_b, je520_mon;
-- Fails with args' "fail" as its message, if any; else succeeds.
CREATE FUNCTION t520.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF a ? 'fail' THEN RAISE EXCEPTION '%', a ->> 'fail'; END IF;
    RETURN a;
END $$;
SELECT job_engine.register_handler('t520_work', 't520.work(jsonb)', queue => 't520_q', max_attempts => 1);
SELECT job_engine.configure_queue('t520_p') IS NULL AS configured \gset
SELECT job_engine.pause_queue('t520_p') IS NULL AS paused \gset


-------------------------------------------------------------------------------
-- Counters of a plain role: its own finished jobs and attempts
-------------------------------------------------------------------------------

SET ROLE je520_a;
CREATE TEMP TABLE t520_a0 AS SELECT * FROM pg_temp.counters();
SELECT isnt((SELECT created FROM t520_a0), NULL,
            'counters: job_engine_jobs_created_total is a sample of metrics()');
SELECT job_engine.submit('t520_work', '{"n": 1}') AS ok1 \gset
SELECT job_engine.submit('t520_work', '{"n": 2}') AS ok2 \gset
SELECT job_engine.submit('t520_work', '{}') AS ok3 \gset
SELECT job_engine.submit('t520_work', '{"fail": "t520 boom"}') AS bad \gset
SELECT ok(pg_temp.wait_until(format(
            $$SELECT count(*) = 4 FROM job_engine.jobs
               WHERE id IN (%s, %s, %s, %s) AND state IN ('succeeded', 'failed')$$,
            :ok1, :ok2, :ok3, :bad)),
          'scenario: the four jobs finish');
CREATE TEMP TABLE t520_a1 AS SELECT * FROM pg_temp.counters();
GRANT SELECT ON t520_a0, t520_a1 TO PUBLIC;
SELECT is((SELECT (n.created - o.created, n.succeeded - o.succeeded, n.failed - o.failed,
                   n.aborted - o.aborted)::text FROM t520_a0 o, t520_a1 n),
          (4, 3, 1, 0)::text,
          'counters: the role''s 4 jobs created, 3 succeeded, 1 failed, 0 aborted');
SELECT is((SELECT (n.a_succeeded - o.a_succeeded, n.a_failed - o.a_failed, n.a_aborted - o.a_aborted)::text
             FROM t520_a0 o, t520_a1 n),
          (3, 1, 0)::text,
          'counters: attempts by outcome: 3 succeeded, 1 failed');
SELECT is((SELECT n.d_count - o.d_count FROM t520_a0 o, t520_a1 n), 4::double precision,
          'summary: _count counts the 4 jobs that ran and ended');
SELECT ok((SELECT abs((n.d_sum - o.d_sum)
                      - (SELECT sum(extract(epoch FROM duration))::double precision FROM job_engine.jobs
                          WHERE id IN (:ok1, :ok2, :ok3, :bad))) < 1e-5
             FROM t520_a0 o, t520_a1 n),
          'summary: _sum adds the 4 jobs'' durations (finished_at - started_at)');
SELECT ok((SELECT v <> 'NaN' AND v >= 0 FROM pg_temp.sample('job_engine_job_duration_seconds', 'quantile="0.5"') v),
          'summary: the median of the last 5 minutes is a number once jobs ended');
RESET ROLE;

-- Retention deletes finished jobs: the counters do not drop.
DELETE FROM job_engine._jobs WHERE id IN (:ok1, :ok2, :ok3, :bad);
SET ROLE je520_a;
SELECT is((SELECT row(c.*)::text FROM pg_temp.counters() c), (SELECT row(n.*)::text FROM t520_a1 n),
          'counters: deleting the finished jobs (as retention does) changes no counter');

-------------------------------------------------------------------------------
-- Only committed transitions count
-------------------------------------------------------------------------------

BEGIN;
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') IS NOT NULL AS rolled_back \gset
ROLLBACK;
SELECT is((SELECT created FROM pg_temp.counters()), (SELECT created FROM t520_a1),
          'counters: a submit that rolls back is not counted');
BEGIN;
SAVEPOINT s;
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') IS NOT NULL AS rolled_back \gset
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') AS held1 \gset
RELEASE SAVEPOINT s2;
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') AS held2 \gset
COMMIT;
SELECT is((SELECT created - (SELECT created FROM t520_a1) FROM pg_temp.counters()), 2::double precision,
          'counters: of three submits, the one in a subtransaction rolled back is not counted');
SELECT is(job_engine.submit('t520_work', '{}', queue => 't520_p', idempotency_key => 't520 key'),
          job_engine.submit('t520_work', '{}', queue => 't520_p', idempotency_key => 't520 key'),
          'scenario: a second submit with the idempotency key of a live job returns that job');
SELECT is((SELECT created - (SELECT created FROM t520_a1) FROM pg_temp.counters()), 3::double precision,
          'counters: the second submit with the key created nothing and counts nothing');
SELECT id AS keyed FROM job_engine.jobs WHERE handler = 't520_work' AND state = 'created'
   AND id > :held2 AND queue = 't520_p' \gset
SELECT is(job_engine.abort(:keyed, 't520 not needed'), true, 'scenario: the keyed job is aborted');
SELECT is(job_engine.abort(:held2, 't520 not needed'), true, 'scenario: a waiting job is aborted');
SELECT is((SELECT (c.aborted - n.aborted, c.a_aborted - n.a_aborted, c.d_count - n.d_count)::text
             FROM pg_temp.counters() c, t520_a1 n),
          (2, 0, 0)::text,
          'counters: waiting jobs aborted count as aborted, with no attempt and no duration');
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') AS held3 \gset
-- A job held back by its dependency on a waiting job: found through jobs_held_idx.
SELECT job_engine.submit('t520_work', '{}', depends_on => ARRAY[:held1]::bigint[]) AS dependant \gset
RESET ROLE;
SELECT ok(pg_temp.wait_until(format(
            'SELECT blocked IS NOT NULL FROM job_engine._jobs WHERE id = %s', :dependant)),
          'scenario: the dependant is held back by a claim');
SELECT job_engine.submit('t520_work', '{}', queue => 't520_p') AS su_held \gset

-------------------------------------------------------------------------------
-- Who sees what
-------------------------------------------------------------------------------

SET ROLE je520_a;
SELECT is(pg_temp.sample('job_engine_jobs', 'queue="t520_p",state="created"'), 2::double precision,
          'gauges: a plain role counts its own 2 waiting jobs of the paused queue');
SELECT is(pg_temp.sample('job_engine_jobs', 'queue="t520_q",state="created"'), 1::double precision,
          'gauges: and its held-back dependant');
SELECT ok(pg_temp.sample('job_engine_oldest_waiting_seconds', 'queue="t520_p"') > 0,
          'gauges: the oldest waiting job of the paused queue has an age');
RESET ROLE;

SET ROLE je520_b;
SELECT is(pg_temp.sample('job_engine_jobs', 'queue="t520_p",state="created"'), 0::double precision,
          'gauges: a role without jobs sees none of the others''');
SELECT is(pg_temp.sample('job_engine_oldest_waiting_seconds', 'queue="t520_p"'), 0::double precision,
          'gauges: nor their age');
SELECT is((SELECT row(created, succeeded, failed, aborted, a_succeeded, a_failed, d_count)::text
             FROM pg_temp.counters()),
          row(0, 0, 0, 0, 0, 0, 0)::text,
          'counters: a role without jobs counts nothing');
SELECT is(pg_temp.sample('job_engine_job_duration_seconds', 'quantile="0.95"')::text, 'NaN',
          'summary: an empty quantile is NaN, not 0');
SELECT is(pg_temp.sample('job_engine_job_duration_seconds_sum'), 0::double precision,
          'summary: an empty _sum is 0');
RESET ROLE;

SET ROLE je520_mon;
SELECT is(pg_temp.sample('job_engine_jobs', 'queue="t520_p",state="created"'), 3::double precision,
          'pg_monitor: a member counts every owner''s waiting jobs (2 of je520_a, 1 of the superuser)');
SELECT ok((SELECT created >= (SELECT created FROM t520_a1) + 3 FROM pg_temp.counters()),
          'pg_monitor: the counters cover every owner''s jobs');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE id IN (:held1, :held3, :su_held)), 0::bigint,
          'pg_monitor: a member still sees no job row, no args, no result');
SELECT is((SELECT value FROM job_engine.metric_samples
            WHERE metric = 'job_engine_jobs' AND queue = 't520_p' AND state = 'created'),
          3::double precision,
          'metric_samples: a pg_monitor member''s row counts every owner''s jobs too');
RESET ROLE;

SELECT is(pg_temp.sample('job_engine_jobs', 'queue="t520_p",state="created"'), 3::double precision,
          'superuser: counts every owner''s waiting jobs');

-------------------------------------------------------------------------------
-- Rows and text agree; the text is well formed
-------------------------------------------------------------------------------

SET ROLE je520_a;
SELECT is((SELECT value FROM job_engine.metric_samples
            WHERE metric = 'job_engine_jobs' AND queue = 't520_p' AND state = 'created'),
          2::double precision,
          'metric_samples: a plain role''s row counts its own jobs');
SELECT is((SELECT count(*) FROM regexp_split_to_table(job_engine.metrics(), E'\n') l
            WHERE l <> '' AND l !~ '^#'),
          (SELECT count(*) FROM job_engine.metric_samples),
          'metric_samples: one row per sample line of metrics()');
SELECT is((SELECT array_agg(l) FROM regexp_split_to_table(job_engine.metrics(), E'\n') l
            WHERE l <> '' AND l !~ '^#' AND l !~ '^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+|NaN)$'),
          NULL,
          'metrics: every sample line is name{labels} value, the value a number or NaN');
SELECT is((SELECT array_agg(DISTINCT f ORDER BY f) FILTER (WHERE f IS NOT NULL)
             FROM regexp_split_to_table(job_engine.metrics(), E'\n') l,
                  substring(l FROM '^# TYPE (\S+) counter$') f),
          ARRAY['job_engine_attempts_total', 'job_engine_jobs_created_total', 'job_engine_jobs_finished_total'],
          'metrics: the counters are typed counter and end in _total');
SELECT is((SELECT count(*) FROM job_engine.metric_samples
            WHERE metric = 'job_engine_counters_lost_total'), 0::bigint,
          'metrics: the cluster-wide lost count is not shown to a plain role');
SELECT is((SELECT count(*) FROM regexp_split_to_table(job_engine.metrics(), E'\n') l
            WHERE l ~ '^job_engine_(jobs|attempts)\{.*state="(succeeded|failed|aborted)"'
               OR l ~ '^job_engine_attempts\{'),
          0::bigint,
          'metrics: no gauge of retained finished jobs or attempts (they grew with history)');
RESET ROLE;
SELECT is(pg_temp.sample('job_engine_workers_configured'),
          current_setting('job_engine.max_workers')::double precision,
          'metrics: job_engine_workers_configured is job_engine.max_workers in a served database');
SELECT is(pg_temp.sample('job_engine_counters_lost_total'), 0::double precision,
          'metrics: a superuser sees that no transition went uncounted');

SELECT is((SELECT count(*) FROM (VALUES (obj_description('job_engine.metrics()'::regprocedure, 'pg_proc')),
                                         (obj_description('job_engine.metric_rows()'::regprocedure, 'pg_proc')),
                                         (obj_description('job_engine.metric_samples'::regclass, 'pg_class'))) c(d)
            WHERE d IS NOT NULL),
          3::bigint,
          'metrics(), metric_rows() and metric_samples have a comment');

-------------------------------------------------------------------------------
-- Cleanup
-------------------------------------------------------------------------------

SELECT job_engine.abort(id, 't520 cleanup') FROM job_engine.jobs
 WHERE id IN (:held1, :held3, :su_held, :dependant) AND state = 'created';
CALL pg_temp.drop_handlers('t520_', '0 seconds');
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE starts_with(name, 't520_')), 0::bigint,
          'cleanup: the handler is gone');
DELETE FROM job_engine.queues WHERE starts_with(name, 't520');
DROP SCHEMA t520 CASCADE;
REVOKE pg_monitor FROM je520_mon;
DROP OWNED BY je520_a, je520_b, je520_mon;
DROP ROLE je520_a;
DROP ROLE je520_b;
DROP ROLE je520_mon;

SELECT * FROM finish();

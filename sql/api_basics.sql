--
-- The SQL interface end to end: register handlers, submit jobs, let the
-- workers run them, and read the outcome in the views.  Ids depend on what
-- ran before in this database, so jobs are shown by handler and args.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE FUNCTION ab_double(args jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_build_object('doubled', (args->>'n')::integer * 2) $$;
CREATE FUNCTION ab_count(args jsonb) RETURNS integer LANGUAGE sql
AS $$ SELECT jsonb_array_length(args->'items') $$;
CREATE FUNCTION ab_nothing(args jsonb) RETURNS void LANGUAGE plpgsql
AS $$ BEGIN END $$;
CREATE FUNCTION ab_divide(args jsonb) RETURNS numeric LANGUAGE sql
AS $$ SELECT round((args->>'a')::numeric / (args->>'b')::numeric, 2) $$;
CREATE FUNCTION ab_fail(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cannot process %', args->>'what'
        USING DETAIL = 'The input was refused.', HINT = 'Fix the input and resubmit.';
END
$$;
-- Handlers
SELECT job_engine.register_handler('ab_double', 'ab_double(jsonb)');
SELECT job_engine.register_handler('ab_count', 'ab_count(jsonb)', queue => 'ab_queue', max_attempts => 5);
SELECT job_engine.register_handler('ab_nothing', 'ab_nothing(jsonb)', timeout => '1 minute');
SELECT job_engine.register_handler('ab_divide', 'ab_divide(jsonb)', backoff_base => '10 ms');
SELECT job_engine.register_handler('ab_fail', 'ab_fail(jsonb)', max_attempts => 2,
    backoff_base => '10 ms', backoff_max => '1 second', retry_on => '{P0001}');
SELECT job_engine.register_handler('ab_later', 'ab_double(jsonb)');
SELECT name, fn, queue, max_attempts, backoff_base, backoff_max, timeout, retry_on
  FROM job_engine.handlers WHERE name LIKE 'ab\_%' ORDER BY name;
SELECT name, paused FROM job_engine.queues WHERE name IN ('default', 'ab_queue') ORDER BY name;
-- Bad calls are refused with a message that says what to do.
SELECT job_engine.submit('ab_missing');
SELECT job_engine.submit('ab_double', NULL);
SELECT job_engine.submit('ab_double', '{}', max_attempts => 0);
SELECT job_engine.submit('ab_double', run_at => 'infinity');
SELECT job_engine.submit_many('ab_double', ARRAY['{}', NULL]::jsonb[]);
SELECT job_engine.register_handler('ab_bad', 'ab_double(jsonb)', backoff_base => '1 minute', backoff_max => '1 second');
SELECT job_engine.register_handler('ab_bad', 'ab_double(jsonb)', retry_on => '{40001,deadlock}');
SELECT job_engine.abort(-1, 'no such job');
-- wait() on a job of the caller's own open transaction returns at once: no
-- executor may claim the job before the transaction commits.
BEGIN;
SELECT job_engine.wait(job_engine.submit('ab_double', '{"n": 0}'), '5 seconds');
ROLLBACK;
-- Jobs
SELECT job_engine.submit('ab_double', '{"n": 21}') > 0 AS submitted;
SELECT count(*) AS submitted FROM job_engine.submit_many('ab_double', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[]);
SELECT job_engine.submit('ab_count', '{"items": [1, 2, 3]}') > 0 AS submitted;
SELECT job_engine.submit('ab_nothing') > 0 AS submitted;
SELECT job_engine.submit('ab_divide', '{"a": 1, "b": 4}') > 0 AS submitted;
SELECT job_engine.submit('ab_divide', '{"a": 1, "b": 0}') > 0 AS submitted;
SELECT job_engine.submit('ab_fail', '{"what": "order 7"}') > 0 AS submitted;
-- A delayed job, aborted before it is due.
SELECT job_engine.submit('ab_later', '{"n": 0}', run_at => now() + interval '1 hour') AS delayed \gset
SELECT state, attempts FROM job_engine.jobs WHERE id = :delayed;
SELECT job_engine.unregister_handler('ab_later');
SELECT job_engine.abort(:delayed, 'not needed');
SELECT job_engine.abort(:delayed, 'not needed');
-- Wait, at most 30 seconds, until every job is finished.
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
    WHILE EXISTS (SELECT 1 FROM job_engine.jobs
                   WHERE handler LIKE 'ab\_%' AND state NOT IN ('succeeded', 'failed', 'aborted')) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'jobs still unfinished after 30 seconds';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT handler, args, queue, state, attempts, max_attempts, result
  FROM job_engine.jobs WHERE handler LIKE 'ab\_%' ORDER BY handler COLLATE "C", args::text COLLATE "C";
SELECT handler, args, last_error, abort_reason
  FROM job_engine.jobs WHERE handler LIKE 'ab\_%' AND state <> 'succeeded' ORDER BY handler COLLATE "C", args::text COLLATE "C";
SELECT j.handler, j.args, a.attempt, a.outcome, a.sqlstate, a.message, a.detail, a.hint
  FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id
 WHERE j.handler LIKE 'ab\_%' ORDER BY j.handler COLLATE "C", j.args::text COLLATE "C", a.attempt;
SELECT count(*) AS jobs,
       count(*) FILTER (WHERE correlation_id IS NOT NULL AND owner = current_user AND parent_job_id IS NULL) AS well_formed,
       count(*) FILTER (WHERE state <> 'aborted' AND started_at IS NOT NULL AND finished_at >= started_at
                               AND duration >= '0') AS ran_with_timestamps
  FROM job_engine.jobs WHERE handler LIKE 'ab\_%';
SELECT count(*) AS attempts,
       count(*) FILTER (WHERE a.worker_pid IS NOT NULL AND a.finished_at >= a.started_at) AS attributed
  FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id WHERE j.handler LIKE 'ab\_%';

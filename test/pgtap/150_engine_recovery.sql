-- Crash recovery by worker liveness (docs/architecture.md §5): when one executor dies in
-- the middle of an attempt, that attempt is recorded crashed and goes
-- through the retry policy, the attempts of the other executors carry on
-- undisturbed, and the supervisor starts a replacement executor.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(14);

CALL pg_temp.drop_handlers('tap_crash', '0 seconds');
DROP SCHEMA IF EXISTS tap_crash CASCADE;
CREATE SCHEMA tap_crash;
CREATE TABLE tap_crash.done (job_id bigint, attempt integer);
CREATE FUNCTION tap_crash.sleep(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((args->>'seconds')::double precision);
    INSERT INTO tap_crash.done VALUES (job_engine.current_job_id(), (job_engine.context()->>'attempt')::integer);
    RETURN jsonb_build_object('attempt', (job_engine.context()->>'attempt')::integer);
END
$$;
SELECT job_engine.register_handler('tap_crash_victim', 'tap_crash.sleep(jsonb)', max_attempts => 2,
    backoff_base => '10 ms') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_crash_bystander', 'tap_crash.sleep(jsonb)', max_attempts => 1) IS NULL AS registered \gset

SELECT pg_temp.wait_until($$SELECT count(*) = current_setting('job_engine.max_workers')::integer
                               FROM job_engine.workers WHERE database = current_database()$$, '5 seconds') AS all_up \gset
SELECT count(*) AS executors FROM job_engine.workers WHERE database = current_database() \gset

-- Two jobs running at once on two executors; the victim sleeps long enough
-- to be surely still running when its executor dies.
SELECT job_engine.submit('tap_crash_victim', '{"seconds": 20}') AS victim \gset
SELECT job_engine.submit('tap_crash_bystander', '{"seconds": 3}') AS bystander \gset
SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = 2 FROM job_engine.attempts a
                                        JOIN pg_stat_activity s ON s.pid = a.worker_pid
                                       WHERE a.job_id IN (%s, %s) AND a.outcome = 'running'
                                         AND s.wait_event = 'PgSleep'$$, :victim, :bystander)),
    'both jobs are running their handlers');
SELECT (SELECT worker_pid FROM job_engine.attempts WHERE job_id = :victim) AS victim_pid \gset
SELECT (SELECT worker_pid FROM job_engine.attempts WHERE job_id = :bystander) AS bystander_pid \gset
SELECT isnt(:victim_pid, :bystander_pid, 'they run on different executors');

-- The victim's second attempt must be quick: only the first attempt sleeps.
CREATE OR REPLACE FUNCTION tap_crash.sleep(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (job_engine.context()->>'attempt')::integer = 1 THEN
        PERFORM pg_sleep((args->>'seconds')::double precision);
    END IF;
    INSERT INTO tap_crash.done VALUES (job_engine.current_job_id(), (job_engine.context()->>'attempt')::integer);
    RETURN jsonb_build_object('attempt', (job_engine.context()->>'attempt')::integer);
END
$$;

SELECT ok(pg_terminate_backend(:victim_pid), 'terminate the executor running the victim');

SELECT ok(pg_temp.wait_until(format($$SELECT EXISTS (SELECT 1 FROM job_engine.attempts
                                                     WHERE job_id = %s AND attempt = 1 AND outcome <> 'running')$$,
                                    :victim), '5 seconds'),
    'the attempt of the dead executor is no longer running');
SELECT row_eq(format($$SELECT outcome, worker_pid, finished_at IS NOT NULL FROM job_engine.attempts
                        WHERE job_id = %s AND attempt = 1$$, :victim),
    ROW('crashed'::job_engine.attempt_outcome, :victim_pid, true),
    'it is recorded crashed, attributed to its executor');
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :victim),
                             '5 seconds'),
    'the retry policy runs the victim again and it succeeds');
SELECT results_eq(format($$SELECT attempt, outcome::text FROM job_engine.attempts WHERE job_id = %s ORDER BY attempt$$, :victim),
    $$VALUES (1, 'crashed'), (2, 'succeeded')$$, 'the victim has a crashed then a succeeded attempt');
SELECT results_eq(format($$SELECT attempt FROM tap_crash.done WHERE job_id = %s$$, :victim),
    ARRAY[2], 'only the second attempt''s work was committed');

SELECT ok(pg_temp.wait_until(format($$SELECT state IN ('succeeded', 'failed', 'aborted')
                                        FROM job_engine.jobs WHERE id = %s$$, :bystander), '15 seconds'),
    'the bystander finishes');
SELECT row_eq(format($$SELECT state, attempts FROM job_engine.jobs WHERE id = %s$$, :bystander),
    ROW('succeeded'::job_engine.job_state, 1), 'the bystander on a live executor succeeded at its first attempt');
SELECT results_eq(format($$SELECT outcome::text FROM job_engine.attempts WHERE job_id = %s$$, :bystander),
    ARRAY['succeeded'], 'its attempt was not recorded crashed');
SELECT is((SELECT count(*) FROM tap_crash.done WHERE job_id = :bystander), 1::bigint,
    'and its work was committed');

SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = %s FROM job_engine.workers
                                       WHERE database = current_database() AND pid <> %s$$,
                                    :executors, :victim_pid), '15 seconds'),
    'the supervisor replaces the dead executor');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler LIKE 'tap\_crash\_%' AND state = 'running'), 0::bigint,
    'no job is left running');

CALL pg_temp.drop_handlers('tap_crash', '2 seconds');
DROP SCHEMA tap_crash CASCADE;
SELECT * FROM finish();

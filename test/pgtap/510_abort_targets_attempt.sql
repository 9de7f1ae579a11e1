-- 510_abort_targets_attempt.sql: the interrupt an abort() sends reaches
-- exactly the attempt it was meant for and nothing after it: not the
-- recording of that attempt's outcome, not the next attempt of its group,
-- not the executor (src/wakeup.c, src/shmem.c).
--
-- deaf_handler ($libdir/job_engine_example) notices the stop request and
-- fails with an error of its own without taking the cancel, as code that
-- never calls CHECK_FOR_INTERRUPTS() would: the cancel is still pending when
-- its handler ends.  Objects are named t510.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(9);

CALL pg_temp.drop_handlers('t510_', '0 seconds');
DELETE FROM job_engine.queues WHERE name IN ('t510', 't510_group');
DROP SCHEMA IF EXISTS t510 CASCADE;
CREATE SCHEMA t510;
CREATE TABLE t510.effects (job_id bigint);
CREATE FUNCTION t510.record(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t510.effects VALUES (job_engine.current_job_id());
    PERFORM pg_sleep(0.01);
    RETURN '{"done": true}';
END
$$;
DO $$
BEGIN
    PERFORM job_engine.register_c_handler('t510_deaf', '$libdir/job_engine_example', 'deaf_handler',
                                          queue => 't510', max_attempts => 1);
    PERFORM job_engine.register_handler('t510_record', 't510.record(jsonb)', queue => 't510_group',
                                        max_attempts => 1);
    PERFORM job_engine.configure_queue('t510_group', group_commit => 2);
    PERFORM job_engine.pause_queue('t510_group');
END
$$;

-- 1. One attempt: the executor outlives the cancel left pending.
SELECT job_engine.submit('t510_deaf') AS deaf \gset
SELECT ok(pg_temp.poll(format('EXISTS (SELECT FROM job_engine.workers WHERE job_id = %s)', :deaf)),
    'single: the deaf job runs');
SELECT worker_pid AS deaf_pid FROM job_engine.attempts WHERE job_id = :deaf \gset
SELECT is(job_engine.abort(:deaf, 'stop'), true, 'single: it is aborted');
SELECT ok(pg_temp.poll(format($$NOT EXISTS (SELECT FROM job_engine.workers
                                              WHERE pid = %s AND state = 'busy')$$, :deaf_pid)),
    'single: its executor leaves the attempt');
SELECT is((SELECT state FROM job_engine.workers WHERE pid = :deaf_pid), 'idle',
    'single: the executor is still there, idle: recording the attempt took no cancel');
SELECT is(pg_temp.history(:deaf), 'aborted: 1 aborted', 'single: the attempt stays recorded aborted');

-- 2. A group: the deaf job first, then an ordinary one.
SELECT job_engine.register_c_handler('t510_deaf', '$libdir/job_engine_example', 'deaf_handler',
                                     queue => 't510_group', max_attempts => 1) IS NULL AS registered \gset
CREATE TEMP TABLE ids AS
SELECT job_engine.submit('t510_deaf') AS deaf,
       job_engine.submit('t510_record') AS next;
SELECT job_engine.resume_queue('t510_group') IS NULL AS resumed \gset
SELECT ok(pg_temp.poll(format('EXISTS (SELECT FROM job_engine.workers WHERE job_id = %s)',
                              (SELECT deaf FROM ids))),
    'group: the deaf job, first of its group, runs');
SELECT is(job_engine.abort((SELECT deaf FROM ids), 'stop'), true, 'group: it is aborted');
SELECT is(pg_temp.await_state((SELECT next FROM ids), 'succeeded') || ' / ' || pg_temp.history((SELECT next FROM ids)),
    'succeeded / succeeded: 1 succeeded',
    'group: the next job of the group is not hit by the cancel meant for the aborted one');
SELECT is((SELECT count(*) FROM t510.effects WHERE job_id = (SELECT next FROM ids)), 1::bigint,
    'group: its work is committed once');

CALL pg_temp.drop_handlers('t510_', '0 seconds');
DELETE FROM job_engine.queues WHERE name IN ('t510', 't510_group');
DROP SCHEMA t510 CASCADE;

SELECT * FROM finish();

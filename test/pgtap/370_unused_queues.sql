-- Queues that never held a job: a submit answered by an idempotency key and
-- a submit_many of no jobs create no queue row, and purge() removes every
-- queue that configure_queue() never configured and that holds no job.  One
-- transaction, rolled back: no job here ever reaches a worker.
BEGIN;
SELECT plan(9);

CREATE SCHEMA tap_unused_queues;
CREATE FUNCTION tap_unused_queues.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
SELECT job_engine.register_handler('tap_unused_queues_h', 'tap_unused_queues.ok(jsonb)',
    queue => 'tap_uq_handler') IS NULL AS registered \gset

SELECT job_engine.submit('tap_unused_queues_h', idempotency_key => 'k',
    queue => 'tap_uq_first', run_at => now() + interval '1 hour') AS job \gset
SELECT is(job_engine.submit('tap_unused_queues_h', idempotency_key => 'k',
          queue => 'tap_uq_idem', run_at => now() + interval '1 hour'), :job::bigint,
    'a submit with the key of a live job returns that job');
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_uq_idem'),
    'a submit answered by an idempotency key creates no queue');
SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_unused_queues_h', '{}'::jsonb[],
          queue => 'tap_uq_zero')), 0::bigint, 'submit_many of no jobs creates no job');
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_uq_zero'),
    'submit_many of no jobs creates no queue');

-- Rows left without a job, as earlier versions made them, and ones that
-- must stay: configure_queue() made them, even a queue configured back to
-- its defaults.
INSERT INTO job_engine.queues (name) VALUES ('tap_uq_left1'), ('tap_uq_left2');
SELECT job_engine.configure_queue('tap_uq_reset', concurrency => 2) IS NULL AS configured \gset
SELECT job_engine.configure_queue('tap_uq_reset', concurrency => NULL) IS NULL AS reset \gset
SELECT job_engine.configure_queue('tap_uq_limited', concurrency => 2) IS NULL AS limited \gset
SELECT job_engine.configure_queue('tap_uq_paused') IS NULL AS made \gset
SELECT job_engine.pause_queue('tap_uq_paused') IS NULL AS paused \gset

SELECT lives_ok($$SELECT job_engine.purge('0 seconds')$$, 'purge runs');
SELECT is(ARRAY(SELECT name FROM job_engine.queues WHERE name LIKE 'tap\_uq\_%' ORDER BY name),
    ARRAY['tap_uq_first', 'tap_uq_handler', 'tap_uq_limited', 'tap_uq_paused', 'tap_uq_reset'],
    'purge removes every unconfigured queue without jobs, and only those');

-- Retention runs the same removal.
INSERT INTO job_engine.queues (name) VALUES ('tap_uq_left3');
SELECT lives_ok($$SELECT job_engine_internal._purge_expired(3600)$$, 'retention runs');
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_uq_left3'),
    'retention removes an unconfigured queue that never held a job');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_uq_first'),
    'a queue holding a waiting job stays');

SELECT * FROM finish();
ROLLBACK;

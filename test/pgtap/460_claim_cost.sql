-- 460_claim_cost.sql: blocked work one role parks does not slow another's
-- claims, and queues nobody uses do not live for ever (issue 12 §3, third
-- bullet).
--
-- 1. Claim cost.  PUBLIC creates queues by submitting to them.  alice parks
--    one due job blocked by depends_on at the head of each of 200 queues,
--    ahead (by priority) of bob's job.  The cost of one claim, counted as
--    the scans of job_engine._jobs that job_engine_internal._claim() makes (the
--    executors run the same code), must not grow with the parked queues: a
--    structural count, not a timing.  Measured in a transaction that is
--    rolled back, so the executors never see these jobs.
-- 2. An auto-created queue without jobs, handler or configuration is removed
--    once purge() removed its last job (docs/reference.md, configure_queue
--    and purge).  Configured queues, even with every option at its default,
--    and queues a handler names stay.

SET client_min_messages = warning;

\ir ../fixtures/pgtap_helpers.sql

-- Scans of job_engine._jobs made so far in this transaction.
CREATE FUNCTION pg_temp.jobs_scans() RETURNS bigint LANGUAGE sql AS $$
    SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0)
      FROM pg_stat_xact_all_tables WHERE relid = 'job_engine._jobs'::regclass
$$;

-- Scans made by one claim, and the job it claimed.
CREATE FUNCTION pg_temp.one_claim(OUT scans bigint, OUT claimed bigint) LANGUAGE plpgsql AS $$
DECLARE
    s0 bigint := pg_temp.jobs_scans();
BEGIN
    SELECT c.job_id INTO claimed FROM job_engine_internal._claim(pg_backend_pid()) c LIMIT 1;
    scans := pg_temp.jobs_scans() - s0;
END
$$;

-- 1. claim cost ----------------------------------------------------------------------------
BEGIN;
CREATE ROLE t460_alice;
CREATE ROLE t460_bob;
CREATE SCHEMA t460;
CREATE FUNCTION t460.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA t460 TO PUBLIC;
SELECT job_engine.register_handler('t460_h', 't460.echo(jsonb)', queue => 't460_bob_q');

-- Baseline: bob's job, ahead of anything other files left waiting.
SET ROLE t460_bob;
SELECT job_engine.submit('t460_h', '{"n": 0}', priority => -1000000) AS bob0 \gset
RESET ROLE;
SELECT scans AS scans_0, claimed AS claimed_0 FROM pg_temp.one_claim() \gset

-- alice parks 200 blocked queue heads, ahead of bob's next job.
SET ROLE t460_alice;
SELECT job_engine.submit('t460_h', '{"blocker": true}', queue => 't460_blocker',
                         run_at => now() + interval '1 day') AS blocker \gset
SELECT count(job_engine.submit('t460_h', '{}', queue => 't460_park_' || i,
                               priority => -1000001, depends_on => ARRAY[:blocker::bigint]))
  FROM generate_series(1, 200) i;
RESET ROLE;
SET ROLE t460_bob;
SELECT job_engine.submit('t460_h', '{"n": 1}', priority => -1000000) AS bob1 \gset
RESET ROLE;
SELECT scans AS scans_200, claimed AS claimed_200 FROM pg_temp.one_claim() \gset
ROLLBACK;

SELECT plan(9);

SELECT is(:claimed_0::bigint, :bob0::bigint, 'claim cost: the baseline claim takes bob''s job');
SELECT is(:claimed_200::bigint, :bob1::bigint, 'claim cost: with 200 parked queues the claim still takes bob''s job');
SELECT cmp_ok(:scans_200::bigint, '<=', 2 * :scans_0::bigint + 20,
    format('claim cost: one claim scans the jobs table about as often with 200 queues of parked blocked jobs (%s scans) as with none (%s)',
           :scans_200, :scans_0));

-- 2. queues nobody uses ----------------------------------------------------------------------
CALL pg_temp.drop_handlers('t460_');
DROP SCHEMA IF EXISTS t460 CASCADE;
CREATE SCHEMA t460;
CREATE FUNCTION t460.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('t460_h', 't460.echo(jsonb)', queue => 't460_handler_q');
SELECT job_engine.configure_queue('t460_configured', concurrency => 2);
-- Configured with every option at its default: named by its administrator,
-- so no purge may remove it between this and a pause_queue() that follows.
SELECT job_engine.configure_queue('t460_plain');
SELECT count(job_engine.submit('t460_h', '{}', queue => q, run_at => now() + interval '1 day'))
  FROM unnest(ARRAY['t460_scratch', 't460_configured', 't460_handler_q']) q;
-- The three jobs end without running.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 't460: done with it') FROM job_engine.jobs
      WHERE handler = 't460_h' AND state = 'created' ORDER BY id;
END
$$;
SELECT ok(job_engine.purge('0') >= 3, 'queues: purge removes the three finished jobs');
SELECT ok(NOT EXISTS (SELECT FROM job_engine.queues WHERE name = 't460_scratch'),
    'queues: an auto-created queue left without jobs, handler or configuration is removed by purge');
SELECT ok(EXISTS (SELECT FROM job_engine.queues WHERE name = 't460_configured'),
    'queues: a configured queue stays');
SELECT ok(EXISTS (SELECT FROM job_engine.queues WHERE name = 't460_handler_q'),
    'queues: a queue a handler names stays');
SELECT ok(EXISTS (SELECT FROM job_engine.queues WHERE name = 't460_plain' AND configured_at IS NOT NULL),
    'queues: a queue configured with every option at its default stays, and says when it was configured');
SELECT lives_ok($$SELECT job_engine.pause_queue('t460_plain')$$,
    'queues: so pausing it after a purge finds it');

CALL pg_temp.drop_handlers('t460_', '0');

SELECT * FROM finish();

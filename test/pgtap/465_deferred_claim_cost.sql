-- 465_deferred_claim_cost.sql: jobs not yet due, however many and in
-- however many queues, cost another role's claim nothing
-- (docs/architecture.md, "Jobs not yet due").
--
-- alice, a plain role, submits 300 jobs due in a day to each of 20 queues,
-- ahead of bob's job by priority.  Were they candidates, every claim would
-- step into each of those queues and pass over all of its jobs to find
-- none due.  They are deferred instead: out of jobs_claim_idx until due.
-- The cost of one claim is counted as the scans of job_engine._jobs and
-- its indexes, and the blocks of jobs_claim_idx it reads: structural
-- counts, not timings.  Measured in a transaction that is rolled back, so
-- the executors never see these jobs.

SET client_min_messages = warning;

\ir ../fixtures/pgtap_helpers.sql

-- Scans of job_engine._jobs and its indexes, and blocks of jobs_claim_idx
-- read, so far in this transaction.
CREATE FUNCTION pg_temp.claim_reads(OUT scans bigint, OUT blocks bigint) LANGUAGE sql AS $$
    SELECT pg_stat_get_xact_numscans('job_engine._jobs'::regclass)
           + (SELECT sum(pg_stat_get_xact_numscans(i.indexrelid))
                FROM pg_index i WHERE i.indrelid = 'job_engine._jobs'::regclass),
           pg_stat_get_xact_blocks_fetched('job_engine.jobs_claim_idx'::regclass)
$$;

-- What one claim read, and the job it claimed.
CREATE FUNCTION pg_temp.one_claim(OUT scans bigint, OUT blocks bigint, OUT claimed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r0 record := pg_temp.claim_reads();
    r1 record;
BEGIN
    SELECT c.job_id INTO claimed FROM job_engine_internal._claim(pg_backend_pid()) c LIMIT 1;
    r1 := pg_temp.claim_reads();
    scans := r1.scans - r0.scans;
    blocks := r1.blocks - r0.blocks;
END
$$;

BEGIN;
CREATE ROLE t465_alice;
CREATE ROLE t465_bob;
CREATE SCHEMA t465;
CREATE FUNCTION t465.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA t465 TO PUBLIC;
SELECT job_engine.register_handler('t465_h', 't465.echo(jsonb)', queue => 't465_bob_q');

-- Baseline: bob's job, ahead of anything other files left waiting.
SET ROLE t465_bob;
SELECT job_engine.submit('t465_h', '{"n": 0}', priority => -1000000) AS bob0 \gset
RESET ROLE;
SELECT scans AS scans_0, blocks AS blocks_0, claimed AS claimed_0 FROM pg_temp.one_claim() \gset

-- alice: 6,000 jobs due in a day, in 20 queues, ahead of bob's next job.
SET ROLE t465_alice;
SELECT count(job_engine.submit('t465_h', '{}', queue => 't465_later_' || (i % 20),
                               priority => -1000001, run_at => now() + interval '1 day'))
  FROM generate_series(1, 6000) i;
-- and one due already, in a queue of its own, which stays a candidate.
SELECT job_engine.submit('t465_h', '{}', queue => 't465_now', priority => -1000001,
                         run_at => now() - interval '1 second') AS alice_due \gset
RESET ROLE;
SET ROLE t465_bob;
SELECT job_engine.submit('t465_h', '{"n": 1}', priority => -1000000) AS bob1 \gset
RESET ROLE;
SELECT count(*) AS deferred FROM job_engine._jobs
 WHERE queue LIKE 't465_later_%' AND blocked = 't' \gset
SELECT scans AS scans_1, blocks AS blocks_1, claimed AS claimed_1 FROM pg_temp.one_claim() \gset
SELECT scans AS scans_2, blocks AS blocks_2, claimed AS claimed_2 FROM pg_temp.one_claim() \gset
ROLLBACK;

SELECT plan(6);

SELECT is(:claimed_0::bigint, :bob0::bigint, 'baseline: the claim takes bob''s job');
SELECT is(:deferred::bigint, 6000::bigint, 'alice''s jobs due in a day are all deferred');
SELECT is(:claimed_1::bigint, :alice_due::bigint,
    'alice''s job due already is a candidate, and the first by priority');
SELECT is(:claimed_2::bigint, :bob1::bigint, 'with 6,000 jobs not yet due ahead of it, bob''s job is claimed next');
SELECT cmp_ok(:scans_2::bigint, '<=', :scans_0::bigint + 6,
    format('one claim scans the jobs table and its indexes as often with 6,000 jobs not yet due in 20 queues (%s scans) as with none (%s)',
           :scans_2, :scans_0));
SELECT cmp_ok(:blocks_2::bigint, '<=', :blocks_0::bigint + 8,
    format('one claim reads as many blocks of jobs_claim_idx with 6,000 jobs not yet due in 20 queues (%s) as with none (%s)',
           :blocks_2, :blocks_0));

CALL pg_temp.drop_handlers('t465_', '0');

SELECT * FROM finish();

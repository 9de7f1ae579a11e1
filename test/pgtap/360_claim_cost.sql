-- 360_claim_cost.sql: what a claim costs does not depend on how much
-- blocked work other roles park (issue 12 §3), and queues that stay empty
-- do not live for ever.
--
-- alice parks a due job blocked by depends_on at the head of each of 800
-- queues (PUBLIC creates queues by submitting to them), and 2000 more in
-- front of bob's jobs in a queue they share.  bob's jobs still drain, and a
-- claim costs a handful of index scans once the blocked jobs have been seen.
-- The scans are counted with the statistics of the claiming transaction.

SET client_min_messages = warning;

SELECT plan(14);

\ir ../fixtures/pgtap_helpers.sql

CREATE SCHEMA t360;
GRANT USAGE ON SCHEMA t360 TO PUBLIC;
CREATE FUNCTION t360.ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;

CREATE ROLE t360_alice;
CREATE ROLE t360_bob;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t360_h', 't360.ok(jsonb)', queue => 't360_bob');
    PERFORM job_engine.register_handler('t360_blocker', 't360.ok(jsonb)', queue => 't360_hold');
    PERFORM job_engine.pause_queue('t360_hold');
END
$$;

-- Index scans (every index of _jobs) and sequential scans of _jobs in the
-- current transaction so far.
CREATE FUNCTION pg_temp.jobs_scans() RETURNS bigint LANGUAGE sql AS $$
    SELECT pg_stat_get_xact_numscans('job_engine._jobs'::regclass)
           + (SELECT sum(pg_stat_get_xact_numscans(i.indexrelid))
                FROM pg_index i WHERE i.indrelid = 'job_engine._jobs'::regclass)
$$;

-------------------------------------------------------------------------------
-- alice parks blocked work; bob's jobs drain
-------------------------------------------------------------------------------

SET ROLE t360_alice;
SELECT job_engine.submit('t360_blocker', '{}') AS blocker \gset
DO $$
DECLARE
    p bigint := (SELECT max(id) FROM job_engine.jobs WHERE handler = 't360_blocker');
BEGIN
    FOR i IN 1..800 LOOP
        PERFORM job_engine.submit('t360_h', jsonb_build_object('i', i), queue => 't360_q' || i,
                                  depends_on => ARRAY[p]);
    END LOOP;
    FOR i IN 1..2000 LOOP
        PERFORM job_engine.submit('t360_h', jsonb_build_object('i', i), queue => 't360_shared',
                                  priority => -1, depends_on => ARRAY[p]);
    END LOOP;
END
$$;
RESET ROLE;

SET ROLE t360_bob;
SELECT min(id) AS bob_first FROM job_engine.submit_many('t360_h', array_fill('{}'::jsonb, ARRAY[50])) AS s(id) \gset
SELECT min(id) AS bob_shared FROM job_engine.submit_many('t360_h', array_fill('{}'::jsonb, ARRAY[20]),
                                                         queue => 't360_shared') AS s(id) \gset
RESET ROLE;

SELECT ok(pg_temp.poll(format($$(SELECT count(*) = 70 FROM job_engine.jobs
                                  WHERE id >= %s AND owner = 't360_bob' AND state = 'succeeded')$$,
                              :bob_first), 60),
          'bob''s 70 jobs drain while alice parks 2800 blocked jobs in 801 queues');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE owner = 't360_alice' AND state = 'created'),
          2801::bigint, 'alice''s jobs are all still waiting');

-- A first claim sees whatever the executors have not seen yet; the next one
-- is measured.  Nothing is claimable, so nothing is claimed.
SET statement_timeout = '60s';
SELECT is((SELECT count(*) FROM job_engine_internal._claim(pg_backend_pid())), 0::bigint,
          'a claim finds nothing runnable among the blocked jobs');
BEGIN;
SELECT pg_temp.jobs_scans() AS scans_before, clock_timestamp() AS t_before \gset
SELECT is((SELECT count(*) FROM job_engine_internal._claim(pg_backend_pid())), 0::bigint,
          'the next claim finds nothing either');
SELECT cmp_ok(pg_temp.jobs_scans() - :scans_before, '<', 50::bigint,
              'it costs a handful of index scans, not one per blocked queue or job');
SELECT cmp_ok(clock_timestamp() - :'t_before'::timestamptz, '<', interval '1 second',
              '... and well under a second');
COMMIT;
RESET statement_timeout;

-------------------------------------------------------------------------------
-- Queues that stay empty
-------------------------------------------------------------------------------

-- alice's blocked jobs all end aborted with their prerequisite; purged, the
-- 801 queues alice created are gone with them.
SELECT is(job_engine.abort(:blocker, 't360: release'), true, 'alice''s prerequisite is aborted');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE owner = 't360_alice' AND state = 'aborted'),
          2801::bigint, '... and with it the 2800 jobs waiting for it');

SELECT job_engine.configure_queue('t360_conf', concurrency => 2) IS NULL AS configured \gset
SET ROLE t360_alice;
SELECT job_engine.submit('t360_h', '{}', queue => 't360_conf') AS in_conf \gset
SELECT job_engine.submit('t360_h', '{}', queue => 't360_paused', run_at => now() + interval '1 day') AS in_paused \gset
RESET ROLE;
SELECT job_engine.pause_queue('t360_paused') IS NULL AS paused \gset
SELECT job_engine.abort(:in_paused, 't360: done') AS aborted \gset
SET ROLE t360_bob;
SELECT job_engine.submit('t360_h', '{}', queue => 't360_q1') AS bob_in_q1 \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:bob_in_q1, 'succeeded'), 'succeeded', 'bob''s job in one of alice''s queues ran');
SELECT is(pg_temp.await_state(:in_conf, 'succeeded'), 'succeeded', 'alice''s job in a configured queue ran');

SET ROLE t360_alice;
SELECT job_engine.purge('0') > 0 AS purged \gset
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.queues WHERE name LIKE 't360\_q%' OR name = 't360_shared'),
          2::bigint, 'purge removes the queues alice created, left without jobs, but those with bob''s jobs');
SELECT is((SELECT array_agg(name ORDER BY name) FROM job_engine.queues
            WHERE name IN ('t360_shared', 't360_conf', 't360_paused', 't360_bob', 't360_hold', 't360_q1')),
          ARRAY['t360_bob', 't360_conf', 't360_hold', 't360_paused', 't360_q1', 't360_shared'],
          'configured, paused and handlers'' queues stay, and so do those with another role''s jobs');
SET ROLE t360_bob;
SELECT ok(job_engine.purge('0') > 0, 'the other role purges its finished jobs');
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.queues WHERE name LIKE 't360\_q%' OR name = 't360_shared'),
          0::bigint, '... and with them the last queues alice created');

-------------------------------------------------------------------------------
-- Clean up
-------------------------------------------------------------------------------

CALL pg_temp.drop_handlers('t360_');
DELETE FROM job_engine.queues WHERE name LIKE 't360\_%';
DROP ROLE t360_alice;
DROP ROLE t360_bob;

SELECT * FROM finish();

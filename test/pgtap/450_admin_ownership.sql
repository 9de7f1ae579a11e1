-- 450_admin_ownership.sql: administration changes only objects of roles the
-- caller belongs to (issue 12 §2, second bullet).  Holding EXECUTE on
-- register_handler (as docs/reference.md suggests for an application admin)
-- must not let a role take over a handler another role registered: its
-- queued jobs would run the new function as the old owner.
--
-- One transaction, rolled back: no job here ever runs.
BEGIN;
SET client_min_messages = warning;
SELECT plan(14);

CREATE SCHEMA t450;
CREATE FUNCTION t450.nightly(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION t450.bob_work(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA t450 TO PUBLIC;

CREATE ROLE t450_alice;
CREATE ROLE t450_bob;
CREATE ROLE t450_team;
CREATE ROLE t450_team_member IN ROLE t450_team;
-- An application admin: may register and unregister handlers.
GRANT EXECUTE ON FUNCTION job_engine.register_handler, job_engine.unregister_handler,
                          job_engine.register_c_handler
   TO t450_alice, t450_bob, t450_team, t450_team_member;
-- Granted explicitly, so that these fixtures work whatever PUBLIC may call.
GRANT EXECUTE ON FUNCTION job_engine.subscribe, job_engine.unsubscribe TO t450_alice, t450_bob;
GRANT CREATE ON SCHEMA t450 TO t450_alice;

SET ROLE t450_alice;
-- alice's own function: anything she likes, run as whoever owns the job.
CREATE FUNCTION t450.evil(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"evil": true}'::jsonb $$;
RESET ROLE;

-- `nightly` belongs to the superuser running this file; a queued job of it.
SELECT job_engine.register_handler('t450_nightly', 't450.nightly(jsonb)', queue => 't450_q');
SELECT job_engine.submit('t450_nightly', '{}', run_at => now() + interval '1 day') AS su_job \gset
SET ROLE t450_bob;
SELECT job_engine.register_handler('t450_bob_h', 't450.bob_work(jsonb)', queue => 't450_q');
SELECT job_engine.submit('t450_bob_h', '{}', run_at => now() + interval '1 day') AS bob_job \gset
SELECT job_engine.subscribe('t450.ev', 't450_bob_h') AS bob_sub \gset
RESET ROLE;
SET ROLE t450_team;
SELECT job_engine.register_handler('t450_team_h', 't450.nightly(jsonb)', queue => 't450_q');
RESET ROLE;

-- The handlers as they are now, to compare after the refused calls.
CREATE TEMP TABLE before AS SELECT name, fn::text, queue, timeout, owner FROM job_engine.handlers
 WHERE name LIKE 't450\_%';
GRANT SELECT ON before TO PUBLIC;

-- register_handler over another role's handler ---------------------------------------
SET ROLE t450_alice;
SELECT throws_ok($$SELECT job_engine.register_handler('t450_nightly', 't450.evil(jsonb)')$$,
    '42501', NULL,
    'register_handler: a role holding EXECUTE on it cannot re-register a superuser''s handler to its own function (42501)');
SELECT throws_ok($$SELECT job_engine.register_handler('t450_nightly', 't450.nightly(jsonb)',
                                                       timeout => '1 ms', max_attempts => 1)$$,
    '42501', NULL,
    'register_handler: ... nor change its options, keeping the function (42501)');
SELECT throws_ok($$SELECT job_engine.register_handler('t450_bob_h', 't450.evil(jsonb)')$$,
    '42501', NULL,
    'register_handler: ... nor take over another ordinary role''s handler (42501)');
RESET ROLE;
SELECT results_eq($$SELECT name, fn::text, queue, timeout, owner::regrole::text FROM job_engine.handlers
                     WHERE name IN ('t450_nightly', 't450_bob_h') ORDER BY name$$,
    $$VALUES ('t450_bob_h', 't450.bob_work(jsonb)', 't450_q', NULL::interval, 't450_bob'),
             ('t450_nightly', 't450.nightly(jsonb)', 't450_q', NULL::interval, current_user::text COLLATE "default")$$,
    'register_handler: the other roles'' handlers keep their function, options and owner');

-- unregister_handler / register_c_handler -------------------------------------------------
SET ROLE t450_alice;
SELECT throws_ok($$SELECT job_engine.unregister_handler('t450_team_h')$$, '42501', NULL,
    'unregister_handler: a non-member cannot remove another role''s handler (42501)');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t450_nightly', '$libdir/job_engine', 'job_engine_gate')$$,
    '42501', NULL,
    'register_c_handler: a non-superuser holding EXECUTE cannot replace a handler with native code (42501)');
RESET ROLE;

-- members of the owner role may ----------------------------------------------------------
SET ROLE t450_team_member;
SELECT lives_ok($$SELECT job_engine.register_handler('t450_team_h', 't450.nightly(jsonb)', queue => 't450_q2')$$,
    'register_handler: a member of the owner role may re-register its handler');
RESET ROLE;

-- subscriptions and jobs of other roles -----------------------------------------------------
SET ROLE t450_alice;
SELECT throws_ok(format($$SELECT job_engine.unsubscribe(%s)$$, :bob_sub), '42501', NULL,
    'unsubscribe: a role cannot remove another role''s subscription (42501)');
SELECT throws_ok(format($$SELECT job_engine.resubmit(%s)$$, :bob_job), 'P0002', NULL,
    'resubmit: another role''s job does not exist for a role (P0002)');
SELECT throws_ok(format($$SELECT job_engine.wait(%s, '0')$$, :su_job), 'P0002', NULL,
    'wait: another role''s job does not exist for a role (P0002)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'mine now')$$, :su_job), 'P0002', NULL,
    'abort: a role cannot abort a superuser''s job (P0002)');
RESET ROLE;

SELECT is((SELECT count(*) FROM job_engine.subscriptions WHERE id = :bob_sub), 1::bigint,
    'unsubscribe: bob''s subscription is still there');
SELECT is(ARRAY(SELECT state::text FROM job_engine.jobs WHERE id IN (:su_job, :bob_job) ORDER BY id),
    ARRAY['created', 'created'],
    'the other roles'' jobs are untouched');
SELECT is((SELECT count(*) FROM job_engine.handlers h JOIN before b USING (name)
            WHERE b.name <> 't450_team_h'
              AND (h.fn::text, h.queue, h.timeout, h.owner) IS DISTINCT FROM (b.fn, b.queue, b.timeout, b.owner)),
    0::bigint, 'no handler of another role changed');

SELECT * FROM finish();
ROLLBACK;

-- 340_owner_scope.sql: one role's jobs do not steer another's (issue 12 §3).
--
-- Ordering keys belong to the job's owner, like idempotency keys: a job
-- waits only for earlier unfinished jobs of its own owner with that key, so
-- no role can hold another's jobs back or learn through a key that another
-- role's job exists.  depends_on naming a job the submitter may not see is
-- refused exactly like an unknown id.  And a plain role can take no lock
-- on the extension's tables beyond ACCESS SHARE: every lock the engine's
-- bookkeeping could wait on goes through the extension's own functions.

SET client_min_messages = warning;

SELECT plan(19);

\ir ../fixtures/pgtap_helpers.sql

CREATE SCHEMA t340;
GRANT USAGE ON SCHEMA t340 TO PUBLIC;
CREATE FUNCTION t340.rec(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;

CREATE ROLE t340_alice;
CREATE ROLE t340_bob;
CREATE ROLE t340_alice_m IN ROLE t340_alice;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t340_h', 't340.rec(jsonb)', queue => 't340');
    PERFORM job_engine.register_handler('t340_held', 't340.rec(jsonb)', queue => 't340_held');
    PERFORM job_engine.pause_queue('t340_held');
END
$$;

-------------------------------------------------------------------------------
-- Ordering keys are scoped to the owner
-------------------------------------------------------------------------------

-- alice parks a job with key order-7 for 99 years.
SET ROLE t340_alice;
SELECT job_engine.submit('t340_h', '{"who": "alice", "tag": "late"}', ordering_key => 'order-7',
                         run_at => now() + interval '99 years') AS a_late \gset
RESET ROLE;

SET ROLE t340_bob;
SELECT job_engine.submit('t340_h', '{"who": "bob"}', ordering_key => 'order-7') AS b_order \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:b_order, 'succeeded', 15), 'succeeded',
          'another role''s job with the same ordering key, due in 99 years, does not hold a job back');

-- bob has an unfinished job with key invoice-42 (its queue is paused); the
-- state of alice's job with that key must not tell her so.
SET ROLE t340_bob;
SELECT job_engine.submit('t340_held', '{"who": "bob"}', ordering_key => 'invoice-42') AS b_invoice \gset
RESET ROLE;
SET ROLE t340_alice;
SELECT job_engine.submit('t340_h', '{"who": "alice"}', ordering_key => 'invoice-42') AS a_invoice \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:a_invoice, 'succeeded', 15), 'succeeded',
          'a job runs although another role has an unfinished job with its ordering key (no existence oracle)');

-- A member of alice is a role of its own: its jobs are its own line.
SET ROLE t340_alice_m;
SELECT job_engine.submit('t340_h', '{"who": "alice_m"}', ordering_key => 'order-7') AS m_order \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:m_order, 'succeeded', 15), 'succeeded',
          'keys belong to the owning role: a member role''s job is not held by the role''s job');

-- Within one owner the key still orders jobs.
SET ROLE t340_alice;
SELECT job_engine.submit('t340_h', '{"who": "alice", "tag": "second"}', ordering_key => 'order-7') AS a_second \gset
SELECT job_engine.submit('t340_h', '{"who": "alice", "tag": "canary"}') AS a_canary \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:a_canary, 'succeeded', 15), 'succeeded', 'a job of the owner without a key runs');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :a_second), 'created',
          'the owner''s later job with the key waits for the owner''s earlier one');
SELECT is(job_engine.abort(:a_late, 't340: no longer needed'), true, 'the owner''s earlier job is aborted');
SELECT is(pg_temp.await_state(:a_second, 'succeeded', 15), 'succeeded', '... and the owner''s later job with the key runs');

-------------------------------------------------------------------------------
-- depends_on: a job the submitter may not see is an unknown id
-------------------------------------------------------------------------------

SET ROLE t340_alice;
SELECT job_engine.submit('t340_held', '{"who": "alice", "tag": "prerequisite"}') AS a_pre \gset
RESET ROLE;
SELECT max(id) + 1000000 AS unknown FROM job_engine._jobs \gset

SET ROLE t340_bob;
SELECT throws_ok(format($$SELECT job_engine.submit('t340_h', '{}', depends_on => ARRAY[%s]::bigint[])$$, :unknown),
                 '23503', format('job %s named in "depends_on" does not exist', :unknown),
                 'depends_on an unknown job is 23503');
SELECT throws_ok(format($$SELECT job_engine.submit('t340_h', '{}', depends_on => ARRAY[%s]::bigint[])$$, :a_pre),
                 '23503', format('job %s named in "depends_on" does not exist', :a_pre),
                 'depends_on a job of a role the submitter is not a member of: the same error as an unknown job');
RESET ROLE;
SET ROLE t340_alice_m;
SELECT lives_ok(format($$SELECT job_engine.submit('t340_held', '{}', depends_on => ARRAY[%s]::bigint[])$$, :a_pre),
                'a member of the owner may depend on the owner''s job (the visibility rule of abort)');
RESET ROLE;

-------------------------------------------------------------------------------
-- Locks a plain role can take on the extension's relations
-------------------------------------------------------------------------------

SET ROLE t340_bob;
SELECT lives_ok($$LOCK TABLE job_engine.queues, job_engine.handlers, job_engine.subscriptions IN ACCESS SHARE MODE$$,
                'a plain role may take ACCESS SHARE (what SELECT takes) on the readable tables');
SELECT throws_ok($$LOCK TABLE job_engine.queues IN ROW SHARE MODE$$, '42501', NULL,
                 'no stronger table lock on queues (42501)');
SELECT throws_ok($$LOCK TABLE job_engine.handlers IN ROW EXCLUSIVE MODE$$, '42501', NULL,
                 'no stronger table lock on handlers (42501)');
SELECT throws_ok($$LOCK TABLE job_engine.jobs IN SHARE MODE$$, '42501', NULL,
                 'no stronger lock through the jobs view (42501)');
SELECT throws_ok($$LOCK TABLE job_engine._jobs IN ACCESS SHARE MODE$$, '42501', NULL,
                 'no lock at all on the jobs table (42501)');
SELECT throws_ok($$SELECT 1 FROM job_engine.queues FOR KEY SHARE$$, '42501', NULL,
                 'no row lock on queues (42501)');
SELECT throws_ok($$SELECT 1 FROM job_engine.handlers FOR KEY SHARE$$, '42501', NULL,
                 'no row lock on handlers (42501)');
SELECT throws_ok($$SELECT 1 FROM job_engine.subscriptions FOR KEY SHARE$$, '42501', NULL,
                 'no row lock on subscriptions (42501)');
SELECT throws_ok($$SELECT 1 FROM job_engine.jobs FOR KEY SHARE$$, '42501', NULL,
                 'no row lock through the jobs view (42501)');
RESET ROLE;

-------------------------------------------------------------------------------
-- Clean up
-------------------------------------------------------------------------------

DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 340_owner_scope') FROM job_engine._jobs
      WHERE handler LIKE 't340\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;
CALL pg_temp.drop_handlers('t340_');
DROP ROLE t340_alice_m;
DROP ROLE t340_alice;
DROP ROLE t340_bob;

SELECT * FROM finish();

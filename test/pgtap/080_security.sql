-- Security (docs/architecture.md §7): what a role without special privileges can see and
-- do.  One transaction, rolled back: no job here ever runs.
BEGIN;
SELECT plan(42);

CREATE SCHEMA tap_sec;
CREATE FUNCTION tap_sec.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
-- Records what it is shown: a cheap function in a WHERE clause is evaluated
-- early, so it sees every row a view does not hide behind a barrier.
CREATE TABLE tap_sec.seen (v text);
GRANT USAGE ON SCHEMA tap_sec TO PUBLIC;
GRANT INSERT, SELECT ON tap_sec.seen TO PUBLIC;
CREATE FUNCTION tap_sec.peek(v anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
AS $$ BEGIN INSERT INTO tap_sec.seen VALUES (v::text); RETURN true; END $$;

CREATE ROLE tap_sec_a;
CREATE ROLE tap_sec_b;
CREATE ROLE tap_sec_a_member IN ROLE tap_sec_a;

SELECT job_engine.register_handler('tap_sec_h', 'tap_sec.ok(jsonb)') IS NULL AS registered \gset

SET ROLE tap_sec_a;
SELECT job_engine.submit('tap_sec_h', '{"secret": "of a"}', run_at => now() + interval '1 day') AS a_job \gset
SELECT job_engine.submit('tap_sec_h', '{"secret": "of a, again"}', run_at => now() + interval '1 day') AS a_job2 \gset
SELECT job_engine.publish('tap_sec.event', '{"secret": "event of a"}') AS a_event \gset
RESET ROLE;
SET ROLE tap_sec_b;
SELECT job_engine.submit('tap_sec_h', '{"mine": "b"}', run_at => now() + interval '1 day') AS b_job \gset
RESET ROLE;
-- an attempt row of a's job, as an executor would have written it
INSERT INTO job_engine._attempts (job_id, attempt, outcome, message)
VALUES (:a_job, 1, 'failed', 'attempt secret of a');

-- visibility -------------------------------------------------------------------------
SET ROLE tap_sec_b;
SELECT results_eq($$SELECT id FROM job_engine.jobs WHERE handler = 'tap_sec_h'$$,
    ARRAY[:b_job::bigint], 'a role sees only its own jobs in jobs');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :a_job), 0::bigint,
    'a role does not see the attempts of another role''s job');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE tap_sec.peek(args)), 1::bigint,
    'a function in WHERE is shown the role''s job ...');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE tap_sec.peek(message)), 0::bigint,
    '... and no attempt of another role');
SELECT is((SELECT count(*) FROM job_engine.events WHERE id = :a_event), 0::bigint,
    'a role does not see another role''s event');
SELECT is((SELECT count(*) FROM job_engine.events WHERE tap_sec.peek(payload)), 0::bigint,
    '... not even through a function in WHERE');
RESET ROLE;
SELECT is((SELECT count(*) FROM tap_sec.seen WHERE v LIKE '%of a%'), 0::bigint,
    'a function in WHERE never sees the args, errors or events of another role');

SET ROLE tap_sec_a;
SELECT results_eq($$SELECT id FROM job_engine.jobs WHERE handler = 'tap_sec_h' ORDER BY id$$,
    ARRAY[:a_job, :a_job2]::bigint[], 'the other role sees only its own jobs');
SELECT is((SELECT payload FROM job_engine.events WHERE id = :a_event), '{"secret": "event of a"}'::jsonb,
    'and its own event');
SELECT is((SELECT message FROM job_engine.attempts WHERE job_id = :a_job), 'attempt secret of a',
    'and the attempts of its jobs');
RESET ROLE;
SET ROLE tap_sec_a_member;
SELECT results_eq($$SELECT id FROM job_engine.jobs WHERE handler = 'tap_sec_h' ORDER BY id$$,
    ARRAY[:a_job, :a_job2]::bigint[], 'a member of a role sees that role''s jobs');
RESET ROLE;
SELECT results_eq($$SELECT id FROM job_engine.jobs WHERE handler = 'tap_sec_h' ORDER BY id$$,
    ARRAY[:a_job, :a_job2, :b_job]::bigint[], 'a superuser sees every job');
SELECT is(ARRAY(SELECT owner::text FROM job_engine.jobs WHERE handler = 'tap_sec_h' ORDER BY id),
    ARRAY['tap_sec_a', 'tap_sec_a', 'tap_sec_b'], 'each job is owned by the role that submitted it');

-- no direct writes ------------------------------------------------------------------------
SET ROLE tap_sec_b;
SELECT throws_ok($$SELECT * FROM job_engine._jobs$$, '42501', NULL,
    'the jobs table cannot be read directly (42501)');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id = :a_job), 0::bigint,
    'read directly, the attempts table hides the attempts of another role''s job too');
SELECT throws_ok($$INSERT INTO job_engine._jobs (handler, queue, args, max_attempts, run_at, owner, correlation_id)
                   VALUES ('tap_sec_h', 'default', '{}', 1, now(), 1, gen_random_uuid())$$, '42501', NULL,
    'a role cannot insert jobs directly (42501)');
SELECT throws_ok(format($$UPDATE job_engine._jobs SET priority = 1 WHERE id = %s$$, :b_job), '42501', NULL,
    'a role cannot update its own job directly (42501)');
SELECT throws_ok(format($$DELETE FROM job_engine._jobs WHERE id = %s$$, :b_job), '42501', NULL,
    'a role cannot delete jobs directly (42501)');
SELECT throws_ok($$TRUNCATE job_engine._jobs CASCADE$$, '42501', NULL,
    'a role cannot truncate the jobs table (42501)');
SELECT throws_ok(format($$INSERT INTO job_engine._attempts (job_id, attempt) VALUES (%s, 1)$$, :b_job), '42501', NULL,
    'a role cannot insert attempts directly (42501)');
SELECT throws_ok($$UPDATE job_engine._attempts SET message = 'x'$$, '42501', NULL,
    'a role cannot update attempts directly (42501)');
SELECT throws_ok(format($$UPDATE job_engine.jobs SET priority = 1 WHERE id = %s$$, :b_job), '42501', NULL,
    'a role cannot update through the jobs view (42501)');
SELECT throws_ok(format($$DELETE FROM job_engine.jobs WHERE id = %s$$, :b_job), '42501', NULL,
    'a role cannot delete through the jobs view (42501)');
SELECT throws_ok($$DELETE FROM job_engine.attempts$$, NULL, NULL,
    'a role cannot delete through the attempts view');
SELECT throws_ok($$UPDATE job_engine.handlers SET max_attempts = 100$$, '42501', NULL,
    'a role cannot change handlers directly (42501)');
SELECT throws_ok($$INSERT INTO job_engine.handlers (name, fn, queue, max_attempts, backoff_base, backoff_max, owner)
                   VALUES ('tap_sec_evil', 'tap_sec.ok(jsonb)', 'default', 1, '0', '0', 10)$$, '42501', NULL,
    'a role cannot add handlers directly (42501)');
SELECT throws_ok($$UPDATE job_engine.queues SET paused = true$$, '42501', NULL,
    'a role cannot change queues directly (42501)');
SELECT throws_ok($$INSERT INTO job_engine._events (event_type, payload, correlation_id, publisher)
                   VALUES ('x', '{}', gen_random_uuid(), 10)$$, '42501', NULL,
    'a role cannot insert events directly (42501)');
SELECT throws_ok($$DELETE FROM job_engine.subscriptions$$, '42501', NULL,
    'a role cannot change subscriptions directly (42501)');

-- internal functions -----------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine_internal._submit(10, 'tap_sec_h', '{}', NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL)$$,
    '42501', NULL, 'a role cannot call the internal submit, passing another caller (42501)');
SELECT throws_ok(format($$SELECT job_engine_internal._record_success(%s, 1, '{}')$$, :b_job),
    '42501', NULL, 'a role cannot record an outcome (42501)');
SELECT throws_ok($$SELECT * FROM job_engine_internal._claim(pg_backend_pid())$$,
    '42501', NULL, 'a role cannot claim jobs (42501)');
SELECT throws_ok(format($$SELECT job_engine_internal._abort(10, %s, 'x')$$, :b_job),
    '42501', NULL, 'a role cannot call the internal abort (42501)');
RESET ROLE;
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'job_engine_internal'::regnamespace
                   AND has_function_privilege('tap_sec_b', p.oid, 'EXECUTE')
                   AND p.proname NOT IN ('_workers', '_prom_label', '_member_roles')
                 ORDER BY 1),
    '{}'::text[], 'no internal function that writes or bypasses checks is executable by PUBLIC');

-- administrative functions are not granted to PUBLIC ------------------------------------------
SELECT ok(NOT has_function_privilege('tap_sec_b', p.oid, 'EXECUTE'),
          format('%s is not executable by PUBLIC', p.proname))
  FROM pg_proc p
 WHERE p.pronamespace = 'job_engine'::regnamespace
   AND p.proname IN ('register_handler', 'register_c_handler')
 ORDER BY p.proname;
SET ROLE tap_sec_b;
SELECT throws_ok($$SELECT job_engine.register_handler('tap_sec_x', 'tap_sec.ok(jsonb)')$$,
    '42501', NULL, 'a plain role cannot register a handler (42501)');
RESET ROLE;

-- the state of the jobs is unchanged by all of the above
SELECT results_eq($$SELECT state::text, priority FROM job_engine.jobs WHERE handler = 'tap_sec_h' ORDER BY id$$,
    $$VALUES ('created', 0), ('created', 0), ('created', 0)$$, 'the refused writes changed no job');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id = :a_job), 1::bigint,
    'and no attempt');

-- abort follows ownership too
SET ROLE tap_sec_b;
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'not mine')$$, :a_job),
    'P0002', NULL, 'a role cannot abort another role''s job: it does not exist for it (P0002)');
SELECT is(job_engine.purge('0'), 0::bigint, 'a role purges nothing of another role');
RESET ROLE;
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :a_job), 'created',
    'the other role''s job is untouched');

SELECT * FROM finish();
ROLLBACK;

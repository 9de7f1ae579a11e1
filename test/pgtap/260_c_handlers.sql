-- 260_c_handlers.sql: register_c_handler and native handlers
-- (docs/reference.md, register_c_handler and C API for native handlers), with
-- the example module $libdir/job_engine_example.

SET client_min_messages = warning;

SELECT plan(39);

\ir ../fixtures/pgtap_helpers.sql

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je260_plain') THEN
        CREATE ROLE je260_plain;
    END IF;
END
$$;

-------------------------------------------------------------------------------
-- hello_handler
-------------------------------------------------------------------------------

SELECT lives_ok($$SELECT job_engine.register_c_handler('t260_hello', '$libdir/job_engine_example',
                                                       'hello_handler', queue => 't260')$$,
                'register_c_handler: a superuser registers hello_handler');
SELECT is((SELECT (fn, library, symbol, queue)::text FROM job_engine.handlers WHERE name = 't260_hello'),
          (NULL::regprocedure, '$libdir/job_engine_example', 'hello_handler', 't260')::text,
          'register_c_handler: the handler names the library and symbol, no SQL function');

SELECT job_engine.submit('t260_hello', '{"name": "pgtap"}') AS hello \gset
SELECT is(pg_temp.await_state(:hello, 'succeeded'), 'succeeded', 'hello_handler: the job succeeds');
SELECT is((SELECT result ->> 'greeting' FROM job_engine.jobs WHERE id = :hello), 'hello pgtap',
          'hello_handler: the result holds the greeting made from args');
SELECT is((SELECT result -> 'attempt' FROM job_engine.jobs WHERE id = :hello), '1'::jsonb,
          'hello_handler: the result holds the attempt number from the context');
SELECT is((SELECT result -> 'job_id' FROM job_engine.jobs WHERE id = :hello), to_jsonb(:hello::bigint),
          'hello_handler: the context carried the job id');
SELECT is((SELECT array_agg(outcome::text) FROM job_engine.attempts WHERE job_id = :hello), ARRAY['succeeded'],
          'hello_handler: one successful attempt');

SELECT job_engine.submit('t260_hello', '{}') AS hello2 \gset
SELECT is(pg_temp.await_state(:hello2, 'succeeded'), 'succeeded', 'hello_handler: a second job succeeds');
SELECT is((SELECT result ->> 'greeting' FROM job_engine.jobs WHERE id = :hello2), 'hello world',
          'hello_handler: without a name it greets the world');

-------------------------------------------------------------------------------
-- flaky_handler: an error from C is recorded and retried
-------------------------------------------------------------------------------

SELECT lives_ok($$SELECT job_engine.register_c_handler('t260_flaky', '$libdir/job_engine_example',
                                                       'flaky_handler', queue => 't260', max_attempts => 3,
                                                       backoff_base => '10 ms', backoff_max => '10 ms')$$,
                'register_c_handler: flaky_handler');
SELECT job_engine.submit('t260_flaky', '{}') AS flaky \gset
SELECT is(pg_temp.await_state(:flaky, 'succeeded'), 'succeeded', 'flaky_handler: the job succeeds in the end');
SELECT is((SELECT attempts FROM job_engine.jobs WHERE id = :flaky), 2, 'flaky_handler: after 2 attempts');
SELECT is((SELECT (outcome, sqlstate, message, detail, hint)::text FROM job_engine.attempts
            WHERE job_id = :flaky AND attempt = 1),
          ('failed'::job_engine.attempt_outcome, '40001', 'flaky_handler fails its first attempt',
           format('Job %s.', :flaky), 'The retry will succeed.')::text,
          'flaky_handler: the first attempt''s error is recorded in full (SQLSTATE 40001, message, detail, hint)');
SELECT is((SELECT outcome::text FROM job_engine.attempts WHERE job_id = :flaky AND attempt = 2), 'succeeded',
          'flaky_handler: the second attempt succeeded');
SELECT is((SELECT result FROM job_engine.jobs WHERE id = :flaky), '{"ok": true}'::jsonb,
          'flaky_handler: the result of the successful attempt is stored');

-------------------------------------------------------------------------------
-- busy_handler: the handler timeout and abort() reach native code
-------------------------------------------------------------------------------

SELECT lives_ok($$SELECT job_engine.register_c_handler('t260_busy', '$libdir/job_engine_example',
                                                       'busy_handler', queue => 't260', max_attempts => 1,
                                                       timeout => '200 ms')$$,
                'register_c_handler: busy_handler with a 200 ms timeout');
SELECT job_engine.submit('t260_busy', '{"ms": 5000}') AS busy \gset
SELECT is(pg_temp.await_state(:busy, 'failed'), 'failed', 'busy_handler over its timeout: the job fails');
SELECT is((SELECT sqlstate FROM job_engine.attempts WHERE job_id = :busy AND attempt = 1), '57014',
          'busy_handler over its timeout: the attempt failed with 57014');
SELECT cmp_ok((SELECT finished_at - started_at FROM job_engine.attempts WHERE job_id = :busy AND attempt = 1),
              '<', interval '4 seconds', 'busy_handler over its timeout: stopped long before its 5 s of work');

SELECT job_engine.submit('t260_busy', '{"ms": 20}') AS quick \gset
SELECT is(pg_temp.await_state(:quick, 'succeeded'), 'succeeded', 'busy_handler within its timeout: succeeds');
SELECT is((SELECT result FROM job_engine.jobs WHERE id = :quick), '{"done": true}'::jsonb,
          'busy_handler within its timeout: its result is stored');

SELECT lives_ok($$SELECT job_engine.register_c_handler('t260_busy_long', '$libdir/job_engine_example',
                                                       'busy_handler', queue => 't260', max_attempts => 3)$$,
                'register_c_handler: busy_handler without a timeout');
SELECT job_engine.submit('t260_busy_long', '{"ms": 30000}') AS long \gset
SELECT ok(pg_temp.poll(format('EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :long)),
          'abort of a native handler: the job is running');
SELECT is(job_engine.abort(:long, 't260 stop'), true, 'abort of a native handler: abort returns true');
SELECT ok(pg_temp.poll(format('NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :long), 10),
          'abort of a native handler: the handler checks for cancel and stops');
SELECT is((SELECT (j.state, j.attempts, a.outcome)::text FROM job_engine.jobs j
             JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = :long),
          ('aborted'::job_engine.job_state, 1, 'aborted'::job_engine.attempt_outcome)::text,
          'abort of a native handler: one attempt, aborted, not retried');

-------------------------------------------------------------------------------
-- Bad input and permissions
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', '$libdir/t260_no_such_library', 'hello_handler')$$,
                 '58P01', NULL, 'register_c_handler: a library that does not exist is 58P01');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', '$libdir/job_engine_example', 't260_no_such_symbol')$$,
                 '42883', NULL, 'register_c_handler: a symbol that does not exist is 42883');
-- A function that exists but is not declared with JOB_ENGINE_HANDLER() would
-- be called with the wrong arguments and crash the executor.
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', '$libdir/job_engine', 'job_engine_gate')$$,
                 '42883', 'symbol "job_engine_gate" of library "$libdir/job_engine" is not a job_engine handler',
                 'register_c_handler: an exported function not declared as a handler is 42883');
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 't260_bad'), 0::bigint,
          'register_c_handler: nothing registered for the refused symbols');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', NULL, 'hello_handler')$$,
                 '22004', NULL, 'register_c_handler: NULL library is 22004');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', '$libdir/job_engine_example', '')$$,
                 '22023', NULL, 'register_c_handler: empty symbol is 22023');
SELECT throws_ok($$SELECT job_engine.register_c_handler(NULL, '$libdir/job_engine_example', 'hello_handler')$$,
                 '22004', NULL, 'register_c_handler: NULL name is 22004');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_bad', '$libdir/job_engine_example', 'hello_handler',
                                                        timeout => '-1 second')$$,
                 '22023', NULL, 'register_c_handler: a negative timeout is 22023');
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.handlers WHERE name = 't260_bad'),
          'register_c_handler: nothing was registered by the refused calls');

SET ROLE je260_plain;
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_mine', '$libdir/job_engine_example', 'hello_handler')$$,
                 '42501', NULL, 'register_c_handler: a plain role gets 42501');
RESET ROLE;
GRANT EXECUTE ON FUNCTION job_engine.register_c_handler(text, text, text, text, integer, interval,
                                                        interval, interval, text[], text) TO je260_plain;
SET ROLE je260_plain;
SELECT throws_ok($$SELECT job_engine.register_c_handler('t260_mine', '$libdir/job_engine_example', 'hello_handler')$$,
                 '42501', NULL, 'register_c_handler: superuser only, even with EXECUTE granted (42501)');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION job_engine.register_c_handler(text, text, text, text, integer, interval,
                                                         interval, interval, text[], text) FROM je260_plain;
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.handlers WHERE name = 't260_mine'),
          'register_c_handler: the plain role registered nothing');

SELECT lives_ok($$SELECT job_engine.unregister_handler('t260_hello')$$,
                'unregister_handler: a C handler without unfinished jobs can be removed');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 260_c_handlers') FROM job_engine._jobs
      WHERE handler LIKE 't260\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

-- submit(): every bad input and its SQLSTATE, and the defaults a valid
-- submit applies.  One transaction, rolled back: jobs only run after their
-- submitting transaction commits, so none of these ever runs.
BEGIN;
SELECT plan(49);

CREATE SCHEMA tap_submit;
CREATE FUNCTION tap_submit.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_submit.private(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
REVOKE EXECUTE ON FUNCTION tap_submit.private(jsonb) FROM PUBLIC;
CREATE TABLE tap_submit.victim (x integer);
CREATE ROLE tap_submit_user;

SELECT job_engine.register_handler('tap_submit_h', 'tap_submit.ok(jsonb)',
    queue => 'tap_submit_q', max_attempts => 5) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_submit_private', 'tap_submit.private(jsonb)') IS NULL AS registered \gset

-- handler ----------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit(NULL)$$,
    '22004', NULL, 'handler NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit('')$$,
    '22023', NULL, 'empty handler is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('   ')$$,
    '22023', NULL, 'blank handler is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_missing')$$,
    '42883', NULL, 'an unknown handler is refused (42883)');
SELECT throws_ok($$SELECT job_engine.submit('TAP_SUBMIT_H')$$,
    '42883', NULL, 'handler names are case-sensitive (42883)');
SELECT throws_ok($$SELECT job_engine.submit('x''); DROP TABLE tap_submit.victim; --')$$,
    '42883', NULL, 'an unknown handler name holding SQL is refused (42883)');
SELECT has_table('tap_submit', 'victim', 'the SQL in the handler name was never executed');

-- args, queue, priority ----------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', NULL)$$,
    '22004', NULL, 'args NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', '{}', queue => '')$$,
    '22023', NULL, 'empty queue is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', '{}', queue => ' ')$$,
    '22023', NULL, 'blank queue is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', '{}', priority => NULL)$$,
    '22004', NULL, 'priority NULL is refused (22004)');

-- run_at -------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', run_at => 'infinity')$$,
    '22008', NULL, 'run_at infinity is refused (22008)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', run_at => '-infinity')$$,
    '22008', NULL, 'run_at -infinity is refused (22008)');

-- max_attempts ---------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', max_attempts => 0)$$,
    '22023', NULL, 'max_attempts 0 is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', max_attempts => -1)$$,
    '22023', NULL, 'negative max_attempts is refused (22023)');

-- idempotency_key, ordering_key ------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', idempotency_key => '')$$,
    '22023', NULL, 'empty idempotency_key is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', idempotency_key => '  ')$$,
    '22023', NULL, 'blank idempotency_key is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', ordering_key => '')$$,
    '22023', NULL, 'empty ordering_key is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', ordering_key => ' ')$$,
    '22023', NULL, 'blank ordering_key is refused (22023)');

-- depends_on ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', depends_on => ARRAY[-1]::bigint[])$$,
    '23503', NULL, 'depends_on naming a job that does not exist is refused (23503)');
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_h', depends_on => ARRAY[NULL]::bigint[])$$,
    '22004', NULL, 'depends_on holding NULL is refused (22004)');

SELECT job_engine.submit('tap_submit_h', run_at => now() + interval '1 hour') AS first_job \gset
SELECT throws_ok(format($$SELECT job_engine.submit('tap_submit_h', depends_on => ARRAY[%s, NULL])$$, :first_job),
    '22004', NULL, 'depends_on holding an existing id and NULL is refused (22004)');
SELECT throws_ok(format($$SELECT job_engine.submit('tap_submit_h', depends_on => ARRAY[%s, -7])$$, :first_job),
    '23503', NULL, 'depends_on holding an existing and a missing id is refused (23503)');

-- privileges -----------------------------------------------------------------------------
SET ROLE tap_submit_user;
SELECT throws_ok($$SELECT job_engine.submit('tap_submit_private')$$,
    '42501', NULL, 'a role lacking EXECUTE on the handler function cannot submit (42501)');
RESET ROLE;

SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler IN ('tap_submit_h', 'tap_submit_private')),
    1::bigint, 'refused submits created no job');

-- a valid submit ---------------------------------------------------------------------------
SELECT job_engine.submit('tap_submit_h') AS job \gset
SELECT ok(:job > :first_job, 'submit returns the new job''s id');
SELECT row_eq(format($$SELECT handler, queue, state, priority, attempts, max_attempts, args, result,
                              parent_job_id, event_id, resubmitted_from, owner::text, abort_reason, last_error
                         FROM job_engine.jobs WHERE id = %s$$, :job),
    ROW('tap_submit_h'::text, 'tap_submit_q'::text, 'created'::job_engine.job_state, 0, 0, 5, '{}'::jsonb,
        NULL::jsonb, NULL::bigint, NULL::bigint, NULL::bigint, current_user::text, NULL::text, NULL::text),
    'defaults: handler''s queue and max_attempts, priority 0, args {}, state created, owner the caller');
SELECT ok((SELECT run_at <= now() FROM job_engine.jobs WHERE id = :job),
    'run_at defaults to now');
SELECT ok((SELECT correlation_id IS NOT NULL FROM job_engine.jobs WHERE id = :job),
    'a correlation id is generated');
SELECT ok((SELECT started_at IS NULL AND finished_at IS NULL AND duration IS NULL
             FROM job_engine.jobs WHERE id = :job),
    'a new job has not started or finished');
SELECT isnt((SELECT correlation_id FROM job_engine.jobs WHERE id = :job),
    (SELECT correlation_id FROM job_engine.jobs WHERE id = :first_job),
    'each top-level job gets its own correlation id');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :job), 0::bigint,
    'a new job has no attempt');

SELECT job_engine.submit('tap_submit_h', '{"n": 1}', queue => 'tap_submit_other', priority => -3,
    run_at => '2999-01-01 00:00:00+00', max_attempts => 2,
    correlation_id => '6f1f2a6e-2d11-4c4b-9a7e-0a0a0a0a0a0a') AS job2 \gset
SELECT row_eq(format($$SELECT queue, priority, run_at, max_attempts, args, correlation_id
                         FROM job_engine.jobs WHERE id = %s$$, :job2),
    ROW('tap_submit_other'::text, -3, '2999-01-01 00:00:00+00'::timestamptz, 2, '{"n": 1}'::jsonb,
        '6f1f2a6e-2d11-4c4b-9a7e-0a0a0a0a0a0a'::uuid),
    'explicit arguments override the defaults');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_submit_other'),
    'a queue named at submit is created');

SELECT job_engine.submit('tap_submit_h', '"just a string"') AS job3 \gset
SELECT is((SELECT args FROM job_engine.jobs WHERE id = :job3), '"just a string"'::jsonb,
    'any jsonb value is accepted as args');

-- depends_on
SELECT lives_ok(format($$SELECT job_engine.submit('tap_submit_h', depends_on => ARRAY[%s, %s]::bigint[])$$, :first_job, :job),
    'depends_on naming existing jobs is accepted');
SELECT lives_ok($$SELECT job_engine.submit('tap_submit_h', depends_on => '{}')$$,
    'an empty depends_on is accepted');

-- idempotency_key
SELECT job_engine.submit('tap_submit_h', idempotency_key => 'tap-key-1') AS idem \gset
SELECT is(job_engine.submit('tap_submit_h', '{"other": true}', idempotency_key => 'tap-key-1'), :idem::bigint,
    'a second submit with the same idempotency key returns the first job');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE idempotency_key = 'tap-key-1'), 1::bigint,
    'and creates nothing');
SELECT isnt(job_engine.submit('tap_submit_private', idempotency_key => 'tap-key-1'), :idem::bigint,
    'the same key for another handler is another job');
SELECT ok(job_engine.abort(:idem, 'done with it'), 'abort the keyed job');
SELECT isnt(job_engine.submit('tap_submit_h', idempotency_key => 'tap-key-1'), :idem::bigint,
    'once the keyed job is terminal the key makes a new job');

-- the submitting role owns the job
GRANT EXECUTE ON FUNCTION tap_submit.private(jsonb) TO tap_submit_user;
SET ROLE tap_submit_user;
SELECT job_engine.submit('tap_submit_private') AS user_job \gset
RESET ROLE;
SELECT is((SELECT owner::text FROM job_engine.jobs WHERE id = :user_job), 'tap_submit_user',
    'a job submitted by a role is owned by it');

-- names are data
SELECT job_engine.register_handler('x''); DROP TABLE tap_submit.victim; --', 'tap_submit.ok(jsonb)') IS NULL AS registered \gset
SELECT lives_ok($$SELECT job_engine.submit('x''); DROP TABLE tap_submit.victim; --',
        queue => 'q''); DROP TABLE tap_submit.victim; --', idempotency_key => ''' OR 1=1 --',
        ordering_key => '"; DROP TABLE tap_submit.victim; --')$$,
    'handler, queue and keys holding quotes and SQL are accepted');
SELECT is((SELECT count(*) FROM job_engine._jobs
            WHERE handler = 'x''); DROP TABLE tap_submit.victim; --'
              AND queue = 'q''); DROP TABLE tap_submit.victim; --'
              AND idempotency_key = ''' OR 1=1 --'
              AND ordering_key = '"; DROP TABLE tap_submit.victim; --'), 1::bigint,
    'they are stored verbatim');
SELECT has_table('tap_submit', 'victim', 'and never executed');

-- outside a job there is no current job
SELECT is(job_engine.current_job_id(), NULL, 'current_job_id() is NULL outside a job');
SELECT is(job_engine.context(), NULL, 'context() is NULL outside a job');
SELECT is((SELECT parent_job_id FROM job_engine.jobs WHERE id = :job), NULL,
    'a job submitted outside a job has no parent');

SELECT * FROM finish();
ROLLBACK;

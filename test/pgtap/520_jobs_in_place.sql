-- run_now(), reschedule() and retry(): acting on one job in place, keeping
-- its id (docs/reference.md, Control).  Visibility as abort(): another
-- role's job reads as a missing one.  One transaction, rolled back: no job
-- here ever reaches a worker; states an executor would write are driven by
-- UPDATE as 060_abort does.
BEGIN;
SELECT plan(61);

CREATE SCHEMA tap_inplace;
GRANT USAGE ON SCHEMA tap_inplace TO PUBLIC;
CREATE FUNCTION tap_inplace.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE ROLE tap_inplace_owner;
CREATE ROLE tap_inplace_other;
CREATE ROLE tap_inplace_member IN ROLE tap_inplace_owner;

SELECT job_engine.register_handler('tap_inplace_comp', 'tap_inplace.ok(jsonb)') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_inplace_h', 'tap_inplace.ok(jsonb)',
    compensate_with => 'tap_inplace_comp') IS NULL AS registered \gset

-- A job of tap_inplace_h driven to `state` as the engine would, with
-- `attempts` attempts made (max_attempts `max`).
CREATE FUNCTION pg_temp.job_in(to_state text, made integer DEFAULT 1, max integer DEFAULT 3,
        okey text DEFAULT NULL, ikey text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := job_engine.submit('tap_inplace_h', run_at => now() + interval '1 hour',
                                       max_attempts => max, ordering_key => okey,
                                       idempotency_key => ikey);
BEGIN
    IF to_state = 'created' THEN
        RETURN new_id;
    END IF;
    IF to_state = 'aborted' AND made = 0 THEN
        PERFORM job_engine.abort(new_id, 'aborted before it ran');
        RETURN new_id;
    END IF;
    UPDATE job_engine._jobs j SET state = 'running', attempts = made WHERE j.id = new_id;
    INSERT INTO job_engine._attempts (job_id, attempt, outcome)
    SELECT new_id, n, CASE WHEN n < made THEN 'failed' ELSE 'running' END::job_engine.attempt_outcome
      FROM generate_series(1, made) n;
    IF to_state = 'running' THEN
        RETURN new_id;
    END IF;
    UPDATE job_engine._attempts a SET outcome = 'failed', finished_at = clock_timestamp()
     WHERE a.job_id = new_id AND a.attempt = made;
    UPDATE job_engine._jobs j
       SET state = to_state::job_engine.job_state, worker_pid = NULL,
           last_error = CASE WHEN to_state IN ('failed', 'retrying') THEN 'boom' END,
           abort_reason = CASE WHEN to_state = 'aborted' THEN 'stopped' END,
           run_at = CASE WHEN to_state = 'retrying' THEN now() + interval '1 hour' ELSE j.run_at END
     WHERE j.id = new_id;
    RETURN new_id;
END
$$;

-------------------------------------------------------------------------------
-- run_now
-------------------------------------------------------------------------------
SELECT pg_temp.job_in('created') AS delayed \gset
SELECT throws_ok($$SELECT job_engine.run_now(NULL)$$, '22004', NULL, 'run_now: job_id NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.run_now(-1)$$, 'P0002', NULL, 'run_now: an unknown job id is refused (P0002)');
SELECT is(job_engine.run_now(:delayed), true, 'run_now of a delayed job returns true');
SELECT row_eq(format($$SELECT id, state, run_at, attempts FROM job_engine.jobs WHERE id = %s$$, :delayed),
    ROW(:delayed::bigint, 'created'::job_engine.job_state, now(), 0),
    'the delayed job keeps its id and state and is due now');
SELECT ok((SELECT state_changed_at > now() FROM job_engine._jobs WHERE id = :delayed),
    'run_now stamps state_changed_at');
SELECT is(job_engine.run_now(:delayed), false, 'run_now of a job already due returns false');

SELECT pg_temp.job_in('retrying') AS backing_off \gset
SELECT is(job_engine.run_now(:backing_off), true, 'run_now of a retrying job waiting out its backoff returns true');
SELECT row_eq(format($$SELECT state, run_at, attempts, last_error FROM job_engine.jobs WHERE id = %s$$, :backing_off),
    ROW('retrying'::job_engine.job_state, now(), 1, 'boom'::text),
    'the retrying job is due now, with its attempts and last error');

SELECT pg_temp.job_in('running') AS running \gset
SELECT pg_temp.job_in('failed') AS failed_job \gset
SELECT throws_ok(format($$SELECT job_engine.run_now(%s)$$, :running), '55000', NULL,
    'run_now of a running job is refused (55000)');
SELECT throws_ok(format($$SELECT job_engine.run_now(%s)$$, :failed_job), '55000', NULL,
    'run_now of a failed job is refused (55000)');

-------------------------------------------------------------------------------
-- reschedule
-------------------------------------------------------------------------------
SELECT pg_temp.job_in('created') AS later \gset
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, NULL)$$, :later), '22004', NULL,
    'reschedule: run_at NULL is refused (22004)');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, 'infinity')$$, :later), '22023', NULL,
    'reschedule: run_at infinity is refused (22023)');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, '-infinity')$$, :later), '22023', NULL,
    'reschedule: run_at -infinity is refused (22023)');
SELECT throws_ok($$SELECT job_engine.reschedule(-1, now())$$, 'P0002', NULL,
    'reschedule: an unknown job id is refused (P0002)');
SELECT lives_ok(format($$SELECT job_engine.reschedule(%s, now() + interval '2 days')$$, :later),
    'reschedule of a waiting job to later');
SELECT is((SELECT run_at FROM job_engine.jobs WHERE id = :later), now() + interval '2 days',
    'the job runs at the new time');
SELECT lives_ok(format($$SELECT job_engine.reschedule(%s, now() - interval '1 minute')$$, :later),
    'reschedule of a waiting job to a time past');
SELECT row_eq(format($$SELECT id, state, run_at FROM job_engine.jobs WHERE id = %s$$, :later),
    ROW(:later::bigint, 'created'::job_engine.job_state, now() - interval '1 minute'),
    'the job keeps its id and is due');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, now())$$, :running), '55000', NULL,
    'reschedule of a running job is refused (55000)');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, now())$$, :failed_job), '55000', NULL,
    'reschedule of a failed job is refused (55000)');

-------------------------------------------------------------------------------
-- retry
-------------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.retry(NULL)$$, '22004', NULL, 'retry: job_id NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.retry(-1)$$, 'P0002', NULL, 'retry: an unknown job id is refused (P0002)');

-- A failed job that used up its attempts: one more is allowed.
SELECT pg_temp.job_in('failed', made => 2, max => 2) AS exhausted \gset
SELECT count(*) AS jobs_before FROM job_engine._jobs \gset
SELECT lives_ok(format($$SELECT job_engine.retry(%s)$$, :exhausted), 'retry of a failed job');
SELECT row_eq(format($$SELECT id, state, attempts, max_attempts, run_at, finished_at, last_error
                         FROM job_engine.jobs WHERE id = %s$$, :exhausted),
    ROW(:exhausted::bigint, 'retrying'::job_engine.job_state, 2, 3, now(), NULL::timestamptz, 'boom'::text),
    'it is retrying, due now, unfinished, its attempts counted, one more allowed, its last error kept');
SELECT ok((SELECT state_changed_at > now() FROM job_engine._jobs WHERE id = :exhausted),
    'retry stamps state_changed_at');
SELECT is((SELECT count(*) FROM job_engine._jobs), :jobs_before::bigint,
    'retry creates no job: no compensation, no resubmit');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :exhausted), 2::bigint,
    'its attempts stay recorded');

-- A failed job with attempts to spare keeps its max_attempts.
SELECT pg_temp.job_in('failed', made => 1, max => 3) AS spare \gset
SELECT job_engine.retry(:spare);
SELECT row_eq(format($$SELECT state, attempts, max_attempts FROM job_engine.jobs WHERE id = %s$$, :spare),
    ROW('retrying'::job_engine.job_state, 1, 3), 'a job with attempts to spare keeps max_attempts');

-- An aborted job that never ran goes back to created; its reason goes.
SELECT pg_temp.job_in('aborted', made => 0) AS never_ran \gset
SELECT job_engine.retry(:never_ran);
SELECT row_eq(format($$SELECT state, attempts, max_attempts, abort_reason, finished_at FROM job_engine.jobs WHERE id = %s$$, :never_ran),
    ROW('created'::job_engine.job_state, 0, 3, NULL::text, NULL::timestamptz),
    'an aborted job that never ran is created again, without its abort reason');

-- An aborted job that ran.
SELECT pg_temp.job_in('aborted', made => 1) AS aborted_ran \gset
SELECT job_engine.retry(:aborted_ran);
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :aborted_ran), 'retrying',
    'an aborted job that ran is retrying');

-- Wrong states.
SELECT pg_temp.job_in('created') AS waiting \gset
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :waiting), '55000', NULL,
    'retry of a waiting job is refused (55000)');
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :running), '55000', NULL,
    'retry of a running job is refused (55000)');
SELECT pg_temp.job_in('succeeded') AS succeeded \gset
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :succeeded), '55000', NULL,
    'retry of a succeeded job is refused (55000)');
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :exhausted), '55000', NULL,
    'retry of a job retried already (waiting) is refused (55000)');

-- The lifecycle guard: no plain UPDATE leaves a terminal state; only one
-- that clears finished_at, as retry() does.
SELECT pg_temp.job_in('failed') AS guarded \gset
SELECT throws_ok(format($$UPDATE job_engine._jobs SET state = 'retrying' WHERE id = %s$$, :guarded),
    '55000', NULL, 'the guard still refuses a plain UPDATE of a failed job');
SELECT throws_ok(format($$UPDATE job_engine._jobs SET state = 'running', finished_at = NULL WHERE id = %s$$, :guarded),
    '55000', NULL, 'the guard refuses failed -> running, even clearing finished_at');
SELECT throws_ok(format($$UPDATE job_engine._jobs SET state = 'created', finished_at = NULL WHERE id = %s$$, :succeeded),
    '55000', NULL, 'the guard refuses succeeded -> created, even clearing finished_at');

-- Dependants, aborted when their prerequisite failed, stay aborted; a
-- dependant cannot be retried while its prerequisite is failed.
SELECT pg_temp.job_in('created') AS prereq \gset
SELECT count(*) AS comp_before FROM job_engine._jobs WHERE handler = 'tap_inplace_comp' \gset
SELECT job_engine.submit('tap_inplace_h', depends_on => ARRAY[:prereq]) AS dependant \gset
UPDATE job_engine._jobs SET state = 'running', attempts = 1 WHERE id = :prereq;
SELECT job_engine_internal._record_failure(:prereq, 1, 'failed', '22023', 'no', NULL, NULL, NULL) AS prereq_state \gset
SELECT is(:'prereq_state'::text, 'failed', 'the prerequisite failed for good');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :dependant), 'aborted',
    'and its dependant was aborted');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE handler = 'tap_inplace_comp'), :comp_before + 2::bigint,
    'and both were compensated');
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :dependant), '55000',
    format('job %s depends on job %s, which did not succeed', :dependant, :prereq),
    'retry of a dependant whose prerequisite failed is refused (55000)');
SELECT job_engine.retry(:prereq);
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :dependant), 'aborted',
    'retrying the prerequisite leaves the dependant aborted');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE handler = 'tap_inplace_comp'), :comp_before + 2::bigint,
    'and compensates nothing');
SELECT job_engine.retry(:dependant);
SELECT row_eq(format($$SELECT state, blocked FROM job_engine._jobs WHERE id = %s$$, :dependant),
    ROW('created'::job_engine.job_state, NULL::"char"),
    'the dependant can be retried once its prerequisite is waiting, and waits for it at the claim');

-- Idempotency keys: one live job per key.
SELECT pg_temp.job_in('failed', ikey => 'tap_inplace_key') AS keyed \gset
SELECT job_engine.submit('tap_inplace_h', run_at => now() + interval '1 hour',
    idempotency_key => 'tap_inplace_key') AS key_holder \gset
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :keyed), '55000',
    format('job %s cannot be retried: job %s holds its idempotency key', :keyed, :key_holder),
    'retry of a job whose idempotency key a live job holds is refused (55000)');
SELECT job_engine.abort(:key_holder, 'make room');
SELECT lives_ok(format($$SELECT job_engine.retry(%s)$$, :keyed), 'and allowed once the key is free');

-- Ordering keys: the next waiting job of the key, a candidate since the
-- first failed, is held back behind the retried one (the one after it was
-- held at its submit); a later running one refuses the retry.
SELECT pg_temp.job_in('failed', okey => 'tap_inplace_ord') AS ord1 \gset
SELECT pg_temp.job_in('created', okey => 'tap_inplace_ord') AS ord2 \gset
SELECT pg_temp.job_in('created', okey => 'tap_inplace_ord') AS ord3 \gset
SELECT job_engine.retry(:ord1);
SELECT results_eq(format($$SELECT id, state::text, blocked::text FROM job_engine._jobs WHERE id IN (%s, %s, %s) ORDER BY id$$,
                         :ord1, :ord2, :ord3),
    format($$VALUES (%s::bigint, 'retrying', NULL::text), (%s, 'created', 'k'), (%s, 'created', 'k')$$,
           :ord1, :ord2, :ord3),
    'retry of a keyed job holds the next job of its key back behind it');
SELECT pg_temp.job_in('failed', okey => 'tap_inplace_ord2') AS ordr1 \gset
SELECT pg_temp.job_in('running', okey => 'tap_inplace_ord2') AS ordr2 \gset
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :ordr1), '55000',
    format('job %s with the same ordering key is running', :ordr2),
    'retry of a keyed job while a later job of its key runs is refused (55000)');

-------------------------------------------------------------------------------
-- Who may act: as abort()
-------------------------------------------------------------------------------
SET ROLE tap_inplace_owner;
SELECT job_engine.submit('tap_inplace_h', run_at => now() + interval '1 hour') AS owned \gset
SELECT job_engine.submit('tap_inplace_h', run_at => now() + interval '1 hour') AS owned_failed \gset
RESET ROLE;
UPDATE job_engine._jobs SET state = 'running', attempts = 1 WHERE id = :owned_failed;
UPDATE job_engine._jobs SET state = 'failed' WHERE id = :owned_failed;
SET ROLE tap_inplace_other;
SELECT throws_ok(format($$SELECT job_engine.run_now(%s)$$, :owned), 'P0002', NULL,
    'another role cannot run_now the job: to it the job does not exist (P0002)');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, now())$$, :owned), 'P0002', NULL,
    'another role cannot reschedule the job (P0002)');
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :owned_failed), 'P0002', NULL,
    'another role cannot retry the job (P0002)');
SELECT throws_ok(format($$SELECT job_engine.retry(%s)$$, :owned), 'P0002', NULL,
    'another role''s job in a wrong state reads as missing too, not as 55000');
SELECT throws_ok(format($$SELECT job_engine.reschedule(%s, 'infinity')$$, :owned), '22023', NULL,
    'a bad run_at is refused before the job is looked up');
RESET ROLE;
SELECT row_eq(format($$SELECT state, run_at FROM job_engine.jobs WHERE id = %s$$, :owned),
    ROW('created'::job_engine.job_state, now() + interval '1 hour'), 'the refused calls left the job alone');
SET ROLE tap_inplace_member;
SELECT is(job_engine.run_now(:owned), true, 'a member of the owning role can run_now it');
SELECT lives_ok(format($$SELECT job_engine.retry(%s)$$, :owned_failed), 'and retry its failed job');
RESET ROLE;
SET ROLE tap_inplace_owner;
SELECT lives_ok(format($$SELECT job_engine.reschedule(%s, now() + interval '5 minutes')$$, :owned),
    'the owner can reschedule its job');
RESET ROLE;
SELECT lives_ok(format($$SELECT job_engine.reschedule(%s, now())$$, :owned),
    'a superuser can reschedule another role''s job');

-------------------------------------------------------------------------------
-- Messages
-------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || ' / ' || h;
END
$$;
SELECT is(pg_temp.error_of(format($$SELECT job_engine.run_now(%s)$$, :succeeded)),
    format('55000: job %s is succeeded, not waiting: cannot run it now / The job succeeded; use job_engine.resubmit() to run the same work again.', :succeeded),
    'run_now of a succeeded job says so and points at resubmit()');
SELECT is(pg_temp.error_of(format($$SELECT job_engine.reschedule(%s, now())$$, :guarded)),
    format('55000: job %s is failed, not waiting: cannot reschedule it / Use job_engine.retry() to run a failed or aborted job again.', :guarded),
    'reschedule of a failed job says so and points at retry()');
SELECT is(pg_temp.error_of(format($$SELECT job_engine.retry(%s)$$, :waiting)),
    format('55000: job %s is created: only a failed or aborted job can be retried / The job is waiting already; use job_engine.run_now() to run it at once.', :waiting),
    'retry of a waiting job says so and points at run_now()');

SELECT * FROM finish();
ROLLBACK;

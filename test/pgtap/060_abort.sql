-- abort(): bad input, ownership, and what it does to waiting and terminal
-- jobs.  One transaction, rolled back: no job here ever reaches a worker.
BEGIN;
SELECT plan(26);

CREATE SCHEMA tap_abort;
CREATE FUNCTION tap_abort.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE TABLE tap_abort.victim (x integer);
CREATE ROLE tap_abort_owner;
CREATE ROLE tap_abort_other;
CREATE ROLE tap_abort_member IN ROLE tap_abort_owner;

SELECT job_engine.register_handler('tap_abort_h', 'tap_abort.ok(jsonb)') IS NULL AS registered \gset
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS job \gset

SELECT throws_ok($$SELECT job_engine.abort(NULL, 'reason')$$,
    '22004', NULL, 'job_id NULL is refused (22004)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, NULL)$$, :job),
    '22004', NULL, 'reason NULL is refused (22004)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, '')$$, :job),
    '22023', NULL, 'empty reason is refused (22023)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, '  ')$$, :job),
    '22023', NULL, 'blank reason is refused (22023)');
SELECT throws_ok($$SELECT job_engine.abort(-1, 'reason')$$,
    'P0002', NULL, 'an unknown job id is refused (P0002)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'reason')$$, :job + 1000000),
    'P0002', NULL, 'a job id beyond the last one is refused (P0002)');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :job), 'created',
    'refused aborts left the job waiting');

-- a waiting job
SELECT is(job_engine.abort(:job, 'x''); DROP TABLE tap_abort.victim; --'), true,
    'aborting a waiting job returns true');
SELECT row_eq(format($$SELECT state, abort_reason, attempts, started_at FROM job_engine.jobs WHERE id = %s$$, :job),
    ROW('aborted'::job_engine.job_state, 'x''); DROP TABLE tap_abort.victim; --'::text, 0, NULL::timestamptz),
    'the job is aborted at once with the reason verbatim, never having started');
SELECT ok((SELECT finished_at IS NOT NULL FROM job_engine.jobs WHERE id = :job),
    'an aborted job has finished_at');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :job), 0::bigint,
    'no attempt was made');
SELECT has_table('tap_abort', 'victim', 'the SQL in the reason was never executed');

-- a terminal job is left alone
SELECT is(job_engine.abort(:job, 'again'), false, 'aborting an aborted job returns false');
SELECT is((SELECT abort_reason FROM job_engine.jobs WHERE id = :job),
    'x''); DROP TABLE tap_abort.victim; --', 'and keeps the first reason');

-- a job between attempts (retrying), driven there as the executor would
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS retrying_job \gset
UPDATE job_engine._jobs SET state = 'running', attempts = 1 WHERE id = :retrying_job;
UPDATE job_engine._jobs SET state = 'retrying' WHERE id = :retrying_job;
SELECT is(job_engine.abort(:retrying_job, 'stop retrying'), true, 'aborting a retrying job returns true');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :retrying_job), 'aborted',
    'the retrying job is aborted');

-- succeeded and failed jobs are terminal too
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS done_job \gset
UPDATE job_engine._jobs SET state = 'running', attempts = 1 WHERE id = :done_job;
UPDATE job_engine._jobs SET state = 'succeeded' WHERE id = :done_job;
SELECT is(job_engine.abort(:done_job, 'too late'), false, 'aborting a succeeded job returns false');
SELECT row_eq(format($$SELECT state, abort_reason FROM job_engine.jobs WHERE id = %s$$, :done_job),
    ROW('succeeded'::job_engine.job_state, NULL::text), 'the succeeded job is unchanged');
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS failed_job \gset
UPDATE job_engine._jobs SET state = 'running', attempts = 1 WHERE id = :failed_job;
UPDATE job_engine._jobs SET state = 'failed' WHERE id = :failed_job;
SELECT is(job_engine.abort(:failed_job, 'too late'), false, 'aborting a failed job returns false');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :failed_job), 'failed',
    'the failed job is unchanged');

-- ownership
SET ROLE tap_abort_owner;
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS owned_job \gset
RESET ROLE;
SET ROLE tap_abort_other;
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'not mine')$$, :owned_job),
    'P0002', NULL, 'another role cannot abort the job: to it the job does not exist (P0002)');
RESET ROLE;
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :owned_job), 'created',
    'the refused abort left the job waiting');
SET ROLE tap_abort_member;
SELECT is(job_engine.abort(:owned_job, 'member'), true, 'a member of the owning role can abort it');
RESET ROLE;
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :owned_job), 'aborted', 'the job is aborted');
SET ROLE tap_abort_owner;
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS owned_job2 \gset
SELECT is(job_engine.abort(:owned_job2, 'mine'), true, 'the owner can abort its job');
SELECT job_engine.submit('tap_abort_h', run_at => now() + interval '1 hour') AS owned_job3 \gset
RESET ROLE;
SELECT is(job_engine.abort(:owned_job3, 'su'), true, 'a superuser can abort another role''s job');

SELECT * FROM finish();
ROLLBACK;

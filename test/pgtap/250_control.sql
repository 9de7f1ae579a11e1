-- 250_control.sql: resubmit, wait, abort and purge (docs/architecture.md §2;
-- docs/reference.md, Control).

SET client_min_messages = warning;

SELECT plan(68);

\ir ../fixtures/pgtap_helpers.sql

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je250_plain') THEN
        CREATE ROLE je250_plain;
    END IF;
END
$$;

CREATE SCHEMA t250;
CREATE TABLE t250.side (job_id bigint, attempt integer);
CREATE FUNCTION t250.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
-- Writes a row, then sleeps: an aborted attempt must leave no row behind.
CREATE FUNCTION t250.sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t250.side VALUES (job_engine.current_job_id(), (job_engine.context() ->> 'attempt')::int);
    PERFORM pg_sleep((a ->> 'sleep')::double precision);
    RETURN a;
END
$$;
CREATE FUNCTION t250.fail(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 't250 failure' USING ERRCODE = COALESCE(a ->> 'sqlstate', 'P0001');
END
$$;
GRANT USAGE ON SCHEMA t250 TO je250_plain;
GRANT EXECUTE ON FUNCTION t250.echo(jsonb) TO je250_plain;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t250_echo', 't250.echo(jsonb)', queue => 't250');
    PERFORM job_engine.register_handler('t250_held', 't250.echo(jsonb)', queue => 't250_held');
    PERFORM job_engine.register_handler('t250_sleep', 't250.sleeper(jsonb)', queue => 't250',
                                        max_attempts => 3, backoff_base => '0', backoff_max => '0');
    PERFORM job_engine.register_handler('t250_fail', 't250.fail(jsonb)', queue => 't250',
                                        max_attempts => 1);
    PERFORM job_engine.register_handler('t250_retry', 't250.fail(jsonb)', queue => 't250',
                                        backoff_base => '1 hour', backoff_max => '1 hour');
    PERFORM job_engine.pause_queue('t250_held');
END
$$;

-------------------------------------------------------------------------------
-- resubmit
-------------------------------------------------------------------------------

SELECT gen_random_uuid() AS corr \gset
SELECT job_engine.submit('t250_echo', '{"n": 1}', correlation_id => :'corr') AS a \gset
SELECT is(pg_temp.await_state(:a, 'succeeded'), 'succeeded', 'resubmit: the original job succeeds');
SELECT finished_at AS a_finished FROM job_engine.jobs WHERE id = :a \gset

SELECT job_engine.resubmit(:a) AS b \gset
SELECT isnt(:b::bigint, :a::bigint, 'resubmit: returns a new job id');
SELECT is((SELECT (handler, args, correlation_id, resubmitted_from)::text FROM job_engine.jobs WHERE id = :b),
          ('t250_echo', '{"n": 1}'::jsonb, :'corr'::uuid, :a::bigint)::text,
          'resubmit: same handler, args and correlation id, linked by resubmitted_from');
SELECT is(pg_temp.await_state(:b, 'succeeded'), 'succeeded', 'resubmit: the new job runs');
SELECT is((SELECT (state, finished_at, attempts)::text FROM job_engine.jobs WHERE id = :a),
          ('succeeded'::job_engine.job_state, :'a_finished'::timestamptz, 1)::text,
          'resubmit: the old job stays as it was (terminal, same finish, one attempt)');

SELECT job_engine.submit('t250_fail', '{"n": 2}') AS f \gset
SELECT is(pg_temp.await_state(:f, 'failed'), 'failed', 'resubmit: a job fails');
SELECT job_engine.resubmit(:f) AS g \gset
SELECT is((SELECT resubmitted_from FROM job_engine.jobs WHERE id = :g), :f::bigint,
          'resubmit: a failed job can be resubmitted');
SELECT is(pg_temp.await_state(:g, 'failed'), 'failed', 'resubmit: the new job runs (and fails the same way)');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :f), 'failed', 'resubmit: the failed job stays failed');

SELECT job_engine.submit('t250_held', '{"n": 3}') AS h \gset
SELECT throws_ok(format('SELECT job_engine.resubmit(%s)', :h), '55000', NULL,
                 'resubmit: a waiting job is 55000');
SELECT is(job_engine.abort(:h, 't250 abort for resubmit'), true, 'resubmit: the waiting job is aborted');
SELECT job_engine.resubmit(:h) AS h2 \gset
SELECT is((SELECT (state, resubmitted_from)::text FROM job_engine.jobs WHERE id = :h2),
          ('created'::job_engine.job_state, :h::bigint)::text,
          'resubmit: an aborted job can be resubmitted; the new job waits in its queue');
SELECT throws_ok(format('SELECT job_engine.resubmit(%s)', :h2 + 1000000), 'P0002', NULL,
                 'resubmit: an unknown job is P0002');
SELECT throws_ok('SELECT job_engine.resubmit(NULL)', '22004', NULL, 'resubmit: NULL is 22004');

-------------------------------------------------------------------------------
-- wait
-------------------------------------------------------------------------------

SELECT job_engine.submit('t250_echo', '{"n": 4}') AS q \gset
SELECT is(job_engine.wait(:q), 'succeeded', 'wait: returns ''succeeded'' for a quick job');
SELECT is(job_engine.wait(:f, '0'), 'failed', 'wait: returns the state of a terminal job at once');

SELECT job_engine.submit('t250_echo', '{"n": 5}', run_at => now() + interval '1 hour') AS d \gset
SELECT clock_timestamp() AS t0 \gset
SELECT is(job_engine.wait(:d, '500 ms'), 'created', 'wait: returns the current state (''created'') after the timeout');
SELECT cmp_ok(clock_timestamp() - :'t0'::timestamptz, '>=', interval '500 ms',
              'wait: waited for the whole timeout');
SELECT is(job_engine.wait(:d, '0'), 'created', 'wait: a zero timeout returns the current state');

SELECT throws_ok('SELECT job_engine.wait(NULL)', '22004', NULL, 'wait: NULL job_id is 22004');
SELECT throws_ok(format('SELECT job_engine.wait(%s, NULL)', :q), '22004', NULL, 'wait: NULL timeout is 22004');
SELECT throws_ok(format($$SELECT job_engine.wait(%s, '-1 second')$$, :q), '22023', NULL,
                 'wait: a negative timeout is 22023');
SELECT throws_ok(format('SELECT job_engine.wait(%s)', :d + 1000000), 'P0002', NULL, 'wait: an unknown job is P0002');

-------------------------------------------------------------------------------
-- abort
-------------------------------------------------------------------------------

-- A running job: interrupted, its work rolled back, recorded aborted, not retried.
SELECT job_engine.submit('t250_sleep', '{"sleep": 30}') AS s \gset
SELECT is(pg_temp.await_state(:s, 'running'), 'running', 'abort running: the job is running');
SELECT ok(pg_temp.poll(format('EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :s)),
          'abort running: an executor holds it');
SELECT clock_timestamp() AS t_abort \gset
SELECT is(job_engine.abort(:s, 't250 stop it'), true, 'abort running: abort returns true');
SELECT is((SELECT (state, abort_reason)::text FROM job_engine.jobs WHERE id = :s),
          ('aborted'::job_engine.job_state, 't250 stop it')::text,
          'abort running: the job is aborted at once, with the reason');
SELECT ok(pg_temp.poll(format('NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :s), 10),
          'abort running: the executor lets go of the job');
SELECT cmp_ok(clock_timestamp() - :'t_abort'::timestamptz, '<', interval '10 seconds',
              'abort running: the handler was interrupted, not left to sleep its 30 s');
SELECT is((SELECT array_agg(outcome::text ORDER BY attempt) FROM job_engine.attempts WHERE job_id = :s),
          ARRAY['aborted'], 'abort running: one attempt, recorded ''aborted''');
SELECT is((SELECT count(*) FROM t250.side WHERE job_id = :s), 0::bigint,
          'abort running: the handler''s write was rolled back');
SELECT is((SELECT (state, attempts)::text FROM job_engine.jobs WHERE id = :s),
          ('aborted'::job_engine.job_state, 1)::text,
          'abort running: the job is not retried (still aborted, one attempt)');

-- abort() is transactional like everything else: rolled back, it must not
-- have interrupted the attempt.
SELECT job_engine.submit('t250_sleep', '{"sleep": 1}') AS s2 \gset
SELECT is(pg_temp.await_state(:s2, 'running'), 'running', 'abort rolled back: the job is running');
SELECT ok(pg_temp.poll(format('EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = %s)', :s2)),
          'abort rolled back: an executor holds it');
BEGIN;
SELECT job_engine.abort(:s2, 't250 changed my mind') AS rolled_back_abort \gset
ROLLBACK;
SELECT is(pg_temp.await_state(:s2, 'succeeded'), 'succeeded', 'abort rolled back: the job succeeds');
SELECT is((SELECT array_agg(outcome::text || '/' || COALESCE(sqlstate, '') ORDER BY attempt) FROM job_engine.attempts WHERE job_id = :s2),
          ARRAY['succeeded/'], 'abort rolled back: its one attempt ran undisturbed');

SELECT job_engine.submit('t250_held', '{"n": 6}') AS w \gset
SELECT is(job_engine.abort(:w, 't250 not needed'), true, 'abort waiting: returns true');
SELECT is((SELECT (state, abort_reason, attempts)::text FROM job_engine.jobs WHERE id = :w),
          ('aborted'::job_engine.job_state, 't250 not needed', 0)::text,
          'abort waiting: aborted at once, with the reason and no attempt');
SELECT isnt((SELECT finished_at FROM job_engine.jobs WHERE id = :w), NULL, 'abort waiting: finished_at is set');

SELECT job_engine.submit('t250_retry', '{"sqlstate": "40001"}') AS r \gset
SELECT is(pg_temp.await_state(:r, 'retrying'), 'retrying', 'abort retrying: the job is retrying');
SELECT is(job_engine.abort(:r, 't250 give up'), true, 'abort retrying: returns true');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :r), 'aborted', 'abort retrying: the job is aborted');

SELECT is(job_engine.abort(:a, 't250 too late'), false, 'abort terminal: a succeeded job is left alone (false)');
SELECT is((SELECT (state, abort_reason IS NULL)::text FROM job_engine.jobs WHERE id = :a),
          ('succeeded'::job_engine.job_state, true)::text, 'abort terminal: it stays succeeded, without a reason');
SELECT is(job_engine.abort(:s, 't250 again'), false, 'abort terminal: an aborted job is left alone (false)');
SELECT is((SELECT abort_reason FROM job_engine.jobs WHERE id = :s), 't250 stop it',
          'abort terminal: the first reason stays');

SELECT throws_ok($$SELECT job_engine.abort(NULL, 'x')$$, '22004', NULL, 'abort: NULL job_id is 22004');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'x')$$, :r + 1000000), 'P0002', NULL,
                 'abort: an unknown job is P0002');
SELECT job_engine.submit('t250_held', '{"n": 7}') AS w2 \gset
SELECT throws_ok(format('SELECT job_engine.abort(%s, NULL)', :w2), '22004', NULL, 'abort: NULL reason is 22004');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, '')$$, :w2), '22023', NULL, 'abort: empty reason is 22023');

SET ROLE je250_plain;
SELECT throws_ok(format($$SELECT job_engine.abort(%s, 'not mine')$$, :w2), 'P0002', NULL,
                 'abort: another role''s job does not exist for it (P0002)');
SELECT job_engine.submit('t250_held', '{"n": 8}') AS mine \gset
SELECT is(job_engine.abort(:mine, 't250 my own'), true, 'abort: a plain role aborts its own job');
RESET ROLE;
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :w2), 'created',
          'abort: the refused calls left the job waiting');

-------------------------------------------------------------------------------
-- purge
-------------------------------------------------------------------------------

SELECT job_engine.submit('t250_echo', '{"purge": "old"}') AS p_old \gset
SELECT job_engine.submit('t250_fail', '{"purge": "old"}') AS p_failed \gset
SET ROLE je250_plain;
SELECT job_engine.submit('t250_echo', '{"purge": "role"}') AS p_role \gset
RESET ROLE;
SELECT ok(pg_temp.await_state(:p_old, 'succeeded') = 'succeeded'
          AND pg_temp.await_state(:p_failed, 'failed') = 'failed'
          AND pg_temp.await_state(:p_role, 'succeeded') = 'succeeded',
          'purge: the old jobs finished');
SELECT ok(pg_temp.poll(format($$clock_timestamp() > (SELECT max(finished_at) FROM job_engine.jobs
                                                       WHERE id IN (%s, %s, %s)) + interval '1.5 seconds'$$,
                              :p_old, :p_failed, :p_role)),
          'purge: the old jobs are more than 1.5 s old');
SELECT job_engine.submit('t250_echo', '{"purge": "new"}') AS p_new \gset
SELECT is(pg_temp.await_state(:p_new, 'succeeded'), 'succeeded', 'purge: a recent job finished');

-- A plain role purges only the jobs it may see.
SET ROLE je250_plain;
BEGIN;
SELECT count(*) AS role_expected FROM job_engine.jobs
 WHERE state IN ('succeeded', 'failed', 'aborted') AND finished_at < now() - interval '1 second' \gset
SELECT job_engine.purge('1 second') AS role_purged \gset
COMMIT;
RESET ROLE;
SELECT is(:role_purged::bigint, :role_expected::bigint, 'purge as a plain role: returns how many of its jobs it deleted');
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE id = :p_role)
          AND EXISTS (SELECT 1 FROM job_engine._jobs WHERE id = :p_old),
          'purge as a plain role: its old job is gone, the superuser''s is not');

BEGIN;
SELECT count(*) AS expected FROM job_engine._jobs
 WHERE state IN ('succeeded', 'failed', 'aborted') AND finished_at < now() - interval '1 second' \gset
SELECT job_engine.purge('1 second') AS purged \gset
COMMIT;
SELECT is(:purged::bigint, :expected::bigint, 'purge: returns the number of jobs deleted');
SELECT cmp_ok(:purged::bigint, '>=', 2::bigint, 'purge: the old jobs were among them');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE id IN (:p_old, :p_failed)), 0::bigint,
          'purge: terminal jobs older than the interval are deleted');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id IN (:p_old, :p_failed)), 0::bigint,
          'purge: with their attempts');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :p_new), 'succeeded',
          'purge: a recent terminal job is kept');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :w2), 'created',
          'purge: an old waiting job is kept');
SELECT is((SELECT count(*) FROM job_engine._jobs
            WHERE state IN ('succeeded', 'failed', 'aborted') AND finished_at < now() - interval '1 second'),
          0::bigint, 'purge: no old terminal job is left');

SELECT throws_ok('SELECT job_engine.purge(NULL)', '22004', NULL, 'purge: NULL is 22004');
SELECT throws_ok($$SELECT job_engine.purge('-1 day')$$, '22023', NULL, 'purge: a negative interval is 22023');

SELECT is(job_engine.abort(:w2, 't250 cleanup'), true, 'cleanup: the last waiting job is aborted');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 250_control') FROM job_engine._jobs
      WHERE handler LIKE 't250\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

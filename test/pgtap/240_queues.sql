-- 240_queues.sql: pause_queue, resume_queue, configure_queue
-- (docs/architecture.md §3; docs/reference.md, Control).  Queue administration
-- is never granted to PUBLIC.

SET client_min_messages = warning;

SELECT plan(45);

\ir ../fixtures/pgtap_helpers.sql

-- Waits until every job tagged `tag` succeeded.
CREATE FUNCTION pg_temp.await_tag(tag text, n integer)
RETURNS boolean LANGUAGE sql AS $$
    SELECT pg_temp.poll(format(
        $q$(SELECT count(*) FILTER (WHERE state = 'succeeded') = %s AND count(*) = %s
              FROM job_engine.jobs WHERE handler = 't240_rec' AND args ->> 'tag' = %L)$q$, n, n, tag))
$$;

-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je240_plain') THEN
        CREATE ROLE je240_plain;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je240_admin') THEN
        CREATE ROLE je240_admin;
    END IF;
END
$$;

CREATE SCHEMA t240;
-- One row per successful attempt: its queue, when the handler ran and the
-- top-level transaction it committed in.
CREATE TABLE t240.runs (job_id bigint, tag text, queue text, started timestamptz,
                        finished timestamptz, xid text);
CREATE FUNCTION t240.rec(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::double precision, 0));
    INSERT INTO t240.runs VALUES (job_engine.current_job_id(), a ->> 'tag',
                                  job_engine.context() ->> 'queue', t0, clock_timestamp(),
                                  pg_current_xact_id()::text);
    RETURN a;
END
$$;
GRANT USAGE ON SCHEMA t240 TO je240_plain, je240_admin;
GRANT EXECUTE ON FUNCTION t240.rec(jsonb) TO je240_plain, je240_admin;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t240_rec', 't240.rec(jsonb)', queue => 't240_free');
END
$$;

-------------------------------------------------------------------------------
-- pause_queue / resume_queue
-------------------------------------------------------------------------------

SELECT job_engine.configure_queue('t240_p') IS NULL AS configured \gset
SELECT job_engine.pause_queue('t240_p') IS NULL AS paused \gset
SELECT is((SELECT paused FROM job_engine.queues WHERE name = 't240_p'), true, 'pause_queue: the queue is paused');

BEGIN;
SELECT count(job_engine.submit('t240_rec', '{"tag": "p"}', queue => 't240_p')) AS n FROM generate_series(1, 3) \gset
COMMIT;
-- A job submitted later to another queue runs: executors are serving.
SELECT job_engine.submit('t240_rec', '{"tag": "canary"}') AS canary \gset
SELECT is(pg_temp.await_state(:canary, 'succeeded'), 'succeeded', 'pause_queue: jobs of other queues run');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE queue = 't240_p' AND state = 'created'), 3::bigint,
          'pause_queue: the jobs of the paused queue stay ''created''');
SELECT is((SELECT count(*) FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id
            WHERE j.queue = 't240_p'), 0::bigint,
          'pause_queue: no attempt was started in the paused queue');
SELECT is((SELECT (paused, created) FROM job_engine.queue_stats WHERE queue = 't240_p')::text, '(t,3)',
          'pause_queue: queue_stats shows the queue paused with 3 waiting jobs');

SELECT job_engine.resume_queue('t240_p') IS NULL AS resumed \gset
SELECT is((SELECT paused FROM job_engine.queues WHERE name = 't240_p'), false, 'resume_queue: the queue runs again');
SELECT ok(pg_temp.await_tag('p', 3), 'resume_queue: the waiting jobs run and succeed');

-- Pausing twice and resuming twice is harmless.
SELECT lives_ok($$SELECT job_engine.pause_queue('t240_p'), job_engine.pause_queue('t240_p')$$,
                'pause_queue: pausing a paused queue is fine');
SELECT lives_ok($$SELECT job_engine.resume_queue('t240_p'), job_engine.resume_queue('t240_p')$$,
                'resume_queue: resuming a running queue is fine');

-------------------------------------------------------------------------------
-- configure_queue(concurrency)
-------------------------------------------------------------------------------

SELECT job_engine.configure_queue('t240_c', concurrency => 1) IS NULL AS configured \gset
SELECT is((SELECT (concurrency, group_commit) FROM job_engine.queues WHERE name = 't240_c')::text, '(1,1)',
          'configure_queue: creates the queue with concurrency 1 and group_commit 1');

BEGIN;
SELECT count(job_engine.submit('t240_rec', '{"tag": "c1", "sleep": 0.3}', queue => 't240_c')) AS n FROM generate_series(1, 4) \gset
SELECT count(job_engine.submit('t240_rec', '{"tag": "f1", "sleep": 0.3}')) AS n FROM generate_series(1, 3) \gset
COMMIT;

SELECT ok(pg_temp.await_tag('c1', 4) AND pg_temp.await_tag('f1', 3), 'concurrency 1: all jobs succeed');
SELECT is((SELECT count(*) FROM t240.runs a JOIN t240.runs b ON a.job_id < b.job_id
            WHERE a.tag = 'c1' AND b.tag = 'c1' AND a.started < b.finished AND b.started < a.finished),
          0::bigint, 'concurrency 1: no two jobs of the queue ran at the same time');
SELECT ok(EXISTS (SELECT 1 FROM t240.runs c JOIN t240.runs f ON c.started < f.finished AND f.started < c.finished
                   WHERE c.tag = 'c1' AND f.tag = 'f1'),
          'concurrency 1: meanwhile jobs of another queue ran');
SELECT ok(EXISTS (SELECT 1 FROM t240.runs a JOIN t240.runs b ON a.job_id < b.job_id
                   WHERE a.tag = 'f1' AND b.tag = 'f1' AND a.started < b.finished AND b.started < a.finished),
          'concurrency 1: the other queue, without a limit, ran jobs side by side');

SELECT job_engine.configure_queue('t240_c', concurrency => 2) IS NULL AS configured \gset
BEGIN;
SELECT count(job_engine.submit('t240_rec', '{"tag": "c2", "sleep": 0.3}', queue => 't240_c')) AS n FROM generate_series(1, 5) \gset
COMMIT;
SELECT ok(pg_temp.await_tag('c2', 5), 'concurrency 2: all jobs succeed');
SELECT is((SELECT max((SELECT count(*) FROM t240.runs b
                        WHERE b.tag = 'c2' AND b.started <= a.started AND a.started < b.finished))
             FROM t240.runs a WHERE a.tag = 'c2'),
          2::bigint, 'concurrency 2: at most (and here exactly) two jobs of the queue ran at once');

SELECT job_engine.configure_queue('t240_c') IS NULL AS configured \gset
SELECT is((SELECT concurrency FROM job_engine.queues WHERE name = 't240_c'), NULL::integer,
          'configure_queue: concurrency NULL removes the limit');
BEGIN;
SELECT count(job_engine.submit('t240_rec', '{"tag": "c3", "sleep": 0.3}', queue => 't240_c')) AS n FROM generate_series(1, 3) \gset
COMMIT;
SELECT ok(pg_temp.await_tag('c3', 3), 'no limit: all jobs succeed');
SELECT ok(EXISTS (SELECT 1 FROM t240.runs a JOIN t240.runs b ON a.job_id < b.job_id
                   WHERE a.tag = 'c3' AND b.tag = 'c3' AND a.started < b.finished AND b.started < a.finished),
          'no limit: jobs of the queue ran side by side again');

-------------------------------------------------------------------------------
-- configure_queue(group_commit)
-------------------------------------------------------------------------------

SELECT is((SELECT count(DISTINCT xid) FROM t240.runs WHERE tag = 'f1'), 3::bigint,
          'group_commit 1 (default): every attempt commits in its own transaction');

SELECT job_engine.configure_queue('t240_g', group_commit => 8) IS NULL AS configured \gset
SELECT is((SELECT (concurrency, group_commit) FROM job_engine.queues WHERE name = 't240_g')::text, '(,8)',
          'configure_queue: group_commit 8 is stored');
BEGIN;
SELECT count(job_engine.submit('t240_rec', '{"tag": "g"}', queue => 't240_g')) AS n FROM generate_series(1, 16) \gset
COMMIT;
SELECT ok(pg_temp.await_tag('g', 16), 'group_commit 8: every job succeeds');
SELECT is((SELECT count(*) FROM t240.runs WHERE tag = 'g'), 16::bigint,
          'group_commit 8: every attempt''s own work committed once');
SELECT cmp_ok((SELECT count(DISTINCT xid) FROM t240.runs WHERE tag = 'g'), '<', 16::bigint,
              'group_commit 8: attempts of the queue share commits (fewer transactions than jobs)');

-------------------------------------------------------------------------------
-- Bad input
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.configure_queue('t240_c', concurrency => 0)$$,
                 '22023', NULL, 'configure_queue: concurrency 0 is 22023');
SELECT throws_ok($$SELECT job_engine.configure_queue('t240_c', concurrency => -1)$$,
                 '22023', NULL, 'configure_queue: negative concurrency is 22023');
SELECT throws_ok($$SELECT job_engine.configure_queue('t240_c', group_commit => 0)$$,
                 '22023', NULL, 'configure_queue: group_commit 0 is 22023');
SELECT throws_ok($$SELECT job_engine.configure_queue('t240_c', group_commit => 65)$$,
                 '22023', NULL, 'configure_queue: group_commit 65 is 22023');
SELECT throws_ok($$SELECT job_engine.configure_queue(NULL, concurrency => 1)$$,
                 '22004', NULL, 'configure_queue: NULL queue is 22004');
SELECT throws_ok($$SELECT job_engine.configure_queue('', concurrency => 1)$$,
                 '22023', NULL, 'configure_queue: empty queue is 22023');
SELECT throws_ok($$SELECT job_engine.pause_queue('t240_no_such_queue')$$,
                 '42704', NULL, 'pause_queue: an unknown queue is 42704');
SELECT throws_ok($$SELECT job_engine.resume_queue('t240_no_such_queue')$$,
                 '42704', NULL, 'resume_queue: an unknown queue is 42704');
SELECT throws_ok($$SELECT job_engine.pause_queue(NULL)$$, '22004', NULL, 'pause_queue: NULL is 22004');
SELECT throws_ok($$SELECT job_engine.resume_queue(NULL)$$, '22004', NULL, 'resume_queue: NULL is 22004');
SELECT throws_ok($$SELECT job_engine.pause_queue('')$$, '22023', NULL, 'pause_queue: empty is 22023');
SELECT is((SELECT concurrency FROM job_engine.queues WHERE name = 't240_c'), NULL::integer,
          'configure_queue: refused calls left the queue unchanged');

-------------------------------------------------------------------------------
-- Permissions: administration is not granted to PUBLIC
-------------------------------------------------------------------------------

SET ROLE je240_plain;
SELECT throws_ok($$SELECT job_engine.pause_queue('t240_p')$$,
                 '42501', NULL, 'pause_queue: a plain role gets 42501');
SELECT throws_ok($$SELECT job_engine.resume_queue('t240_p')$$,
                 '42501', NULL, 'resume_queue: a plain role gets 42501');
SELECT throws_ok($$SELECT job_engine.configure_queue('t240_p', concurrency => 1)$$,
                 '42501', NULL, 'configure_queue: a plain role gets 42501');
SELECT throws_ok($$SELECT job_engine.register_handler('t240_mine', 't240.rec(jsonb)')$$,
                 '42501', NULL, 'register_handler: a plain role gets 42501');
SELECT throws_ok($$SELECT job_engine.register_c_handler('t240_c_mine', '$libdir/job_engine_example', 'hello_handler')$$,
                 '42501', NULL, 'register_c_handler: a plain role gets 42501');
SELECT throws_ok($$SELECT job_engine.unregister_handler('t240_rec')$$,
                 '42501', NULL, 'unregister_handler: a plain role gets 42501');
RESET ROLE;
SELECT is((SELECT (paused, concurrency) FROM job_engine.queues WHERE name = 't240_p')::text, '(f,)',
          'permissions: the refused calls changed nothing');

GRANT EXECUTE ON FUNCTION job_engine.pause_queue(text), job_engine.resume_queue(text) TO je240_admin;
SET ROLE je240_admin;
SELECT lives_ok($$SELECT job_engine.pause_queue('t240_p')$$, 'pause_queue: a role granted EXECUTE may pause');
RESET ROLE;
SELECT is((SELECT paused FROM job_engine.queues WHERE name = 't240_p'), true, 'pause_queue: ... and the queue is paused');
SELECT job_engine.resume_queue('t240_p') IS NULL AS resumed \gset

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 240_queues') FROM job_engine._jobs
      WHERE handler LIKE 't240\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

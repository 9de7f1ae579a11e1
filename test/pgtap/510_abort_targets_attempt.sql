-- 510_abort_targets_attempt.sql: the interrupt an abort() sends reaches
-- exactly the attempt it was meant for and nothing after it: not the
-- recording of that attempt's outcome, not the next attempt of its group,
-- not the executor (src/wakeup.c, src/shmem.c).
--
-- deaf_handler ($libdir/job_engine_example) notices the stop request and
-- fails with an error of its own without taking the cancel, as code that
-- never calls CHECK_FOR_INTERRUPTS() would: the cancel is still pending when
-- its handler ends.  Its attempt loads that library, so its executor retires
-- afterwards (docs/architecture.md, section 7), and a group ends with it.
-- Objects are named t510.

SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql

SELECT plan(12);

CALL pg_temp.drop_handlers('t510_', '0 seconds');
DELETE FROM job_engine.queues WHERE name IN ('t510', 't510_group');
DROP SCHEMA IF EXISTS t510 CASCADE;
CREATE SCHEMA t510;
CREATE TABLE t510.effects (job_id bigint);
CREATE FUNCTION t510.record(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t510.effects VALUES (job_engine.current_job_id());
    PERFORM pg_sleep(0.01);
    RETURN '{"done": true}';
END
$$;
-- The server's log: the collector's file, or where test/run_pgtap.sh has
-- pg_ctl write it (tmp_check_pgtap/log, beside the data directory).
CREATE FUNCTION pg_temp.log_file() RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN pg_current_logfile() IS NULL
                THEN current_setting('data_directory') || '/../log/postmaster.log'
                WHEN pg_current_logfile() LIKE '/%' THEN pg_current_logfile()
                ELSE current_setting('data_directory') || '/' || pg_current_logfile() END
$$;
CREATE FUNCTION pg_temp.log_size() RETURNS bigint LANGUAGE sql AS $$
    SELECT (pg_stat_file(pg_temp.log_file())).size
$$;
-- What process `pid` logged after byte `since` of the log, and what the
-- postmaster logged about it, one line each, without the lines' prefix
-- (log_line_prefix is '%m [%p] ').
CREATE FUNCTION pg_temp.logged_by(pid integer, since bigint) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(regexp_replace(l.line, '^.*?\[\d+\] ', ''), E'\n' ORDER BY l.n), '')
      FROM regexp_split_to_table(pg_read_file(pg_temp.log_file(), since, pg_temp.log_size() - since),
                                 E'\n') WITH ORDINALITY AS l(line, n)
     WHERE strpos(l.line, format('[%s] ', pid)) > 0 OR strpos(l.line, format('(PID %s)', pid)) > 0
$$;

DO $$
BEGIN
    PERFORM job_engine.register_c_handler('t510_deaf', '$libdir/job_engine_example', 'deaf_handler',
                                          queue => 't510', max_attempts => 1);
    PERFORM job_engine.register_handler('t510_record', 't510.record(jsonb)', queue => 't510_group',
                                        max_attempts => 1);
    PERFORM job_engine.configure_queue('t510_group', group_commit => 2);
    PERFORM job_engine.pause_queue('t510_group');
END
$$;

-- 1. One attempt: recording it takes no cancel left pending, which would
--    end the executor with an error (it ends anyway, but on purpose).
SELECT pg_temp.log_size() AS log_start \gset
SELECT job_engine.submit('t510_deaf') AS deaf \gset
SELECT ok(pg_temp.poll(format('EXISTS (SELECT FROM job_engine.workers WHERE job_id = %s)', :deaf)),
    'single: the deaf job runs');
SELECT worker_pid AS deaf_pid FROM job_engine.attempts WHERE job_id = :deaf \gset
SELECT is(job_engine.abort(:deaf, 'stop'), true, 'single: it is aborted');
SELECT ok(pg_temp.poll(format($$NOT EXISTS (SELECT FROM job_engine.workers
                                              WHERE pid = %s AND state = 'busy')$$, :deaf_pid)),
    'single: its executor leaves the attempt');
SELECT ok(pg_temp.poll(format('NOT EXISTS (SELECT FROM job_engine.workers WHERE pid = %s)', :deaf_pid)),
    'single: the executor retires, its attempt having loaded a library');
SELECT is(pg_temp.logged_by(:deaf_pid, :log_start),
    format('LOG:  job_engine: job %s (handler t510_deaf, database "%s") attempt 1 aborted: SQLSTATE P0001: '
           'deaf_handler noticed a stop request and ends on its own; aborted by job_engine.abort(): stop',
           :deaf, current_database()),
    'single: the executor logged the attempt''s own error and nothing else, and did not exit '
    'with an error: recording the attempt took no cancel');
SELECT is(pg_temp.history(:deaf), 'aborted: 1 aborted', 'single: the attempt stays recorded aborted');

-- 2. A group: the deaf job first, then an ordinary one, which the deaf job's
--    library load gives back to the queue, in the group's transaction.  One
--    executor alone is free to claim, so one claim takes both.
SELECT pg_temp.hold_other_executors('t510', 510000) IS NULL AS holding \gset
SELECT ok(pg_temp.poll('pg_temp.others_held(510000)'),
    'group: every executor but one is held, so that one claim takes the group');
SELECT job_engine.register_c_handler('t510_deaf', '$libdir/job_engine_example', 'deaf_handler',
                                     queue => 't510_group', max_attempts => 1) IS NULL AS registered \gset
CREATE TEMP TABLE ids AS
SELECT job_engine.submit('t510_deaf') AS deaf,
       job_engine.submit('t510_record') AS next;
SELECT job_engine.resume_queue('t510_group') IS NULL AS resumed \gset
SELECT ok(pg_temp.poll(format('EXISTS (SELECT FROM job_engine.workers WHERE job_id = %s)',
                              (SELECT deaf FROM ids))),
    'group: the deaf job, first of its group, runs');
SELECT ok(pg_temp.one_group((SELECT deaf FROM ids), (SELECT next FROM ids)),
    'group: the next job waits its turn: one executor claimed both, as a group');
SELECT is(job_engine.abort((SELECT deaf FROM ids), 'stop'), true, 'group: it is aborted');
SELECT is(pg_temp.await_state((SELECT next FROM ids), 'succeeded') || ' / ' || pg_temp.history((SELECT next FROM ids)),
    'succeeded / succeeded: 1 succeeded',
    'group: the next job of the group is not hit by the cancel meant for the aborted one');
SELECT is((SELECT count(*) FROM t510.effects WHERE job_id = (SELECT next FROM ids)), 1::bigint,
    'group: its work is committed once');

SELECT pg_advisory_unlock(510000) AS released \gset
CALL pg_temp.drop_handlers('t510_');
DELETE FROM job_engine.queues WHERE name IN ('t510', 't510_group');
DROP SCHEMA t510 CASCADE;

SELECT * FROM finish();

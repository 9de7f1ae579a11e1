-- Retention per queue (configure_queue's retention and failed_retention) and
-- the purge of events no job refers to any longer (docs/reference.md,
-- configure_queue and purge).  Purges look at what earlier transactions
-- finished, so the file commits as it goes and cleans up after itself.  No
-- job here reaches a worker: they are delayed, or in a paused queue, and
-- driven to their end states by UPDATE as an executor would.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(33);

CALL pg_temp.drop_handlers('tap_ret', '0 seconds');
DELETE FROM job_engine.subscriptions WHERE handler LIKE 'tap\_ret%';
DELETE FROM job_engine.queues WHERE name LIKE 'tap\_ret%';
DROP SCHEMA IF EXISTS tap_ret CASCADE;
DROP ROLE IF EXISTS tap_ret_user;
CREATE SCHEMA tap_ret;
GRANT USAGE ON SCHEMA tap_ret TO PUBLIC;
CREATE FUNCTION tap_ret.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE ROLE tap_ret_user;
SELECT job_engine.register_handler('tap_ret_h', 'tap_ret.ok(jsonb)') IS NULL AS registered \gset

-------------------------------------------------------------------------------
-- configure_queue: the settings
-------------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.configure_queue('tap_ret_bad', retention => '0')$$,
    '22023', NULL, 'a zero retention is refused (22023)');
SELECT throws_ok($$SELECT job_engine.configure_queue('tap_ret_bad', failed_retention => '-1 day')$$,
    '22023', NULL, 'a negative failed_retention is refused (22023)');
SELECT throws_ok($$SELECT job_engine.configure_queue('tap_ret_bad', retention => '100 years')$$,
    '22015', NULL, 'a retention of 100 years or more is refused (22015)');
SELECT is((SELECT count(*) FROM job_engine.queues WHERE name = 'tap_ret_bad'), 0::bigint,
    'a refused configuration creates no queue');

-- Successes go at once; failures and aborts are kept a day.
SELECT job_engine.configure_queue('tap_ret_short', retention => '1 microsecond', failed_retention => '1 day');
-- Every finished job goes at once.
SELECT job_engine.configure_queue('tap_ret_all', retention => '1 microsecond');
-- Failures go at once, successes after the setting.
SELECT job_engine.configure_queue('tap_ret_fail', failed_retention => '1 microsecond');
SELECT row_eq($$SELECT retention, failed_retention FROM job_engine.queues WHERE name = 'tap_ret_short'$$,
    ROW('1 microsecond'::interval, '1 day'::interval), 'configure_queue records both retentions');
SELECT job_engine.configure_queue('tap_ret_reset', retention => '1 day');
SELECT job_engine.configure_queue('tap_ret_reset', concurrency => 2);
SELECT row_eq($$SELECT retention, failed_retention, concurrency FROM job_engine.queues WHERE name = 'tap_ret_reset'$$,
    ROW(NULL::interval, NULL::interval, 2), 'an omitted retention is reset to the setting''s, like every option');
SELECT job_engine.configure_queue('tap_ret_reset', retention => '1 day');

-------------------------------------------------------------------------------
-- Retention per queue and state
-------------------------------------------------------------------------------
-- A job of queue `q` driven to the finished state `s`, committed by the
-- caller's statement.
CREATE FUNCTION pg_temp.finished(q text, s text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := job_engine.submit('tap_ret_h', queue => q, run_at => now() + interval '1 hour');
BEGIN
    IF s = 'aborted' THEN
        PERFORM job_engine.abort(new_id, 'tap_ret');
        RETURN new_id;
    END IF;
    UPDATE job_engine._jobs j SET state = 'running', attempts = 1 WHERE j.id = new_id;
    UPDATE job_engine._jobs j SET state = s::job_engine.job_state WHERE j.id = new_id;
    RETURN new_id;
END
$$;
CREATE TABLE pg_temp.ret (name text PRIMARY KEY, id bigint);
INSERT INTO pg_temp.ret
SELECT q || '/' || s, pg_temp.finished('tap_ret_' || q, s)
  FROM unnest(ARRAY['short', 'all', 'fail', 'plain']) q,
       unnest(ARRAY['succeeded', 'failed', 'aborted']) s;

-- Kept: the names of the jobs of pg_temp.ret still there.
CREATE FUNCTION pg_temp.kept() RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(r.name ORDER BY r.name) FROM pg_temp.ret r
     WHERE EXISTS (SELECT 1 FROM job_engine._jobs j WHERE j.id = r.id)
$$;

SELECT ok(job_engine_internal._purge_expired(3600) >= 3, 'retention with the setting at an hour runs');
SELECT is(pg_temp.kept(),
    ARRAY['fail/succeeded', 'plain/aborted', 'plain/failed', 'plain/succeeded',
          'short/aborted', 'short/failed'],
    'each queue keeps its jobs as it says: successes of "short" go, failures and aborts stay; "all" keeps none; "fail" keeps successes; "plain" follows the setting');
SELECT is((SELECT count(*) FROM job_engine._attempts a JOIN pg_temp.ret r ON r.id = a.job_id
            WHERE r.name IN ('all/failed', 'short/succeeded')), 0::bigint,
    'attempts go with their jobs');
SELECT lives_ok($$SELECT job_engine_internal._purge_expired(-1)$$,
    'retention with the setting at 0 (keep forever) runs for queues that say otherwise');
SELECT is(pg_temp.kept(),
    ARRAY['fail/succeeded', 'plain/aborted', 'plain/failed', 'plain/succeeded',
          'short/aborted', 'short/failed'],
    'and keeps the jobs of queues without a retention of their own');
SELECT is((SELECT count(*) FROM job_engine.queues WHERE name IN ('tap_ret_short', 'tap_ret_all', 'tap_ret_fail')),
    3::bigint, 'a queue with a retention is configured: kept even when empty');

SELECT job_engine.configure_queue('tap_ret_short', retention => '1 microsecond', failed_retention => '1 microsecond');
SELECT ok(job_engine_internal._purge_expired(3600) >= 2, 'a shorter failed_retention set later');
SELECT is(pg_temp.kept(), ARRAY['fail/succeeded', 'plain/aborted', 'plain/failed', 'plain/succeeded'],
    'applies to the failures and aborts the queue kept');

-- An explicit purge is the operator's: every queue alike.
SELECT job_engine.configure_queue('tap_ret_fail', retention => '10 years');
SET ROLE tap_ret_user;
SELECT is(job_engine.purge('0'), 0::bigint, 'a role purges none of another role''s jobs');
RESET ROLE;
SELECT ok(job_engine.purge('0') >= 4, 'purge() by a superuser');
SELECT is(pg_temp.kept(), NULL::text[], 'deletes finished jobs whatever their queue''s retention');

-------------------------------------------------------------------------------
-- Events
-------------------------------------------------------------------------------
SELECT job_engine.register_handler('tap_ret_sub', 'tap_ret.ok(jsonb)', queue => 'tap_ret_paused') IS NULL AS registered \gset
SELECT job_engine.pause_queue('tap_ret_paused');
SELECT job_engine.subscribe('tap_ret.kept', 'tap_ret_sub') AS sub \gset
SELECT job_engine.publish('tap_ret.lonely', '{}') AS e_lonely \gset
SELECT job_engine.publish('tap_ret.kept', '{}') AS e_kept \gset
SET ROLE tap_ret_user;
SELECT job_engine.publish('tap_ret.user', '{}') AS e_user \gset
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE event_id = :e_kept AND state = 'created'), 1::bigint,
    'the subscribed event created a job, waiting in a paused queue');

CREATE FUNCTION pg_temp.events_left() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT array_agg(id ORDER BY id) FROM job_engine._events
     WHERE event_type LIKE 'tap\_ret.%'
$$;
SET ROLE tap_ret_user;
SELECT ok(job_engine.purge('0') >= 0, 'a role purges');
RESET ROLE;
SELECT is(pg_temp.events_left(), ARRAY[:e_lonely, :e_kept]::bigint[],
    'its own event without jobs is gone, another publisher''s is kept');
SELECT ok(job_engine.purge('1 hour') >= 0, 'a purge of what is an hour old');
SELECT is(pg_temp.events_left(), ARRAY[:e_lonely, :e_kept]::bigint[], 'keeps the events published since');
SELECT ok(job_engine.purge('0') >= 0, 'a superuser purges');
SELECT is(pg_temp.events_left(), ARRAY[:e_kept]::bigint[],
    'every event without jobs is gone; one with an unfinished job is kept');
SELECT ok(job_engine.abort(id, 'tap_ret'), 'the event''s job is aborted')
  FROM job_engine._jobs WHERE event_id = :e_kept;
SELECT ok(job_engine.purge('0') >= 1, 'the next purge');
SELECT is(pg_temp.events_left(), NULL::bigint[], 'deletes the job, then its event, which nothing refers to any longer');

-- Retention: events follow the setting.
SELECT job_engine.publish('tap_ret.lonely', '{}') AS e_old \gset
SELECT lives_ok($$SELECT job_engine_internal._purge_expired(-1)$$, 'retention with the setting at 0');
SELECT is(pg_temp.events_left(), ARRAY[:e_old]::bigint[], 'keeps events');
SELECT lives_ok($$SELECT job_engine_internal._purge_expired(3600)$$, 'retention with the setting at an hour');
SELECT is(pg_temp.events_left(), ARRAY[:e_old]::bigint[], 'keeps a recent event');
SELECT lives_ok($$SELECT job_engine_internal._purge_expired(0)$$, 'retention with the setting at 0 seconds');
SELECT is(pg_temp.events_left(), NULL::bigint[], 'purges an event without jobs older than that');

SELECT job_engine.unsubscribe(:sub);
CALL pg_temp.drop_handlers('tap_ret');
DELETE FROM job_engine.queues WHERE name LIKE 'tap\_ret%';
DROP SCHEMA tap_ret CASCADE;
DROP ROLE tap_ret_user;
SELECT * FROM finish();

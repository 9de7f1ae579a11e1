-- 200_events.sql: subscribe, unsubscribe and publish (docs/reference.md,
-- Events).
--
-- Background workers are live: published events create jobs that really run,
-- so nothing here is wrapped in a rolled-back transaction.  Objects are named
-- t200/je200_* so that this file does not meet the others; waiting is a
-- bounded poll, never a fixed sleep.

SET client_min_messages = warning;

SELECT plan(41);

\ir ../fixtures/pgtap_helpers.sql

-- Polls `cond` (a boolean SQL expression) every 50 ms for up to timeout_s.
-------------------------------------------------------------------------------
-- Fixtures
-------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je200_sub') THEN
        CREATE ROLE je200_sub;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'je200_other') THEN
        CREATE ROLE je200_other;
    END IF;
END
$$;

CREATE SCHEMA t200;
CREATE TABLE t200.log (job_id bigint, event_id bigint, who text, payload jsonb);

-- Records which job ran, for which event, as whom.
CREATE FUNCTION t200.record(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t200.log (job_id, event_id, who, payload)
    VALUES (job_engine.current_job_id(),
            (job_engine.context() ->> 'event_id')::bigint, current_user, a);
    RETURN jsonb_build_object('who', current_user);
END
$$;
REVOKE ALL ON FUNCTION t200.record(jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA t200 TO je200_sub, je200_other;
GRANT EXECUTE ON FUNCTION t200.record(jsonb) TO je200_sub;
GRANT INSERT ON t200.log TO je200_sub;
-- Receiving events is granted, not PUBLIC's (485_event_privileges.sql).
GRANT EXECUTE ON FUNCTION job_engine.subscribe, job_engine.unsubscribe TO je200_sub, je200_other;

DO $$
BEGIN
    PERFORM job_engine.register_handler('t200_record', 't200.record(jsonb)', queue => 't200');
END
$$;

-------------------------------------------------------------------------------
-- subscribe
-------------------------------------------------------------------------------

SELECT job_engine.subscribe('t200.order.created', 't200_record') AS sub_exact \gset

SELECT ok(EXISTS (SELECT 1 FROM job_engine.subscriptions
                   WHERE id = :sub_exact AND event_type = 't200.order.created'
                     AND handler = 't200_record' AND owner = current_user::regrole::oid),
          'subscribe: an exact event type, owned by the subscribing role');

SET ROLE je200_sub;
SELECT job_engine.subscribe('t200.order.*', 't200_record') AS sub_prefix \gset
SELECT job_engine.subscribe('t200.gone', 't200_record') AS sub_gone \gset
RESET ROLE;

SELECT is((SELECT owner FROM job_engine.subscriptions WHERE id = :sub_prefix),
          'je200_sub'::regrole,
          'subscribe: a prefix pattern ''t200.order.*'' subscribed by a plain role is owned by it');

SELECT throws_ok($$SELECT job_engine.subscribe(NULL, 't200_record')$$,
                 '22004', NULL, 'subscribe: NULL event_type is 22004');
SELECT throws_ok($$SELECT job_engine.subscribe('', 't200_record')$$,
                 '22023', NULL, 'subscribe: empty event_type is 22023');
SELECT throws_ok($$SELECT job_engine.subscribe('   ', 't200_record')$$,
                 '22023', NULL, 'subscribe: blank event_type is 22023');
SELECT throws_ok($$SELECT job_engine.subscribe('t200.*.x', 't200_record')$$,
                 '22023', NULL, 'subscribe: "*" not at the end is an invalid pattern (22023)');
SELECT throws_ok($$SELECT job_engine.subscribe('t200.**', 't200_record')$$,
                 '22023', NULL, 'subscribe: two "*" are an invalid pattern (22023)');
SELECT throws_ok($$SELECT job_engine.subscribe('t200.x', NULL)$$,
                 '22004', NULL, 'subscribe: NULL handler is 22004');
SELECT throws_ok($$SELECT job_engine.subscribe('t200.x', 't200_no_such_handler')$$,
                 '42883', NULL, 'subscribe: an unknown handler is 42883');

SET ROLE je200_other;
SELECT throws_ok($$SELECT job_engine.subscribe('t200.x', 't200_record')$$,
                 '42501', NULL,
                 'subscribe: a role without EXECUTE on the handler''s function gets 42501');
RESET ROLE;

-------------------------------------------------------------------------------
-- publish
-------------------------------------------------------------------------------

SELECT gen_random_uuid() AS corr1 \gset
SELECT job_engine.publish('t200.order.created', '{"order": 1}', :'corr1') AS ev1 \gset
SELECT job_engine.publish('t200.order.shipped', '{"order": 2}') AS ev2 \gset
SELECT job_engine.publish('t200.nobody.listens') AS ev3 \gset
SELECT job_engine.publish('t200.orderly', '{"order": 3}') AS ev4 \gset

SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev1), 2::bigint,
          'publish: an event matching an exact and a prefix subscription creates two jobs');
SELECT is((SELECT array_agg(owner::text ORDER BY owner::text)
             FROM job_engine.jobs WHERE event_id = :ev1),
          (SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY[current_user::text, 'je200_sub']) r),
          'publish: each job is owned by its subscription''s owner');
SELECT is((SELECT count(*) FROM job_engine.jobs
            WHERE event_id = :ev1 AND correlation_id = :'corr1'
              AND args = '{"order": 1}' AND handler = 't200_record'),
          2::bigint,
          'publish: the jobs carry the event id, the event''s correlation id and its payload');
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev2), 1::bigint,
          'publish: only the prefix subscription matches t200.order.shipped');
SELECT is((SELECT j.correlation_id FROM job_engine.jobs j WHERE j.event_id = :ev2),
          (SELECT e.correlation_id FROM job_engine.events e WHERE e.id = :ev2),
          'publish: without a correlation id the event gets one and its jobs share it');
SELECT isnt((SELECT correlation_id FROM job_engine.events WHERE id = :ev2), NULL,
            'publish: the generated correlation id is not NULL');
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev3), 0::bigint,
          'publish: an event nobody subscribed to is stored with jobs_created = 0');
SELECT is((SELECT payload FROM job_engine.events WHERE id = :ev3), '{}'::jsonb,
          'publish: the payload defaults to {}');
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev4), 0::bigint,
          'publish: ''t200.order.*'' does not match t200.orderly');

SELECT ok(pg_temp.poll(format(
            $$(SELECT count(*) FILTER (WHERE state = 'succeeded') = 3 AND count(*) = 3
                 FROM job_engine.jobs WHERE event_id IN (%s, %s))$$, :ev1, :ev2)),
          'publish: every job created by the events runs and succeeds');
SELECT is((SELECT count(*) FROM t200.log l JOIN job_engine.jobs j ON j.id = l.job_id
            WHERE j.event_id IN (:ev1, :ev2)
              AND l.who = j.owner::text AND l.event_id = j.event_id AND l.payload = j.args),
          3::bigint,
          'publish: each job ran as its subscription''s owner and saw its event in context()');
SELECT is((SELECT result FROM job_engine.jobs WHERE event_id = :ev2),
          '{"who": "je200_sub"}'::jsonb,
          'publish: the job''s result is the handler''s return value');

-- A plain role may publish; the subscriptions decide who runs the jobs.
SET ROLE je200_sub;
SELECT job_engine.publish('t200.order.created', '{"order": 5}') AS ev5 \gset
RESET ROLE;
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev5), 2::bigint,
          'publish: a plain role''s event creates a job for every matching subscription');

-- publish is transactional.
BEGIN;
SELECT job_engine.publish('t200.order.created', '{"order": 6}') AS ev6 \gset
ROLLBACK;
SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine._events WHERE id = :ev6)
          AND NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE event_id = :ev6),
          'publish: a rolled-back publish leaves neither the event nor jobs');

SELECT throws_ok($$SELECT job_engine.publish(NULL, '{}')$$,
                 '22004', NULL, 'publish: NULL event_type is 22004');
SELECT throws_ok($$SELECT job_engine.publish('', '{}')$$,
                 '22023', NULL, 'publish: empty event_type is 22023');
SELECT throws_ok($$SELECT job_engine.publish('t200.order.*', '{}')$$,
                 '22023', NULL, 'publish: a pattern is not an event type (22023)');
SELECT throws_ok($$SELECT job_engine.publish('t200.order.created', NULL)$$,
                 '22004', NULL, 'publish: NULL payload is 22004');

-------------------------------------------------------------------------------
-- Events are immutable
-------------------------------------------------------------------------------

SELECT throws_ok(format($$UPDATE job_engine._events SET payload = '{"changed": true}' WHERE id = %s$$, :ev1),
                 '55000', NULL, 'events: UPDATE of a stored event raises 55000, even for a superuser');
SELECT throws_ok(format($$UPDATE job_engine._events SET event_type = 't200.other' WHERE id = %s$$, :ev3),
                 '55000', NULL, 'events: changing the type of an event without jobs raises 55000 too');
SELECT is((SELECT payload FROM job_engine.events WHERE id = :ev1), '{"order": 1}'::jsonb,
          'events: the payload is unchanged');

SET ROLE je200_sub;
SELECT throws_ok(format($$UPDATE job_engine._events SET payload = '{}' WHERE id = %s$$, :ev5),
                 '42501', NULL, 'events: a plain role cannot write the events table (42501)');
RESET ROLE;

-------------------------------------------------------------------------------
-- unsubscribe
-------------------------------------------------------------------------------

SELECT throws_ok($$SELECT job_engine.unsubscribe(NULL)$$,
                 '22004', NULL, 'unsubscribe: NULL is 22004');
SELECT throws_ok(format('SELECT job_engine.unsubscribe(%s)', :sub_gone + 1000000),
                 'P0002', NULL, 'unsubscribe: an unknown subscription is P0002');

SET ROLE je200_other;
SELECT throws_ok(format('SELECT job_engine.unsubscribe(%s)', :sub_exact),
                 '42501', NULL, 'unsubscribe: another role''s subscription is 42501');
SELECT throws_ok(format('SELECT job_engine.unsubscribe(%s)', :sub_gone),
                 '42501', NULL, 'unsubscribe: a plain role cannot remove a peer''s subscription (42501)');
RESET ROLE;

SET ROLE je200_sub;
SELECT is(job_engine.unsubscribe(:sub_gone), true, 'unsubscribe: the owner removes its subscription: true');
RESET ROLE;

SELECT ok(NOT EXISTS (SELECT 1 FROM job_engine.subscriptions WHERE id = :sub_gone),
          'unsubscribe: the subscription is gone');
SELECT job_engine.publish('t200.gone', '{}') AS ev7 \gset
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :ev7), 0::bigint,
          'unsubscribe: a later event of that type creates no job');
SELECT throws_ok(format('SELECT job_engine.unsubscribe(%s)', :sub_gone),
                 'P0002', NULL, 'unsubscribe: removing it again is P0002');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.subscriptions WHERE id = :sub_exact),
          'unsubscribe: the refused attempts left the other subscription in place');

-- Leave nothing of this file waiting for the files that follow.
DO $$
BEGIN
    PERFORM job_engine.abort(id, 'end of 200_events') FROM job_engine._jobs
      WHERE handler LIKE 't200\_%' AND state IN ('created', 'running', 'retrying')
      ORDER BY id;
END
$$;

SELECT * FROM finish();

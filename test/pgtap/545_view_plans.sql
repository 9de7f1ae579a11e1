-- History queries through the attempts, events and queue_stats views use
-- indexes, like those through the jobs view (540_history_plans.sql;
-- docs/decisions.md, "History through row-level security"), for a
-- superuser and for a plain role; and a plain role learns nothing of
-- another role's rows through them: not their content, not through a
-- function of its own in WHERE (one that raises a NOTICE of what it is
-- shown, and records it), not in the row counts EXPLAIN ANALYZE gives of
-- what the view returns.  Plans, not timings: EXPLAIN (COSTS OFF) on 50,000
-- finished jobs, their attempts and 10,000 events, with fresh statistics.
-- One transaction, rolled back: nothing here is ever seen by an executor.
BEGIN;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(45);

CREATE ROLE tap_vp_user;
CREATE ROLE tap_vp_other;
CREATE SCHEMA tap_vp;
GRANT USAGE ON SCHEMA tap_vp TO PUBLIC;
CREATE TABLE tap_vp.seen (v text);
GRANT INSERT, SELECT ON tap_vp.seen TO PUBLIC;
-- Leaky, and cheap, so the planner would run it first if it were allowed to.
CREATE FUNCTION tap_vp.peek(v anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
AS $$ BEGIN RAISE NOTICE 'peek: %', v; INSERT INTO tap_vp.seen VALUES (v::text); RETURN true; END $$;
-- The NOTICEs would drown the output; what peek() was shown is in tap_vp.seen.
SET LOCAL client_min_messages = warning;

-- Owners as in 540: 1% each of two plain roles, the rest the superuser's.
CREATE FUNCTION pg_temp.role_of(i bigint) RETURNS regrole LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE (i / 5) % 100 WHEN 0 THEN 'tap_vp_user'::regrole
                              WHEN 1 THEN 'tap_vp_other'::regrole
                              ELSE 10::oid::regrole END
$$;
INSERT INTO job_engine.queues (name) VALUES ('tap_vp');

-- Loaded as pg_restore would, past the lifecycle guard (replica mode fires
-- no ordinary trigger), so that times and outcomes can be set.  Event k (of
-- 10,000, one every 250 seconds) was published by role_of(k).  Job i (of
-- 50,000, one every 50 seconds), of role_of(i), started at t and ended a
-- second later; a fifth of them failed twice (attempts 1 and 2), a fifth
-- were aborted running (one attempt), the rest succeeded at the first
-- attempt but one in 500, whose first attempt crashed.  Job i was created
-- by event i / 5 when i % 5 = 1.  Each secret names its job or event.
SET LOCAL session_replication_role = replica;
CREATE TEMP TABLE emap AS
WITH e AS (
    INSERT INTO job_engine._events (event_type, payload, correlation_id, publisher, published_at)
    SELECT 'tap_vp.event', jsonb_build_object('secret', 'event secret ' || k, 'k', k), gen_random_uuid(),
           pg_temp.role_of(k), now() - (10001 - k) * interval '250 seconds'
      FROM generate_series(1, 10000) k
     ORDER BY k
    RETURNING id, (payload ->> 'k')::bigint AS k)
SELECT k, id FROM e;
CREATE TEMP TABLE jmap AS
WITH j AS (
    INSERT INTO job_engine._jobs (handler, queue, state, args, result, max_attempts, attempts, run_at,
                                  created_at, started_at, finished_at, owner, correlation_id, event_id)
    SELECT 'tap_vp_h', 'tap_vp', (ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'aborted'])[1 + i % 5]::job_engine.job_state,
           jsonb_build_object('secret', 'job secret ' || i, 'i', i), jsonb_build_object('secret', 'job secret ' || i),
           3, CASE WHEN i % 5 = 3 OR i % 500 = 0 THEN 2 ELSE 1 END, t, t, t, t + interval '1 second',
           pg_temp.role_of(i), gen_random_uuid(), CASE WHEN i % 5 = 1 THEN e.id END
      FROM generate_series(1, 50000) i
      CROSS JOIN LATERAL (SELECT now() - (50001 - i) * interval '50 seconds' AS t) s
      LEFT JOIN emap e ON e.k = i / 5
     ORDER BY i
    RETURNING id, (args ->> 'i')::bigint AS i)
SELECT i, id FROM j;
INSERT INTO job_engine._attempts (job_id, attempt, outcome, started_at, finished_at, worker_pid,
                                  sqlstate, message)
SELECT m.id, n,
       CASE WHEN m.i % 5 = 3 THEN 'failed' WHEN m.i % 5 = 4 THEN 'aborted'
            WHEN m.i % 500 = 0 AND n = 1 THEN 'crashed' ELSE 'succeeded' END::job_engine.attempt_outcome,
       t + (n - 1) * interval '0.5 second', t + n * interval '0.5 second', 4242,
       CASE WHEN m.i % 5 = 3 THEN 'XX000' END,
       CASE WHEN m.i % 5 IN (3, 4) OR m.i % 500 = 0 THEN 'job secret ' || m.i END
  FROM jmap m
  CROSS JOIN LATERAL (SELECT now() - (50001 - m.i) * interval '50 seconds' AS t) s
  CROSS JOIN LATERAL generate_series(1, CASE WHEN m.i % 5 = 3 OR m.i % 500 = 0 THEN 2 ELSE 1 END) n
 ORDER BY m.i, n;
-- Event 505, of tap_vp_other, created a job of the superuser's (2526) and
-- one of tap_vp_user's (1501, instead of event 300).
UPDATE job_engine._jobs SET event_id = (SELECT id FROM emap WHERE k = 505)
 WHERE id = (SELECT id FROM jmap WHERE i = 1501);
RESET session_replication_role;
ANALYZE job_engine._jobs, job_engine._attempts, job_engine._events;

-- Whether tap_vp_user may be shown a text: a secret of one of its jobs, of
-- an event it published or of an event that created one of its jobs.
CREATE FUNCTION pg_temp.visible_secret(v text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN v ~ 'job secret \d' THEN
                    pg_temp.role_of(substring(v FROM 'job secret (\d+)')::bigint) = 'tap_vp_user'::regrole
                WHEN v ~ 'event secret \d' THEN
                    EXISTS (SELECT 1 FROM emap e
                             WHERE e.k = substring(v FROM 'event secret (\d+)')::bigint
                               AND (pg_temp.role_of(e.k) = 'tap_vp_user'::regrole
                                    OR EXISTS (SELECT 1 FROM job_engine._jobs j
                                                WHERE j.event_id = e.id AND j.owner = 'tap_vp_user'::regrole)))
                ELSE true END
$$;

-- The rows the top node of a plan returned, by EXPLAIN ANALYZE.
CREATE FUNCTION pg_temp.rows_returned(q text) RETURNS bigint LANGUAGE sql AS $$
    SELECT substring(pg_temp.plan_of(q, true) FROM 'actual rows=(\d+)')::bigint
$$;
GRANT EXECUTE ON FUNCTION pg_temp.plan_of(text, boolean), pg_temp.rows_returned(text),
                          pg_temp.role_of(bigint) TO PUBLIC;
GRANT SELECT ON jmap, emap TO PUBLIC;

-- A job of the user's and one of the other role's, each with two
-- attempts; the other role's event that created one of the user's jobs,
-- one of the superuser's that created none.
SELECT (SELECT id FROM jmap WHERE i = 1500) AS user_job, (SELECT id FROM jmap WHERE i = 508) AS other_job,
       (SELECT id FROM emap WHERE k = 505) AS other_event, (SELECT id FROM emap WHERE k = 110) AS super_event,
       (SELECT id FROM emap WHERE k = 1000) AS user_event \gset

CREATE TEMP TABLE queries (n integer, name text, q text, index text);
INSERT INTO queries VALUES
    (1, 'the attempts of a job',
     format($$SELECT attempt, outcome, message FROM job_engine.attempts WHERE job_id = %s$$, :user_job),
     'Index (Only )?Scan using _attempts_pkey'),
    (2, 'failed attempts',
     $$SELECT job_id, message FROM job_engine.attempts WHERE outcome = 'failed'$$,
     'Index.* (using|on) attempts_unsuccessful_idx'),
    (3, 'crashes of the last day, newest first',
     $$SELECT job_id FROM job_engine.attempts WHERE outcome = 'crashed' AND started_at >= now() - interval '1 day'
        ORDER BY started_at DESC LIMIT 20$$,
     'Index Scan Backward using attempts_unsuccessful_idx'),
    (4, 'the last 20 attempts',
     $$SELECT job_id, attempt FROM job_engine.attempts ORDER BY job_id DESC, attempt DESC LIMIT 20$$,
     'Index (Only )?Scan Backward using _attempts_pkey'),
    (5, 'attempts started in the last hour',
     $$SELECT job_id FROM job_engine.attempts WHERE started_at >= now() - interval '1 hour'$$,
     'Bitmap Index Scan on attempts_started_idx'),
    (6, 'an event',
     format($$SELECT payload, jobs_created FROM job_engine.events WHERE id = %s$$, :user_event),
     'Index (Only )?Scan using _events_pkey'),
    (7, 'the last 20 events',
     $$SELECT id, jobs_created FROM job_engine.events ORDER BY id DESC LIMIT 20$$,
     'Index (Only )?Scan Backward using _events_pkey'),
    (8, 'events published in the last day',
     $$SELECT id FROM job_engine.events WHERE published_at >= now() - interval '1 day'$$,
     'Index.* (using|on) events_published_idx');
GRANT SELECT ON queries TO PUBLIC;

-- a superuser ------------------------------------------------------------------------
SELECT matches(pg_temp.plan_of(q), index, 'superuser: ' || name || ' through ' || substring(index FROM '\w+_(?:idx|pkey)'))
  FROM queries ORDER BY n;
SELECT is(string_agg(name, ', '), NULL, 'superuser: no history query scans a whole table')
  FROM queries WHERE pg_temp.plan_of(q) LIKE '%Seq Scan%';

-- a plain role -----------------------------------------------------------------------
SET ROLE tap_vp_user;
SELECT matches(pg_temp.plan_of(q), index, 'plain role: ' || name || ' through ' || substring(index FROM '\w+_(?:idx|pkey)'))
  FROM queries ORDER BY n;
SELECT is(string_agg(name, ', '), NULL, 'plain role: no history query scans a whole table')
  FROM queries WHERE pg_temp.plan_of(q) LIKE '%Seq Scan%';

-- ... returning the role's own rows only.
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :other_job), 0::bigint,
    'plain role: another role''s job has no attempts for it');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :user_job), 2::bigint,
    'plain role: its own job''s two attempts');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE outcome = 'failed'),
          (SELECT 2 * count(*) FROM generate_series(1, 50000) i
            WHERE i % 5 = 3 AND pg_temp.role_of(i) = 'tap_vp_user'::regrole),
    'plain role: failed attempts are those of its own jobs');
SELECT is((SELECT count(*) FROM (SELECT job_id FROM job_engine.attempts
                                  ORDER BY job_id DESC, attempt DESC LIMIT 20) l
            JOIN jmap m ON m.id = l.job_id
            WHERE pg_temp.role_of(m.i) <> 'tap_vp_user'::regrole), 0::bigint,
    'plain role: the last 20 attempts are of its own jobs');
SELECT is((SELECT count(*) FROM job_engine.events WHERE id = :other_event), 1::bigint,
    'plain role: another role''s event that created one of its jobs ...');
SELECT is((SELECT jobs_created FROM job_engine.events WHERE id = :other_event), 1::bigint,
    '... counts only that job');
SELECT is((SELECT count(*) FROM job_engine.events WHERE id = :super_event), 0::bigint,
    'plain role: another role''s event that created none of its jobs is not shown');
SELECT is((SELECT count(*) FROM job_engine.events
            JOIN emap m ON m.id = events.id
            WHERE pg_temp.role_of(m.k) <> 'tap_vp_user'::regrole
              AND NOT EXISTS (SELECT 1 FROM job_engine.jobs j WHERE j.event_id = events.id)), 0::bigint,
    'plain role: every event it sees is its own or created one of its jobs');
SELECT is((SELECT succeeded + failed + aborted FROM job_engine.queue_stats WHERE queue = 'tap_vp'),
          (SELECT count(*) FROM generate_series(1, 50000) i
            WHERE pg_temp.role_of(i) = 'tap_vp_user'::regrole),
    'plain role: queue_stats counts its own jobs only');

-- EXPLAIN ANALYZE: what each plan returns is what the query returns.
SELECT is(pg_temp.rows_returned(format($$SELECT * FROM job_engine.attempts WHERE job_id = %s$$, :other_job)),
          0::bigint, 'plain role: EXPLAIN ANALYZE returns no attempt of another role''s job');
SELECT is(pg_temp.rows_returned($$SELECT * FROM job_engine.attempts WHERE outcome = 'failed'$$),
          (SELECT count(*) FROM job_engine.attempts WHERE outcome = 'failed'),
          'plain role: EXPLAIN ANALYZE of failed attempts returns its own');
SELECT is(pg_temp.rows_returned($$SELECT * FROM job_engine.events$$),
          (SELECT count(*) FROM job_engine.events),
          'plain role: EXPLAIN ANALYZE of the events returns those it sees');
SELECT is(pg_temp.rows_returned(format($$SELECT * FROM job_engine.events WHERE id = %s$$, :super_event)),
          0::bigint, 'plain role: EXPLAIN ANALYZE returns no event of another role');

-- A leaky function beside every indexed filter, and alone.
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE job_id = :other_job AND tap_vp.peek(message)), 0::bigint,
    'plain role: a function in WHERE beside job_id = another role''s job');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE outcome = 'failed' AND tap_vp.peek(message)),
          (SELECT count(*) FROM job_engine.attempts WHERE outcome = 'failed'),
    'plain role: a function in WHERE beside an indexed outcome');
SELECT is((SELECT count(*) FROM (SELECT job_id FROM job_engine.attempts WHERE tap_vp.peek(message)
                                  ORDER BY job_id DESC, attempt DESC LIMIT 20) l), 20::bigint,
    'plain role: a function in WHERE under ORDER BY job_id LIMIT');
SELECT is((SELECT count(*) FROM job_engine.attempts
            WHERE started_at >= now() - interval '1 day' AND tap_vp.peek(message)) > 0, true,
    'plain role: a function in WHERE beside an indexed time range');
SELECT is((SELECT count(*) FROM job_engine.attempts WHERE tap_vp.peek(message)) > 0, true,
    'plain role: a function in WHERE alone, over the attempts');
SELECT is((SELECT count(*) FROM job_engine.events WHERE id = :super_event AND tap_vp.peek(payload)), 0::bigint,
    'plain role: a function in WHERE beside id = another role''s event');
SELECT is((SELECT count(*) FROM job_engine.events
            WHERE published_at >= now() - interval '2 days' AND tap_vp.peek(payload)) > 0, true,
    'plain role: a function in WHERE beside an indexed publication time');
SELECT is((SELECT count(*) FROM (SELECT id FROM job_engine.events WHERE tap_vp.peek(payload)
                                  ORDER BY id DESC LIMIT 5) l), 5::bigint,
    'plain role: a function in WHERE under ORDER BY id LIMIT over the events');
SELECT is((SELECT count(*) FROM job_engine.queue_stats WHERE tap_vp.peek(queue) AND tap_vp.peek(succeeded)) > 0, true,
    'plain role: a function in WHERE over queue_stats');
RESET ROLE;
SELECT is((SELECT count(*) FROM tap_vp.seen WHERE v LIKE '%secret%' AND pg_temp.visible_secret(v)) > 0, true,
    'a function in WHERE was shown the role''s own errors and payloads ...');
SELECT is((SELECT string_agg(v, ', ') FROM tap_vp.seen WHERE NOT pg_temp.visible_secret(v)), NULL,
    '... and nothing of another role''s');

-- Direct reads of the tables behind the views show what the views show.
SET ROLE tap_vp_user;
SELECT is((SELECT count(*) FROM job_engine._attempts), (SELECT count(*) FROM job_engine.attempts),
    'plain role: _attempts read directly shows the rows of the attempts view');
SELECT is((SELECT count(*) FROM job_engine._events), (SELECT count(*) FROM job_engine.events),
    'plain role: _events read directly shows the rows of the events view');
SELECT throws_ok($$SELECT publisher FROM job_engine._events LIMIT 1$$, '42501', NULL,
    'plain role: _events''s columns that the view leaves out stay unreadable (42501)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

-- 485_event_privileges.sql: receiving events is a privilege the DBA grants
-- (issue 12, "Also decide and document", decision 1).  A subscription to
-- '*' receives the payload of every event of every role, so subscribe and
-- unsubscribe are not granted to PUBLIC, like register_handler:
--
--     GRANT EXECUTE ON FUNCTION job_engine.subscribe, job_engine.unsubscribe TO app;
--
-- publish stays PUBLIC (its subscribers' jobs run as the subscribers).
--
-- One transaction, rolled back: no job here ever runs.
BEGIN;
SET client_min_messages = warning;
SELECT plan(7);

CREATE SCHEMA t485;
CREATE FUNCTION t485.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA t485 TO PUBLIC;
SELECT job_engine.register_handler('t485_h', 't485.echo(jsonb)', queue => 't485_q');
CREATE ROLE t485_plain;
CREATE ROLE t485_granted;
GRANT EXECUTE ON FUNCTION job_engine.subscribe, job_engine.unsubscribe TO t485_granted;
SELECT job_engine.subscribe('t485.ev', 't485_h') AS su_sub \gset

SELECT ok(NOT has_function_privilege('t485_plain', 'job_engine.subscribe(text, text)', 'EXECUTE'),
    'subscribe is not executable by PUBLIC');
SELECT ok(NOT has_function_privilege('t485_plain', 'job_engine.unsubscribe(bigint)', 'EXECUTE'),
    'unsubscribe is not executable by PUBLIC');
SET ROLE t485_plain;
SELECT throws_ok($$SELECT job_engine.subscribe('*', 't485_h')$$, '42501', NULL,
    'a plain role cannot subscribe to every event (42501)');
SELECT throws_ok($$SELECT job_engine.subscribe('t485.ev', 't485_h')$$, '42501', NULL,
    'a plain role cannot subscribe to one event type either (42501)');
SELECT lives_ok($$SELECT job_engine.publish('t485.ev', '{}')$$, 'a plain role may still publish');
RESET ROLE;
SET ROLE t485_granted;
SELECT lives_ok($$SELECT job_engine.unsubscribe(job_engine.subscribe('t485.ev', 't485_h'))$$,
    'a role granted EXECUTE may subscribe and unsubscribe');
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.subscriptions WHERE handler = 't485_h'), 1::bigint,
    'only the superuser''s subscription is left');

SELECT * FROM finish();
ROLLBACK;

-- unregister_handler(): bad input, ownership and unfinished jobs.  One
-- transaction, rolled back: the jobs submitted here never run.
BEGIN;
SELECT plan(21);

CREATE SCHEMA tap_unreg;
CREATE FUNCTION tap_unreg.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE TABLE tap_unreg.victim (x integer);
CREATE ROLE tap_unreg_owner;
CREATE ROLE tap_unreg_other;
CREATE ROLE tap_unreg_member IN ROLE tap_unreg_owner;
CREATE ROLE tap_unreg_plain;
GRANT EXECUTE ON FUNCTION job_engine.register_handler TO tap_unreg_owner;
GRANT EXECUTE ON FUNCTION job_engine.unregister_handler TO tap_unreg_owner, tap_unreg_other;
GRANT USAGE ON SCHEMA tap_unreg TO tap_unreg_owner;

SELECT throws_ok($$SELECT job_engine.unregister_handler(NULL)$$,
    '22004', NULL, 'name NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.unregister_handler('')$$,
    '22023', NULL, 'empty name is refused (22023)');
SELECT throws_ok($$SELECT job_engine.unregister_handler('  ')$$,
    '22023', NULL, 'blank name is refused (22023)');
SELECT throws_ok($$SELECT job_engine.unregister_handler('tap_unreg_missing')$$,
    '42883', NULL, 'an unknown handler is refused (42883)');
SELECT throws_ok($$SELECT job_engine.unregister_handler('x''); DROP TABLE tap_unreg.victim; --')$$,
    '42883', NULL, 'an unknown name holding SQL is just an unknown handler (42883)');
SELECT has_table('tap_unreg', 'victim', 'the SQL in the name was never executed');

-- unfinished jobs block unregistering
SELECT job_engine.register_handler('tap_unreg_busy', 'tap_unreg.ok(jsonb)') IS NULL AS registered \gset
SELECT job_engine.submit('tap_unreg_busy', run_at => now() + interval '1 day') AS busy_job \gset
SELECT throws_ok($$SELECT job_engine.unregister_handler('tap_unreg_busy')$$,
    '2BP01', NULL, 'a handler with a waiting job cannot be unregistered (2BP01)');
SELECT ok(job_engine.abort(:busy_job, 'test'), 'the waiting job is aborted');
SELECT lives_ok($$SELECT job_engine.unregister_handler('tap_unreg_busy')$$,
    'once every job is terminal the handler can be unregistered');
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 'tap_unreg_busy'), 0::bigint,
    'the handler is gone');
SELECT throws_ok($$SELECT job_engine.submit('tap_unreg_busy')$$,
    '42883', NULL, 'submitting to an unregistered handler is refused (42883)');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.jobs WHERE id = :busy_job AND state = 'aborted'),
    'the terminal job of the unregistered handler is kept');

-- privileges and ownership
SET ROLE tap_unreg_plain;
SELECT throws_ok($$SELECT job_engine.unregister_handler('tap_unreg_any')$$,
    '42501', NULL, 'unregister_handler is not executable by PUBLIC (42501)');
RESET ROLE;
SET ROLE tap_unreg_owner;
SELECT job_engine.register_handler('tap_unreg_owned', 'tap_unreg.ok(jsonb)') IS NULL AS registered \gset
RESET ROLE;
SET ROLE tap_unreg_other;
SELECT throws_ok($$SELECT job_engine.unregister_handler('tap_unreg_owned')$$,
    '42501', NULL, 'a role that is not the owner cannot unregister (42501)');
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 'tap_unreg_owned'), 1::bigint,
    'the refused unregister kept the handler');
SET ROLE tap_unreg_member;
SELECT lives_ok($$SELECT job_engine.unregister_handler('tap_unreg_owned')$$,
    'a member of the owning role can unregister');
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 'tap_unreg_owned'), 0::bigint,
    'the handler is gone');

-- a handler named as another's compensation
SELECT job_engine.register_handler('tap_unreg_undo', 'tap_unreg.ok(jsonb)') IS NULL AS registered \gset
SELECT lives_ok($$SELECT job_engine.register_handler('tap_unreg_do', 'tap_unreg.ok(jsonb)', compensate_with => 'tap_unreg_undo')$$,
    'register a handler with a compensation handler');
SELECT throws_ok($$SELECT job_engine.unregister_handler('tap_unreg_undo')$$,
    '2BP01', NULL, 'a compensation handler in use cannot be unregistered (2BP01)');

-- a name holding quotes and SQL
SELECT job_engine.register_handler('x''); DROP TABLE tap_unreg.victim; --', 'tap_unreg.ok(jsonb)') IS NULL AS registered \gset
SELECT lives_ok($$SELECT job_engine.unregister_handler('x''); DROP TABLE tap_unreg.victim; --')$$,
    'a handler whose name holds SQL is unregistered by that name');
SELECT has_table('tap_unreg', 'victim', 'and the SQL was never executed');

SELECT * FROM finish();
ROLLBACK;

-- register_handler(): every bad input and its SQLSTATE, and what a valid
-- registration stores.  Nothing here needs a worker: the whole file runs in
-- one transaction that is rolled back.
BEGIN;
SELECT plan(61);

CREATE SCHEMA tap_reg;
CREATE FUNCTION tap_reg.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_reg.ok2(args jsonb) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION tap_reg.no_args() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION tap_reg.text_arg(args text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION tap_reg.json_arg(args json) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION tap_reg.two_args(args jsonb, n integer) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_reg.set_returning(args jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_reg.table_returning(args jsonb) RETURNS TABLE (a jsonb) LANGUAGE sql AS $$ SELECT args $$;
CREATE PROCEDURE tap_reg.proc(args jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE AGGREGATE tap_reg.agg(jsonb) (SFUNC = pg_catalog.jsonb_concat, STYPE = jsonb);
CREATE FUNCTION tap_reg.private(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
REVOKE EXECUTE ON FUNCTION tap_reg.private(jsonb) FROM PUBLIC;
CREATE TABLE tap_reg.victim (x integer);

-- name -----------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler(NULL, 'tap_reg.ok(jsonb)')$$,
    '22004', NULL, 'name NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('', 'tap_reg.ok(jsonb)')$$,
    '22023', NULL, 'empty name is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('   ', 'tap_reg.ok(jsonb)')$$,
    '22023', NULL, 'blank name is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler(E'\t\n ', 'tap_reg.ok(jsonb)')$$,
    '22023', NULL, 'whitespace-only name is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler(repeat('n', 201), 'tap_reg.ok(jsonb)')$$,
    '42622', NULL, 'a 201-character name is refused (42622)');
SELECT lives_ok($$SELECT job_engine.register_handler(repeat('n', 200), 'tap_reg.ok(jsonb)')$$,
    'a 200-character name is accepted');

-- fn -------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', NULL)$$,
    '22004', NULL, 'fn NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.nope(jsonb)')$$,
    '42883', NULL, 'a function that does not exist is refused (42883)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.no_args()')$$,
    '42P13', NULL, 'a function without arguments is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.text_arg(text)')$$,
    '42P13', NULL, 'a function taking text is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.json_arg(json)')$$,
    '42P13', NULL, 'a function taking json (not jsonb) is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.two_args(jsonb, integer)')$$,
    '42P13', NULL, 'a function taking two arguments is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.set_returning(jsonb)')$$,
    '42P13', NULL, 'a set-returning function is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.table_returning(jsonb)')$$,
    '42P13', NULL, 'a function returning TABLE is refused (42P13)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.proc(jsonb)')$$,
    '42809', NULL, 'a procedure is refused (42809)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.agg(jsonb)')$$,
    '42809', NULL, 'an aggregate is refused (42809)');

-- queue ----------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', queue => NULL)$$,
    '22004', NULL, 'queue NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', queue => '')$$,
    '22023', NULL, 'empty queue is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', queue => '  ')$$,
    '22023', NULL, 'blank queue is refused (22023)');

-- max_attempts ---------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', max_attempts => NULL)$$,
    '22004', NULL, 'max_attempts NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', max_attempts => 0)$$,
    '22023', NULL, 'max_attempts 0 is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', max_attempts => -3)$$,
    '22023', NULL, 'negative max_attempts is refused (22023)');

-- backoff_base / backoff_max ---------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_base => NULL)$$,
    '22004', NULL, 'backoff_base NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_base => '-1 second')$$,
    '22023', NULL, 'negative backoff_base is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_max => NULL)$$,
    '22004', NULL, 'backoff_max NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_base => '0', backoff_max => '-1 ms')$$,
    '22023', NULL, 'negative backoff_max is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_base => '10 seconds', backoff_max => '5 seconds')$$,
    '22023', NULL, 'backoff_max below backoff_base is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', backoff_base => '2 hours')$$,
    '22023', NULL, 'backoff_base above the default backoff_max is refused (22023)');
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_zero', 'tap_reg.ok(jsonb)', backoff_base => '0', backoff_max => '0')$$,
    'zero backoff is accepted');

-- timeout --------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', timeout => '0')$$,
    '22023', NULL, 'timeout 0 is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', timeout => '-5 seconds')$$,
    '22023', NULL, 'negative timeout is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', timeout => interval '1 day' - interval '25 hours')$$,
    '22023', NULL, 'a timeout that sums to a negative duration is refused (22023)');

-- retry_on -------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{4000}')$$,
    '22023', NULL, 'a four-character retry_on entry is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{400011}')$$,
    '22023', NULL, 'a six-character retry_on entry is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{p0001}')$$,
    '22023', NULL, 'a lower-case retry_on entry is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{""}')$$,
    '22023', NULL, 'an empty retry_on entry is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{"40-01"}')$$,
    '22023', NULL, 'a retry_on entry with punctuation is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{40001,serialization_failure}')$$,
    '22023', NULL, 'a condition name in retry_on is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => '{{40001},{08006}}')$$,
    '22023', NULL, 'a two-dimensional retry_on is refused (22023)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', retry_on => ARRAY['40001', NULL])$$,
    '22004', NULL, 'a NULL entry in retry_on is refused as a missing value (22004)');

-- compensate_with ------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', compensate_with => 'tap_reg_missing')$$,
    '42883', NULL, 'an unknown compensation handler is refused (42883)');
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', compensate_with => ' ')$$,
    '22023', NULL, 'a blank compensation handler name is refused (22023)');

-- nothing was stored by the refused calls
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 'tap_reg_h'), 0::bigint,
    'refused registrations store nothing');

-- privileges -----------------------------------------------------------------
CREATE ROLE tap_reg_plain;
CREATE ROLE tap_reg_admin;
GRANT EXECUTE ON FUNCTION job_engine.register_handler TO tap_reg_admin;
GRANT USAGE ON SCHEMA tap_reg TO tap_reg_plain, tap_reg_admin;

SELECT ok(NOT has_function_privilege('tap_reg_plain',
        'job_engine.register_handler(text, regprocedure, text, integer, interval, interval, interval, text[], text)', 'EXECUTE'),
    'register_handler is not executable by PUBLIC');
SET ROLE tap_reg_plain;
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)')$$,
    '42501', NULL, 'a plain role cannot register a handler (42501)');
RESET ROLE;

SET ROLE tap_reg_admin;
SELECT throws_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.private(jsonb)')$$,
    '42501', NULL, 'a role lacking EXECUTE on the function cannot register it (42501)');
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_by_admin', 'tap_reg.ok(jsonb)')$$,
    'a role granted register_handler registers a function it may execute');
RESET ROLE;
SELECT is((SELECT pg_get_userbyid(owner)::text FROM job_engine.handlers WHERE name = 'tap_reg_by_admin'),
    'tap_reg_admin', 'the registering role owns the handler');

-- defaults and updates -------------------------------------------------------
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)')$$,
    'register with defaults');
SELECT row_eq($$SELECT fn, queue, max_attempts, backoff_base, backoff_max, timeout, retry_on, compensate_with
                  FROM job_engine.handlers WHERE name = 'tap_reg_h'$$,
    ROW('tap_reg.ok(jsonb)'::text, 'default'::text, 3, '1 second'::interval, '1 hour'::interval,
        NULL::interval, NULL::text[], NULL::text),
    'defaults: queue default, 3 attempts, backoff 1 s..1 h, no timeout, retry_on NULL');

SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok2(jsonb)', queue => 'tap_reg_q',
        max_attempts => 7, backoff_base => '10 ms', backoff_max => '1 minute', timeout => '30 seconds',
        retry_on => '{40001,08}')$$,
    'registering an existing name again succeeds');
SELECT is((SELECT count(*) FROM job_engine.handlers WHERE name = 'tap_reg_h'), 1::bigint,
    're-registering keeps one handler row');
SELECT row_eq($$SELECT fn, queue, max_attempts, backoff_base, backoff_max, timeout, retry_on
                  FROM job_engine.handlers WHERE name = 'tap_reg_h'$$,
    ROW('tap_reg.ok2(jsonb)'::text, 'tap_reg_q'::text, 7, '10 ms'::interval, '1 minute'::interval,
        '30 seconds'::interval, '{40001,08}'::text[]),
    're-registering updates every option');
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_h', 'tap_reg.ok(jsonb)', compensate_with => 'tap_reg_zero')$$,
    'a handler may name an existing handler as its compensation');
SELECT is((SELECT compensate_with FROM job_engine.handlers WHERE name = 'tap_reg_h'), 'tap_reg_zero',
    'compensate_with is stored');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_reg_q'),
    'a new queue named at registration exists');
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_self', 'tap_reg.ok(jsonb)', compensate_with => 'tap_reg_self')$$,
    'a handler may name itself as its compensation');
SELECT lives_ok($$SELECT job_engine.register_handler('tap_reg_empty_retry', 'tap_reg.ok(jsonb)', retry_on => '{}')$$,
    'an empty retry_on (retry nothing) is accepted');

-- names are data, never code ---------------------------------------------------
SELECT lives_ok($$SELECT job_engine.register_handler('x''); DROP TABLE tap_reg.victim; --', 'tap_reg.ok(jsonb)',
        queue => 'q''); DROP TABLE tap_reg.victim; --')$$,
    'a name holding quotes and SQL is accepted');
SELECT is((SELECT queue FROM job_engine.handlers WHERE name = 'x''); DROP TABLE tap_reg.victim; --'),
    'q''); DROP TABLE tap_reg.victim; --', 'the name and queue are stored verbatim');
SELECT has_table('tap_reg', 'victim', 'the SQL in the name was never executed');

SELECT * FROM finish();
ROLLBACK;

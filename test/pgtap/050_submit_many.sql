-- submit_many(): every bad input and its SQLSTATE, and what a valid call
-- creates.  One transaction, rolled back: none of these jobs ever runs.
BEGIN;
SELECT plan(25);

CREATE SCHEMA tap_many;
CREATE FUNCTION tap_many.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tap_many.private(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
REVOKE EXECUTE ON FUNCTION tap_many.private(jsonb) FROM PUBLIC;
CREATE TABLE tap_many.victim (x integer);
CREATE ROLE tap_many_user;

SELECT job_engine.register_handler('tap_many_h', 'tap_many.ok(jsonb)',
    queue => 'tap_many_q', max_attempts => 4) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_many_private', 'tap_many.private(jsonb)') IS NULL AS registered \gset

SELECT throws_ok($$SELECT job_engine.submit_many(NULL, ARRAY['{}'::jsonb])$$,
    '22004', NULL, 'handler NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit_many('', ARRAY['{}'::jsonb])$$,
    '22023', NULL, 'empty handler is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit_many(' ', ARRAY['{}'::jsonb])$$,
    '22023', NULL, 'blank handler is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_missing', ARRAY['{}'::jsonb])$$,
    '42883', NULL, 'an unknown handler is refused (42883)');
SELECT throws_ok($$SELECT job_engine.submit_many('x''); DROP TABLE tap_many.victim; --', ARRAY['{}'::jsonb])$$,
    '42883', NULL, 'an unknown handler name holding SQL is refused (42883)');
SELECT has_table('tap_many', 'victim', 'the SQL in the handler name was never executed');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', NULL)$$,
    '22004', NULL, 'args NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY['{}'::jsonb, NULL])$$,
    '22004', NULL, 'args holding a NULL element is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY[['{}'::jsonb], ['{}'::jsonb]])$$,
    '22023', NULL, 'a two-dimensional args array is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY['{}'::jsonb], queue => '')$$,
    '22023', NULL, 'empty queue is refused (22023)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY['{}'::jsonb], priority => NULL)$$,
    '22004', NULL, 'priority NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY['{}'::jsonb], run_at => 'infinity')$$,
    '22008', NULL, 'run_at infinity is refused (22008)');
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_h', ARRAY['{}'::jsonb], run_at => '-infinity')$$,
    '22008', NULL, 'run_at -infinity is refused (22008)');
SET ROLE tap_many_user;
SELECT throws_ok($$SELECT job_engine.submit_many('tap_many_private', ARRAY['{}'::jsonb])$$,
    '42501', NULL, 'a role lacking EXECUTE on the handler function cannot submit (42501)');
RESET ROLE;
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE handler IN ('tap_many_h', 'tap_many_private')),
    0::bigint, 'refused calls created no job');

-- valid calls
SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_many_h', '{}'::jsonb[])), 0::bigint,
    'an empty array creates no job');

CREATE TEMP TABLE tap_many_ids AS
SELECT id, ord FROM job_engine.submit_many('tap_many_h',
    ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]) WITH ORDINALITY AS t(id, ord);
SELECT is((SELECT count(*) FROM tap_many_ids), 3::bigint, 'one id per element');
SELECT is((SELECT count(DISTINCT id) FROM tap_many_ids), 3::bigint, 'the ids are distinct');
SELECT results_eq($$SELECT (j.args->>'n')::integer FROM tap_many_ids t JOIN job_engine.jobs j USING (id) ORDER BY t.ord$$,
    ARRAY[1, 2, 3], 'ids come back in the order of args');
SELECT results_eq($$SELECT id FROM tap_many_ids ORDER BY ord$$,
    $$SELECT id FROM tap_many_ids ORDER BY id$$, 'ids increase with the order of args');
SELECT is((SELECT count(*) FROM job_engine.jobs j JOIN tap_many_ids USING (id)
            WHERE j.queue = 'tap_many_q' AND j.max_attempts = 4 AND j.priority = 0
              AND j.state = 'created' AND j.owner = current_user AND j.run_at <= now()),
    3::bigint, 'defaults: handler''s queue and max_attempts, priority 0, run now, owned by the caller');
SELECT is((SELECT count(DISTINCT correlation_id) FROM job_engine.jobs JOIN tap_many_ids USING (id)),
    3::bigint, 'each job gets its own correlation id');

CREATE TEMP TABLE tap_many_ids2 AS
SELECT id FROM job_engine.submit_many('tap_many_h', ARRAY['{}', '{}']::jsonb[],
    queue => 'tap_many_other', priority => 9, run_at => '2999-01-01 00:00:00+00') AS t(id);
SELECT is((SELECT count(*) FROM job_engine.jobs j JOIN tap_many_ids2 USING (id)
            WHERE j.queue = 'tap_many_other' AND j.priority = 9
              AND j.run_at = '2999-01-01 00:00:00+00'),
    2::bigint, 'queue, priority and run_at apply to every job');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.queues WHERE name = 'tap_many_other'),
    'a queue named at submit_many is created');

GRANT EXECUTE ON FUNCTION tap_many.private(jsonb) TO tap_many_user;
SET ROLE tap_many_user;
SELECT is((SELECT count(*) FROM job_engine.submit_many('tap_many_private', ARRAY['{}'::jsonb])), 1::bigint,
    'a role with EXECUTE on the function can submit');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

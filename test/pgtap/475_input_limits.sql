-- 475_input_limits.sql: the documented limits of arguments (issue 12 §5,
-- fourth bullet; docs/reference.md, Conventions).
--
-- * An interval of 100 years or more is 22015 (interval_field_overflow):
--   exactly '100 years' included.
-- * A name made only of Unicode white space or invisible characters
--   (U+00A0 no-break space, U+200B zero-width space, U+3000 ideographic
--   space) is blank, 22023, like '' and '   '.
--
-- One transaction, rolled back: no job here ever runs.
BEGIN;
SET client_min_messages = warning;
SELECT plan(19);

CREATE SCHEMA t475;
CREATE FUNCTION t475.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('t475_h', 't475.echo(jsonb)', queue => 't475_q');
SELECT job_engine.submit('t475_h', '{}', run_at => now() + interval '1 day') AS job \gset
SELECT job_engine.submit('t475_h', '{}', run_at => now() + interval '1 day') AS done_job \gset
SELECT job_engine.abort(:done_job, 'finished before the test');

-- 100 years -----------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('t475_x', 't475.echo(jsonb)', backoff_max => '100 years')$$,
    '22015', NULL, 'register_handler: backoff_max of exactly 100 years is 22015');
SELECT throws_ok($$SELECT job_engine.register_handler('t475_x', 't475.echo(jsonb)',
                        backoff_base => '100 years', backoff_max => '100 years')$$,
    '22015', NULL, 'register_handler: backoff_base of exactly 100 years is 22015');
SELECT throws_ok($$SELECT job_engine.register_handler('t475_x', 't475.echo(jsonb)', timeout => '100 years')$$,
    '22015', NULL, 'register_handler: timeout of exactly 100 years is 22015');
SELECT throws_ok($$SELECT job_engine.register_handler('t475_x', 't475.echo(jsonb)', timeout => '1200 months')$$,
    '22015', NULL, 'register_handler: 1200 months (100 years) is 22015');
-- On a finished job, so that a wait accepting the timeout returns at once.
SELECT throws_ok(format($$SELECT job_engine.wait(%s, '100 years')$$, :done_job),
    '22015', NULL, 'wait: a timeout of exactly 100 years is 22015');
SELECT throws_ok($$SELECT job_engine.purge('100 years')$$,
    '22015', NULL, 'purge: older_than of exactly 100 years is 22015');
SELECT lives_ok($$SELECT job_engine.register_handler('t475_y', 't475.echo(jsonb)',
                        backoff_max => '99 years 11 months 29 days')$$,
    'register_handler: just under 100 years is accepted');

-- blank names ---------------------------------------------------------------------------------
SELECT throws_ok($$SELECT job_engine.register_handler('   ', 't475.echo(jsonb)')$$,
    '22023', NULL, 'a name of ASCII spaces is blank (22023), as before');
SELECT throws_ok(format($$SELECT job_engine.register_handler(%L, 't475.echo(jsonb)')$$, U&'\00A0'),
    '22023', NULL, 'register_handler: a name of U+00A0 (no-break space) is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.register_handler(%L, 't475.echo(jsonb)')$$, U&'\200B\200B'),
    '22023', NULL, 'register_handler: a name of U+200B (zero-width space) is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.register_handler(%L, 't475.echo(jsonb)')$$, U&'\3000'),
    '22023', NULL, 'register_handler: a name of U+3000 (ideographic space) is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.register_handler(%L, 't475.echo(jsonb)')$$, U&' \00A0\200B '),
    '22023', NULL, 'register_handler: a name mixing spaces, U+00A0 and U+200B is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.register_handler('t475_z', 't475.echo(jsonb)', queue => %L)$$, U&'\00A0'),
    '22023', NULL, 'register_handler: a queue name of U+00A0 is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.submit('t475_h', '{}', queue => %L)$$, U&'\200B'),
    '22023', NULL, 'submit: a queue name of U+200B is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.submit('t475_h', '{}', ordering_key => %L)$$, U&'\00A0'),
    '22023', NULL, 'submit: an ordering key of U+00A0 is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.submit('t475_h', '{}', idempotency_key => %L)$$, U&'\200B'),
    '22023', NULL, 'submit: an idempotency key of U+200B is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.publish(%L)$$, U&'\00A0'),
    '22023', NULL, 'publish: an event type of U+00A0 is blank (22023)');
SELECT throws_ok(format($$SELECT job_engine.abort(%s, %L)$$, :job, U&'\200B'),
    '22023', NULL, 'abort: a reason of U+200B is blank (22023)');
SELECT ok(NOT EXISTS (SELECT FROM job_engine.handlers WHERE name !~ '[[:alnum:]_]')
          AND NOT EXISTS (SELECT FROM job_engine.queues WHERE name !~ '[[:alnum:]_]'),
    'no handler or queue with an invisible name was created');

SELECT * FROM finish();
ROLLBACK;

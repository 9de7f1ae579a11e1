-- 490_messages.sql: what the errors a new user meets first say, SQLSTATE,
-- detail and hint (docs/reference.md, SQLSTATEs and each function's
-- Errors).  Nothing here needs a worker: the whole file runs in one
-- transaction that is rolled back.
BEGIN;
\ir ../fixtures/pgtap_helpers.sql
SET client_min_messages = warning;
SELECT plan(55);

-- The SQLSTATE, message, detail and hint of the error `sql` raises, as
-- "SQLSTATE|message|detail|hint" (NULL parts empty); NULL if it succeeds.
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text;
    message text;
    detail text;
    hint text;
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN concat_ws('|', state, message, coalesce(detail, ''), coalesce(hint, ''));
END
$$;

-- Passes when `sql` fails with `state` and a hint matching `hint_re` (which
-- may be anchored with ^ and $).
CREATE FUNCTION pg_temp.hints(sql text, state text, hint_re text, description text)
RETURNS text LANGUAGE sql AS $$
    SELECT matches(pg_temp.error_of(sql),
                   '^' || state || '\|[^|]*\|[^|]*\|'
                   || CASE WHEN left(hint_re, 1) = '^' THEN substr(hint_re, 2) ELSE '.*' || hint_re END,
                   description)
$$;

CREATE SCHEMA t490;
CREATE FUNCTION t490.greet(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
SELECT job_engine.register_handler('t490_greet', 't490.greet(jsonb)');

-------------------------------------------------------------------------------
-- register_handler's fn is a regprocedure: PostgreSQL parses the text while
-- it parses the call, before register_handler runs, so these keep its own
-- SQLSTATEs (documented in reference.md and troubleshooting.md).
-------------------------------------------------------------------------------
SELECT matches(pg_temp.error_of($$SELECT job_engine.register_handler('t490_g2', 't490.greet')$$),
    '^22P02\|expected a left parenthesis',
    'fn without an argument list: 22P02 from the regprocedure input');
SELECT matches(pg_temp.error_of($$SELECT job_engine.register_handler('t490_g2', 't490.nofn(jsonb)')$$),
    '^42883\|function "t490.nofn\(jsonb\)" does not exist',
    'fn that does not exist: 42883 from the regprocedure input');

-------------------------------------------------------------------------------
-- The dynamic loader's errors get a hint
-------------------------------------------------------------------------------
SELECT pg_temp.hints($$SELECT job_engine.register_c_handler('t490_c', '$libdir/t490_no_such_lib', 'f')$$,
    '58P01', 'pg_config --pkglibdir',
    'a library that does not exist: 58P01 with a hint on the path');
SELECT matches(pg_temp.error_of($$SELECT job_engine.register_c_handler('t490_c', '$libdir/t490_no_such_lib', 'f')$$),
    '^58P01\|could not access file "(\$libdir/)?t490_no_such_lib"',
    'the loader''s message is kept');
SELECT pg_temp.hints($$SELECT job_engine.register_c_handler('t490_c', '$libdir/job_engine', 't490_nosym')$$,
    '42883', 'JOB_ENGINE_HANDLER\(t490_nosym\)',
    'a symbol that is not in the library: 42883 with a hint naming JOB_ENGINE_HANDLER()');
SELECT matches(pg_temp.error_of($$SELECT job_engine.register_c_handler('t490_c', '$libdir/job_engine', 't490_nosym')$$),
    '^42883\|could not find function "t490_nosym"', 'the loader''s message is kept');

-------------------------------------------------------------------------------
-- NULL: "leave it out" only for arguments that have a default
-------------------------------------------------------------------------------
SELECT pg_temp.hints(sql, '22004', '^Pass a value: this argument has no default\.$',
                     'NULL ' || arg || ' (no default): the hint does not suggest leaving it out')
  FROM (VALUES ('abort''s job_id', $$SELECT job_engine.abort(NULL, 'r')$$),
               ('abort''s reason', $$SELECT job_engine.abort(1, NULL)$$),
               ('purge''s older_than', $$SELECT job_engine.purge(NULL)$$),
               ('unsubscribe''s subscription_id', $$SELECT job_engine.unsubscribe(NULL)$$),
               ('register_handler''s fn', $$SELECT job_engine.register_handler('t490_x', NULL)$$),
               ('register_handler''s name', $$SELECT job_engine.register_handler(NULL, 't490.greet(jsonb)')$$),
               ('submit''s handler', $$SELECT job_engine.submit(NULL)$$),
               ('submit_many''s args', $$SELECT job_engine.submit_many('t490_greet', NULL)$$),
               ('wait''s job_id', $$SELECT job_engine.wait(NULL)$$),
               ('resubmit''s job_id', $$SELECT job_engine.resubmit(NULL)$$)) v(arg, sql);
SELECT pg_temp.hints(sql, '22004', '^Pass a value or leave the argument out to get its default\.$',
                     'NULL ' || arg || ' (has a default): the hint suggests leaving it out')
  FROM (VALUES ('submit''s args', $$SELECT job_engine.submit('t490_greet', NULL)$$),
               ('submit''s priority', $$SELECT job_engine.submit('t490_greet', priority => NULL)$$),
               ('register_handler''s queue', $$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', queue => NULL)$$),
               ('register_handler''s max_attempts', $$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', max_attempts => NULL)$$),
               ('wait''s timeout', $$SELECT job_engine.wait(1, NULL)$$),
               ('publish''s payload', $$SELECT job_engine.publish('t490.e', NULL)$$)) v(arg, sql);

-------------------------------------------------------------------------------
-- Intervals
-------------------------------------------------------------------------------
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', timeout => '0')$$,
    '22023', 'must be greater than zero',
    'timeout 0: "must be positive", and the hint says greater than zero');
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', backoff_base => '-1 second')$$,
    '22023', 'cannot be negative', 'a negative backoff_base: the hint says it cannot be negative');
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)',
                                                           backoff_max => '99 years 11 months 30 days')$$,
    '22015', 'counting a month as 30 days',
    '99 years 11 months 30 days: 22015, and the hint says how intervals are compared');
SELECT matches(pg_temp.error_of($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)',
                                                                    backoff_max => '99 years 11 months 30 days')$$),
    '^22015\|[^|]*at least 100 years \(months count as 30 days\)',
    'the message says the interval counts as 100 years');

-- A timeout is a statement_timeout, an int of milliseconds.
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', timeout => '1 year')$$,
    '22015', '2147483647 ms', 'timeout 1 year: refused (22015), not capped');
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', timeout => '24 days 20:31:23.648')$$,
    '22015', 'split longer work', 'timeout one millisecond above 2^31-1 ms: refused (22015)');
SELECT pg_temp.hints($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', timeout => '200 years')$$,
    '22015', '2147483647 ms', 'timeout 200 years: the statement_timeout hint, not the 100 years one');
SELECT lives_ok($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', timeout => '24 days 20:31:23.647')$$,
    'timeout of exactly 2^31-1 ms is accepted');
SELECT is((SELECT timeout FROM job_engine.handlers WHERE name = 't490_x'), '24 days 20:31:23.647'::interval,
    'and stored as given');

-------------------------------------------------------------------------------
-- Blank values: the hint fits the argument
-------------------------------------------------------------------------------
SELECT pg_temp.hints($$SELECT job_engine.abort(1, ' ')$$, '22023', '^Give a reason',
    'a blank abort reason: "Give a reason"');
SELECT pg_temp.hints($$SELECT job_engine.register_handler(' ', 't490.greet(jsonb)')$$, '22023',
    '^Give a non-blank name\.$', 'a blank handler name: "Give a non-blank name."');
SELECT pg_temp.hints($$SELECT job_engine_internal._require_name(' ', 'cron', blank_hint => 'Give a cron expression, e.g. ''0 3 * * *''.')$$,
    '22023', '^Give a cron expression', 'a blank value gets the hint its caller gives');

-------------------------------------------------------------------------------
-- unregister_handler names what still depends on the handler
-------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.detail_of(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT split_part(pg_temp.error_of(sql), '|', 3)
$$;
SELECT job_engine.register_handler('t490_dep', 't490.greet(jsonb)');
SELECT job_engine.subscribe('t490.ordered', 't490_dep') AS sub_a \gset
SELECT job_engine.subscribe('t490.paid', 't490_dep') AS sub_b \gset
SELECT matches(pg_temp.error_of($$SELECT job_engine.unregister_handler('t490_dep')$$),
    '^2BP01\|', 'a handler with subscriptions cannot be unregistered (2BP01)');
SELECT is(pg_temp.detail_of($$SELECT job_engine.unregister_handler('t490_dep')$$),
    format('Subscriptions: %s (t490.ordered, owned by %s), %s (t490.paid, owned by %s).',
           :sub_a, quote_ident(current_user), :sub_b, quote_ident(current_user)),
    'the DETAIL lists the subscriptions, with their event types and owners');
SELECT job_engine.unsubscribe(:sub_a);
SELECT job_engine.unsubscribe(:sub_b);
SELECT job_engine.register_handler('t490_uses_a', 't490.greet(jsonb)', compensate_with => 't490_dep');
SELECT job_engine.register_handler('t490_uses_b', 't490.greet(jsonb)', compensate_with => 't490_dep');
SELECT matches(pg_temp.error_of($$SELECT job_engine.unregister_handler('t490_dep')$$),
    '^2BP01\|', 'a handler named in compensate_with cannot be unregistered (2BP01)');
SELECT is(pg_temp.detail_of($$SELECT job_engine.unregister_handler('t490_dep')$$),
    format('Handlers naming it in compensate_with: "t490_uses_a" (owned by %1$s), "t490_uses_b" (owned by %1$s).',
           quote_ident(current_user)),
    'the DETAIL names the handlers, with their owners');

-------------------------------------------------------------------------------
-- retry_on => '{}' and non-object args are accepted (reference.md)
-------------------------------------------------------------------------------
SELECT lives_ok($$SELECT job_engine.register_handler('t490_x', 't490.greet(jsonb)', retry_on => ARRAY[]::text[])$$,
    'an empty retry_on is accepted');
SELECT is((SELECT retry_on FROM job_engine.handlers WHERE name = 't490_x'), '{}'::text[],
    'and stored empty, not as NULL (the default list)');
SELECT ok(NOT job_engine_internal._retryable('40001', '{}') AND job_engine_internal._retryable(NULL, '{}'),
    'an empty retry_on retries no error, only a crash');
CREATE FUNCTION pg_temp.submitted_args(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    job bigint := job_engine.submit('t490_greet', a);
BEGIN
    RETURN (SELECT j.args FROM job_engine.jobs j WHERE j.id = job);
END
$$;
SELECT is(pg_temp.submitted_args(a), a, format('args %s (not an object) is accepted and kept', a))
  FROM (VALUES ('[1, 2]'::jsonb), ('5'), ('"text"'), ('null')) v(a);

-------------------------------------------------------------------------------
-- A schedule of seconds on a pg_cron older than 1.5
-------------------------------------------------------------------------------
SELECT matches(job_engine_internal._invalid_cron_hint('30 seconds', '1.4-1'),
    'need pg_cron 1\.5 or later; this database has pg_cron 1\.4-1',
    'pg_cron 1.4 refusing ''30 seconds'': the hint names the versions');
SELECT matches(job_engine_internal._invalid_cron_hint('61 seconds', '1.6'), '1 to 59 seconds',
    'pg_cron 1.5 or later refusing ''61 seconds'': the hint gives the range');
SELECT matches(job_engine_internal._invalid_cron_hint('61 * * * *', '1.4-1'), '^Use five cron fields',
    'another invalid expression: the hint shows cron fields');

-------------------------------------------------------------------------------
-- wait() on a job of this very transaction returns at once
-------------------------------------------------------------------------------
SELECT job_engine.submit('t490_greet') AS own_job \gset
SELECT clock_timestamp() AS before_wait \gset
SELECT is(job_engine.wait(:own_job, '3 seconds'), 'created',
    'wait() on a job this transaction created returns its state');
SELECT ok(clock_timestamp() - :'before_wait'::timestamptz < interval '2 seconds',
    'at once, without waiting for the timeout');

-- An unknown handler: submitting to it, the hint says to register it;
-- unregistering it, there is nothing to register, and the hint says where
-- the registered ones are listed.
SELECT pg_temp.hints($$SELECT job_engine.submit('t490_missing')$$, '42883',
    '^Register it first with job_engine.register_handler\(\)',
    'submit of an unknown handler: the hint says to register it');
SELECT pg_temp.hints($$SELECT job_engine.unregister_handler('t490_missing')$$, '42883',
    '^There is nothing to unregister: registered handlers are listed in job_engine.handlers\.$',
    'unregister_handler of an unknown handler: the hint does not say to register it');

-- The CONTEXT of an error names the caller's own frames, not the engine's
-- internal functions (job_engine_internal._submit and the statement that calls it).
SELECT unalike(pg_temp.context_of($$SELECT job_engine.submit('t490_missing')$$),
    '%job_engine.\_%', 'an unknown handler''s error names no internal function in its CONTEXT');
SELECT unalike(pg_temp.context_of($$SELECT job_engine.abort(NULL, 'x')$$),
    '%job_engine.\_%', 'nor does a NULL argument''s');
SELECT alike(pg_temp.context_of($$SELECT job_engine.submit('t490_missing')$$),
    '%PL/pgSQL function pg_temp%context_of(text)%EXECUTE%',
    'the caller''s own frame stays in the CONTEXT');

SELECT * FROM finish();
ROLLBACK;

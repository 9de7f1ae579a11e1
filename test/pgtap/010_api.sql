-- The SQL interface of docs/reference.md and the extension rules of
-- docs/architecture.md §7: function signatures, view columns, types, settings.
-- Read-only; rolled back.
BEGIN;
SELECT plan(85);

-- functions: one signature each, with the argument names of the contract ---------
CREATE TEMP TABLE tap_api_signature (name text, args text, result text);
INSERT INTO tap_api_signature VALUES
    ('register_handler', 'name text, fn regprocedure, queue text, max_attempts integer, backoff_base interval, backoff_max interval, timeout interval, retry_on text[], compensate_with text', 'void'),
    ('register_c_handler', 'name text, library text, symbol text, queue text, max_attempts integer, backoff_base interval, backoff_max interval, timeout interval, retry_on text[], compensate_with text', 'void'),
    ('unregister_handler', 'name text', 'void'),
    ('submit', 'handler text, args jsonb, queue text, priority integer, run_at timestamp with time zone, max_attempts integer, idempotency_key text, correlation_id uuid, depends_on bigint[], ordering_key text', 'bigint'),
    ('submit_many', 'handler text, args jsonb[], queue text, priority integer, run_at timestamp with time zone', 'SETOF bigint'),
    ('subscribe', 'event_type text, handler text', 'bigint'),
    ('unsubscribe', 'subscription_id bigint', 'boolean'),
    ('publish', 'event_type text, payload jsonb, correlation_id uuid', 'bigint'),
    ('abort', 'job_id bigint, reason text', 'boolean'),
    ('resubmit', 'job_id bigint', 'bigint'),
    ('run_now', 'job_id bigint', 'boolean'),
    ('reschedule', 'job_id bigint, run_at timestamp with time zone', 'void'),
    ('retry', 'job_id bigint', 'void'),
    ('wait', 'job_id bigint, timeout interval', 'text'),
    ('pause_queue', 'queue text', NULL),
    ('resume_queue', 'queue text', NULL),
    ('configure_queue', 'queue text, concurrency integer, group_commit integer, retention interval, failed_retention interval', NULL),
    ('schedule', 'schedule_name text, cron text, handler text, args jsonb, database text', 'bigint'),
    ('submit_from_schedule', 'schedule_name text, handler text, args jsonb', 'bigint'),
    ('schedule_rows', '', 'TABLE(name text, owner name, database text, cron text, handler text, args jsonb, queue text, active boolean, cron_job_id bigint, last_run_status text, last_run_started_at timestamp with time zone, last_run_finished_at timestamp with time zone, last_run_message text)'),
    ('unschedule', 'schedule_name text', 'boolean'),
    ('purge', 'older_than interval', 'bigint'),
    ('context', '', 'jsonb'),
    ('current_job_id', '', 'bigint'),
    ('metrics', '', 'text'),
    ('metric_rows', '', 'TABLE(metric text, type text, help text, database text, queue text, state text, outcome text, quantile text, value double precision)');

SELECT is((SELECT count(*) FROM pg_proc p
            WHERE p.pronamespace = 'job_engine'::regnamespace AND p.proname = s.name),
          1::bigint, format('%s() has exactly one signature', s.name))
  FROM tap_api_signature s ORDER BY s.name;

SELECT is((SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p
            WHERE p.pronamespace = 'job_engine'::regnamespace AND p.proname = s.name),
          s.args, format('%s() takes (%s)', s.name, s.args))
  FROM tap_api_signature s ORDER BY s.name;

SELECT is(
    ARRAY(SELECT s.name || ' returns ' || pg_get_function_result(p.oid)
            FROM tap_api_signature s
            JOIN pg_proc p ON p.pronamespace = 'job_engine'::regnamespace AND p.proname = s.name
           WHERE s.result IS NOT NULL ORDER BY s.name),
    ARRAY(SELECT name || ' returns ' || result FROM tap_api_signature
           WHERE result IS NOT NULL ORDER BY name),
    'functions return the types of the contract');

SELECT is(
    ARRAY(SELECT p.proname || ': ' || pg_get_expr(p.proargdefaults, 0)
            FROM pg_proc p
           WHERE p.pronamespace = 'job_engine'::regnamespace
             AND p.proname IN ('register_handler', 'submit', 'submit_many', 'publish', 'wait', 'schedule')
           ORDER BY p.proname),
    ARRAY['publish: ''{}''::jsonb, NULL::uuid',
          'register_handler: ''default''::text, 3, ''00:00:01''::interval, ''01:00:00''::interval, NULL::interval, NULL::text[], NULL::text',
          'schedule: ''{}''::jsonb, NULL::text',
          'submit: ''{}''::jsonb, NULL::text, 0, NULL::timestamp with time zone, NULL::integer, NULL::text, NULL::uuid, NULL::bigint[], NULL::text',
          'submit_many: NULL::text, 0, NULL::timestamp with time zone',
          'wait: ''00:00:30''::interval'],
    'argument defaults are those of the contract');

-- views ------------------------------------------------------------------------------
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'jobs' ORDER BY ordinal_position),
    ARRAY['id', 'handler', 'queue', 'state', 'priority', 'attempts', 'max_attempts', 'args', 'result',
          'created_at', 'run_at', 'started_at', 'finished_at', 'duration', 'correlation_id',
          'parent_job_id', 'event_id', 'resubmitted_from', 'owner', 'last_error', 'abort_reason',
          'schedule'],
    'view jobs has exactly the columns of the contract, in order');
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'schedules' ORDER BY ordinal_position),
    ARRAY['name', 'owner', 'database', 'cron', 'handler', 'args', 'queue', 'active', 'cron_job_id',
          'last_run_status', 'last_run_started_at', 'last_run_finished_at', 'last_run_message'],
    'view schedules has exactly the columns of the contract, in order');
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'attempts' ORDER BY ordinal_position),
    ARRAY['job_id', 'attempt', 'outcome', 'started_at', 'finished_at', 'duration', 'worker_pid',
          'sqlstate', 'message', 'detail', 'hint', 'context'],
    'view attempts has exactly the columns of the contract, in order');
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'events' ORDER BY ordinal_position),
    ARRAY['id', 'event_type', 'payload', 'correlation_id', 'published_at', 'jobs_created'],
    'view events has exactly the columns of the contract, in order');
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'workers' ORDER BY ordinal_position),
    ARRAY['pid', 'database', 'state', 'job_id', 'attempt', 'since'],
    'view workers has exactly the columns of the contract, in order');
SELECT has_view('job_engine', 'queue_stats', 'view queue_stats exists');
SELECT is(ARRAY(SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'job_engine' AND table_name = 'metric_samples' ORDER BY ordinal_position),
    ARRAY['metric', 'type', 'help', 'database', 'queue', 'state', 'outcome', 'quantile', 'value'],
    'view metric_samples has exactly the columns of the contract, in order');
SELECT col_type_is('job_engine', 'jobs', 'duration', 'interval', 'jobs.duration is an interval');
SELECT col_type_is('job_engine', 'attempts', 'duration', 'interval', 'attempts.duration is an interval');
SELECT col_type_is('job_engine', 'jobs', 'args', 'jsonb', 'jobs.args is jsonb');
SELECT col_type_is('job_engine', 'jobs', 'result', 'jsonb', 'jobs.result is jsonb');

SELECT enum_has_labels('job_engine', 'job_state',
    ARRAY['created', 'running', 'retrying', 'succeeded', 'failed', 'aborted'],
    'job states are those of the lifecycle');
SELECT enum_has_labels('job_engine', 'attempt_outcome',
    ARRAY['running', 'succeeded', 'failed', 'aborted', 'crashed'],
    'attempt outcomes are those of the contract');

-- outside a job -------------------------------------------------------------------------
SELECT is(job_engine.context(), NULL, 'context() is NULL outside a job');
SELECT is(job_engine.current_job_id(), NULL, 'current_job_id() is NULL outside a job');

-- extension rules (§5) ---------------------------------------------------------------------
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'job_engine'), false,
    'the extension is not relocatable');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
             FROM pg_proc p
            WHERE p.pronamespace IN ('job_engine'::regnamespace, 'job_engine_internal'::regnamespace)
              AND p.prokind IN ('f', 'p')
              AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
    ARRAY['job_engine_internal._jobs_guard()', 'job_engine_internal._member_roles()'],
    'every function pins search_path = pg_catalog, pg_temp, but the row trigger of _jobs and the policy''s _member_roles()');
SELECT is((SELECT array_agg(DISTINCT l.lanname) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.oid IN ('job_engine_internal._jobs_guard()'::regprocedure,
                            'job_engine_internal._running_truncated()'::regprocedure)), ARRAY['c']::name[],
    'the triggers of _jobs (the lifecycle guard, which also notes rows for the claim marks and running counts; TRUNCATE), which run no SQL, are C');
SELECT is((SELECT array_agg(t.tgname::text || ':' || t.tgenabled::text ORDER BY t.tgname)
             FROM pg_trigger t
            WHERE t.tgrelid = 'job_engine._jobs'::regclass AND NOT t.tgisinternal),
    ARRAY['jobs_delete_attempts:O', 'jobs_lifecycle_guard:A', 'jobs_running_truncated:A'],
    'one row trigger on _jobs, the lifecycle guard, enabled ALWAYS so that the shared tables follow every row; no trigger with a WHEN clause');
SELECT ok((SELECT extconfig @> ARRAY['job_engine._jobs'::regclass, 'job_engine._attempts'::regclass,
                                     'job_engine.handlers'::regclass, 'job_engine.queues'::regclass]::oid[]
             FROM pg_extension WHERE extname = 'job_engine'),
    'jobs, attempts, handlers and queues are dumped by pg_dump');

-- settings -----------------------------------------------------------------------------------
SELECT ok(current_setting(s, true) IS NOT NULL, format('setting %s exists', s))
  FROM unnest(ARRAY['job_engine.databases', 'job_engine.max_workers', 'job_engine.poll_interval',
                    'job_engine.default_timeout', 'job_engine.notify', 'job_engine.retention']) AS s
 ORDER BY s;
SELECT ok(current_database() = ANY (string_to_array(replace(current_setting('job_engine.databases'), ' ', ''), ',')),
    'this database is served by job_engine');
SELECT ok(EXISTS (SELECT 1 FROM job_engine.workers WHERE database = current_database()),
    'executors of this database are listed in workers');

-- \df job_engine.* lists the public functions only: the internal ones
-- live in job_engine_internal.
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p
                 WHERE p.pronamespace = 'job_engine'::regnamespace
                   AND p.proname ~ '^_'
                 ORDER BY 1),
          '{}'::text[], 'job_engine holds no internal function');
SELECT ok((SELECT count(*) FROM pg_proc p
            WHERE p.pronamespace = 'job_engine_internal'::regnamespace) > 50,
          'the internal functions are in job_engine_internal');

-- Every public object says what it is in \df+, \dv+ and \dd (98_comments.sql).
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = 'job_engine'::regnamespace AND p.proname !~ '^_'
       AND obj_description(p.oid, 'pg_proc') IS NULL
    UNION ALL
    SELECT c.oid::regclass::text FROM pg_class c
     WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relname !~ '^_'
       AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
    UNION ALL
    SELECT t.oid::regtype::text FROM pg_type t
     WHERE t.typnamespace = 'job_engine'::regnamespace AND t.typname !~ '^_'
       AND t.typtype = 'e' AND obj_description(t.oid, 'pg_type') IS NULL$$,
    'every public function, table, view and type of job_engine has a comment');

SELECT * FROM finish();
ROLLBACK;

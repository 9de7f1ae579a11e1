-- The ExecutionContext seen by a running handler: the role it runs as,
-- context() and current_job_id(), and jobs submitted from inside a job.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(29);

CALL pg_temp.drop_handlers('tap_ctx', '0 seconds');
DROP SCHEMA IF EXISTS tap_ctx CASCADE;
DROP ROLE IF EXISTS tap_ctx_owner;
CREATE SCHEMA tap_ctx;
CREATE ROLE tap_ctx_owner;

-- Reports who runs it and what context() says.
CREATE FUNCTION tap_ctx.who(args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('current_user', current_user::text,
                              'context', job_engine.context(),
                              'current_job_id', job_engine.current_job_id(),
                              'now', clock_timestamp())
$$;
REVOKE EXECUTE ON FUNCTION tap_ctx.who(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tap_ctx.who(jsonb) TO tap_ctx_owner;

-- Submits children, then reports.
CREATE FUNCTION tap_ctx.parent(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    child bigint;
    many bigint[];
BEGIN
    child := job_engine.submit('tap_ctx_child', jsonb_build_object('from', job_engine.current_job_id()));
    many := ARRAY(SELECT job_engine.submit_many('tap_ctx_child', ARRAY['{"many": 1}', '{"many": 2}']::jsonb[]));
    IF args ? 'fail' THEN
        RAISE EXCEPTION 'parent fails after submitting' USING ERRCODE = '22000';
    END IF;
    RETURN jsonb_build_object('child', child, 'many', to_jsonb(many));
END
$$;
CREATE FUNCTION tap_ctx.child(args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT job_engine.context()
$$;

SELECT job_engine.register_handler('tap_ctx_who', 'tap_ctx.who(jsonb)', queue => 'tap_ctx_q',
    max_attempts => 1, timeout => '10 seconds') IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_ctx_parent', 'tap_ctx.parent(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_ctx_child', 'tap_ctx.child(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.register_handler('tap_ctx q"uote''s \ name', 'tap_ctx.child(jsonb)', max_attempts => 1) IS NULL AS registered \gset

-- a job runs as its owner, with its context ----------------------------------------------
SET ROLE tap_ctx_owner;
SELECT job_engine.submit('tap_ctx_who', '{"k": 1}',
    correlation_id => 'a3c5e3b4-3f0e-4f7c-9d7e-5b1c2d3e4f50') AS who \gset
RESET ROLE;
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :who)),
    'the job of a non-superuser role runs');
SELECT is((SELECT result->>'current_user' FROM job_engine.jobs WHERE id = :who), 'tap_ctx_owner',
    'the handler runs as the role that submitted the job');
SELECT is((SELECT owner::text FROM job_engine.jobs WHERE id = :who), 'tap_ctx_owner',
    'the job is owned by that role');
SELECT is((SELECT (result->>'current_job_id')::bigint FROM job_engine.jobs WHERE id = :who), :who::bigint,
    'current_job_id() inside the handler is the job''s id');
SELECT is((SELECT ARRAY(SELECT jsonb_object_keys(result->'context') ORDER BY 1) FROM job_engine.jobs WHERE id = :who),
    ARRAY['attempt', 'correlation_id', 'deadline', 'event_id', 'handler', 'job_id', 'owner', 'parent_job_id', 'queue'],
    'context() has exactly the keys of the contract');
SELECT is((SELECT (result->'context') - 'deadline'::text FROM job_engine.jobs WHERE id = :who),
    jsonb_build_object('job_id', :who, 'attempt', 1, 'handler', 'tap_ctx_who', 'queue', 'tap_ctx_q',
                       'correlation_id', 'a3c5e3b4-3f0e-4f7c-9d7e-5b1c2d3e4f50', 'parent_job_id', NULL,
                       'event_id', NULL, 'owner', 'tap_ctx_owner'),
    'context() names the job, attempt, handler, queue, correlation id and owner');
SELECT ok((SELECT (j.result->'context'->>'deadline')::timestamptz
                  BETWEEN a.started_at + interval '10 seconds' AND a.finished_at + interval '10 seconds'
             FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
            WHERE j.id = :who),
    'the deadline is the handler''s timeout after the attempt started');
SELECT ok((SELECT (j.result->'context'->>'deadline')::timestamptz > (j.result->>'now')::timestamptz
             FROM job_engine.jobs j WHERE j.id = :who),
    'the deadline lies ahead while the handler runs');
SELECT is((SELECT correlation_id FROM job_engine.jobs WHERE id = :who), 'a3c5e3b4-3f0e-4f7c-9d7e-5b1c2d3e4f50'::uuid,
    'the job keeps the correlation id given at submit');

-- EXECUTE is checked again when the job runs --------------------------------------------
-- The queue is paused while the privilege goes, so the job surely runs after it.
SELECT job_engine.pause_queue('tap_ctx_q');
SET ROLE tap_ctx_owner;
SELECT job_engine.submit('tap_ctx_who') AS revoked \gset
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tap_ctx.who(jsonb) FROM tap_ctx_owner;
SELECT job_engine.resume_queue('tap_ctx_q');
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'failed' FROM job_engine.jobs WHERE id = %s$$, :revoked)),
    'a job whose owner lost EXECUTE before it ran fails');
SELECT row_eq(format($$SELECT sqlstate, outcome FROM job_engine.attempts WHERE job_id = %s$$, :revoked),
    ROW('42501'::text, 'failed'::job_engine.attempt_outcome),
    'its attempt records the permission error (42501)');
GRANT EXECUTE ON FUNCTION tap_ctx.who(jsonb) TO tap_ctx_owner;

-- a handler's name appears verbatim in its context ------------------------------------------
SELECT job_engine.submit('tap_ctx q"uote''s \ name') AS quoted \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = %s$$, :quoted)),
    'a job of a handler with quotes and a backslash in its name runs');
SELECT is((SELECT result->>'handler' FROM job_engine.jobs WHERE id = :quoted), 'tap_ctx q"uote''s \ name',
    'context() gives the handler''s name verbatim');

-- jobs submitted by a job -----------------------------------------------------------------
SELECT job_engine.submit('tap_ctx_parent', correlation_id => '0b7f2a4c-1111-4222-8333-944455556666') AS parent \gset
SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = 3 AND bool_and(state = 'succeeded')
                                        FROM job_engine.jobs WHERE parent_job_id = %s$$, :parent)),
    'the three children of the parent job run');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :parent), 'succeeded', 'the parent succeeded');
SELECT set_eq(format($$SELECT id FROM job_engine.jobs WHERE parent_job_id = %s$$, :parent),
    format($$SELECT (result->>'child')::bigint FROM job_engine.jobs WHERE id = %1$s
             UNION ALL SELECT jsonb_array_elements_text(result->'many')::bigint FROM job_engine.jobs WHERE id = %1$s$$,
           :parent),
    'the children are the jobs the parent submitted');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :parent
            AND correlation_id = '0b7f2a4c-1111-4222-8333-944455556666'), 3::bigint,
    'children of submit and submit_many inherit the parent''s correlation id');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :parent AND owner = current_user), 3::bigint,
    'children are owned by the parent''s owner');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE parent_job_id = :parent
            AND (result->>'parent_job_id')::bigint = :parent
            AND (result->>'correlation_id')::uuid = '0b7f2a4c-1111-4222-8333-944455556666'), 3::bigint,
    'context() of a child names its parent and the inherited correlation id');
SELECT is((SELECT (result->>'job_id')::bigint FROM job_engine.jobs
            WHERE id = (SELECT (result->>'child')::bigint FROM job_engine.jobs WHERE id = :parent)),
    (SELECT (result->>'child')::bigint FROM job_engine.jobs WHERE id = :parent),
    'a child''s context() gives its own id, not the parent''s');
SELECT is((SELECT args FROM job_engine.jobs
            WHERE id = (SELECT (result->>'child')::bigint FROM job_engine.jobs WHERE id = :parent)),
    jsonb_build_object('from', :parent), 'the child got the args the parent gave it');

-- a child with its own correlation id keeps it
CREATE FUNCTION tap_ctx.parent_own_corr(args jsonb) RETURNS bigint LANGUAGE sql AS $$
    SELECT job_engine.submit('tap_ctx_child', correlation_id => '99999999-8888-4777-8666-555555555555')
$$;
SELECT job_engine.register_handler('tap_ctx_parent_own', 'tap_ctx.parent_own_corr(jsonb)', max_attempts => 1) IS NULL AS registered \gset
SELECT job_engine.submit('tap_ctx_parent_own') AS parent_own \gset
SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = 1 AND bool_and(state = 'succeeded')
                                        FROM job_engine.jobs WHERE parent_job_id = %s$$, :parent_own)),
    'a child submitted with its own correlation id runs');
SELECT is((SELECT correlation_id FROM job_engine.jobs WHERE parent_job_id = :parent_own),
    '99999999-8888-4777-8666-555555555555'::uuid, 'an explicit correlation id wins over the inherited one');

-- children exist only if the parent's attempt commits
SELECT job_engine.submit('tap_ctx_parent', '{"fail": true}') AS failing_parent \gset
SELECT ok(pg_temp.wait_until(format($$SELECT state = 'failed' FROM job_engine.jobs WHERE id = %s$$, :failing_parent)),
    'a parent failing after submitting children fails');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE parent_job_id = :failing_parent), 0::bigint,
    'the children it submitted were rolled back with it');

-- outside any job, in this session, nothing leaked
SELECT is(job_engine.current_job_id(), NULL, 'current_job_id() is still NULL in the test session');
SELECT is(job_engine.context(), NULL, 'context() is still NULL in the test session');
SELECT is((SELECT parent_job_id FROM job_engine.jobs WHERE id = :parent), NULL,
    'a job submitted from a session has no parent');
SELECT isnt((SELECT correlation_id FROM job_engine.jobs WHERE id = :failing_parent),
    (SELECT correlation_id FROM job_engine.jobs WHERE id = :parent),
    'top-level jobs do not share correlation ids');

CALL pg_temp.drop_handlers('tap_ctx');
DROP SCHEMA tap_ctx CASCADE;
DROP ROLE tap_ctx_owner;
SELECT * FROM finish();

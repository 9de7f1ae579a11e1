-- The database's owner sees every role's jobs in job_engine.jobs
-- (jobs_of_database_owner, for pg_dump), but acts only on the jobs of roles
-- it is a member of, like any role.  Told "job N does not exist" about a job
-- it has just read in the view, it would not know what to do: for it the
-- control functions say whose job it is (42501) instead; a role that does
-- not see the job still gets P0002, which reveals nothing.  One
-- transaction, rolled back: no job here ever runs, and the database gets
-- its owner back.
BEGIN;
SELECT plan(8);

CREATE SCHEMA tap_dboa;
CREATE FUNCTION tap_dboa.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
GRANT USAGE ON SCHEMA tap_dboa TO PUBLIC;
CREATE ROLE tap_dboa_owner;
CREATE ROLE tap_dboa_other;
CREATE ROLE tap_dboa_stranger;
SELECT job_engine.register_handler('tap_dboa_h', 'tap_dboa.ok(jsonb)') IS NULL AS registered \gset

SET ROLE tap_dboa_other;
SELECT job_engine.submit('tap_dboa_h', '{"of": "another role"}',
                         run_at => now() + interval '1 day') AS waiting \gset
RESET ROLE;

DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO tap_dboa_owner', current_database());
END $$;

SET ROLE tap_dboa_owner;
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE id = :waiting), 1::bigint,
    'the database''s owner sees another role''s job in the jobs view');
SELECT throws_ok(format('SELECT job_engine.abort(%s, %L)', :waiting, 'stop'), '42501',
    format('job %s belongs to role tap_dboa_other, of which role tap_dboa_owner is not a member', :waiting),
    'abort() of it says whose job it is, not that it does not exist');
SELECT throws_ok(format('SELECT job_engine.run_now(%s)', :waiting), '42501', NULL,
    '... so does run_now()');
SELECT throws_ok(format('SELECT job_engine.reschedule(%s, now())', :waiting), '42501', NULL,
    '... reschedule()');
SELECT throws_ok(format('SELECT job_engine.wait(%s, %L)', :waiting, '0'), '42501', NULL,
    '... wait()');
SELECT throws_ok(format('SELECT job_engine.retry(%s)', :waiting), '42501', NULL,
    '... retry()');
SELECT throws_ok(format('SELECT job_engine.resubmit(%s)', :waiting), '42501', NULL,
    '... and resubmit()');
RESET ROLE;

SET ROLE tap_dboa_stranger;
SELECT throws_ok(format('SELECT job_engine.abort(%s, %L)', :waiting, 'stop'), 'P0002',
    format('job %s does not exist', :waiting),
    'a role that does not see the job is still told it does not exist');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

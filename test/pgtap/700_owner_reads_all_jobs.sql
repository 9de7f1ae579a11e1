-- The database's owner, not a superuser, reads every role's jobs the way
-- pg_dump does (docs/architecture.md §7, "Owners in dumps and upgrades"):
-- pg_dump sets row_security = off unless told --enable-row-security, and
-- PostgreSQL then refuses a query that row-level security applies to
-- rather than return fewer rows: the owner's dump without the option fails
-- (never silently partial), and with it the owner's policies on _jobs,
-- _attempts and _events (jobs_of_database_owner and the like,
-- src/sql/90_views.sql) show every role's rows.  One transaction, rolled
-- back: no job here ever runs, and the database gets its owner back.
BEGIN;
SELECT plan(4);

CREATE SCHEMA tap_dump;
CREATE FUNCTION tap_dump.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
GRANT USAGE ON SCHEMA tap_dump TO PUBLIC;
CREATE ROLE tap_dump_owner;
CREATE ROLE tap_dump_other;
SELECT job_engine.register_handler('tap_dump_h', 'tap_dump.ok(jsonb)') IS NULL AS registered \gset

SET ROLE tap_dump_other;
SELECT job_engine.submit('tap_dump_h', '{"of": "another role"}',
                         run_at => now() + interval '1 day') AS other_job \gset
SELECT job_engine.publish('tap_dump.event', '{"of": "another role"}') AS other_event \gset
RESET ROLE;
-- an attempt of that job, as an executor would have written it
INSERT INTO job_engine._attempts (job_id, attempt, outcome, message)
VALUES (:other_job, 1, 'failed', 'of another role');

DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO tap_dump_owner', current_database());
END $$;

SET ROLE tap_dump_owner;
SET row_security = off;
SELECT throws_ok($$SELECT count(*) FROM job_engine._jobs$$, '42501', NULL,
    'with row_security = off (pg_dump without --enable-row-security) the owner''s read of _jobs fails, not returns fewer rows');
RESET row_security;
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE id = :other_job), 1::bigint,
    'with row security on (pg_dump --enable-row-security) the database owner reads another role''s job in _jobs');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id = :other_job), 1::bigint,
    '... its attempt in _attempts');
SELECT is((SELECT count(*) FROM job_engine._events WHERE id = :other_event), 1::bigint,
    '... and another role''s event in _events');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

-- The policy on _jobs (src/sql/90_views.sql) shows a role the jobs of the
-- roles it is a member of, as pg_has_role(owner, 'MEMBER') decides; the list
-- is kept per role (src/visibility.c).  Membership of pg_database_owner
-- follows the database's owner: ALTER DATABASE ... OWNER TO changes it
-- without touching pg_authid or pg_auth_members, and the kept list must not
-- outlive it.  One transaction, rolled back: no job here ever runs, and the
-- database gets its owner back.
BEGIN;
SELECT plan(4);

CREATE SCHEMA tap_mro;
CREATE FUNCTION tap_mro.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
GRANT USAGE ON SCHEMA tap_mro TO PUBLIC;
CREATE ROLE tap_mro_first;
CREATE ROLE tap_mro_second;
SELECT job_engine.register_handler('tap_mro_h', 'tap_mro.ok(jsonb)') IS NULL AS registered \gset

DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO tap_mro_first', current_database());
END $$;

-- A job of pg_database_owner: the database's owner may act as that role.
SET ROLE tap_mro_first;
SET ROLE pg_database_owner;
SELECT job_engine.submit('tap_mro_h', '{"of": "the database owner"}',
                         run_at => now() + interval '1 day') AS owners_job \gset
RESET ROLE;

SET ROLE tap_mro_first;
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE id = :owners_job), 1::bigint,
    'the database''s owner sees the job of pg_database_owner');
RESET ROLE;

DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO tap_mro_second', current_database());
END $$;

SET ROLE tap_mro_first;
SELECT is(pg_has_role('pg_database_owner', 'MEMBER'), false,
    'once the database has another owner, the former one is no member of pg_database_owner');
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE id = :owners_job), 0::bigint,
    '... and no longer sees its job in job_engine.jobs');
RESET ROLE;
SET ROLE tap_mro_second;
SELECT is((SELECT count(*) FROM job_engine.jobs WHERE id = :owners_job), 1::bigint,
    'the new owner sees it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

-- What pg_dump and pg_upgrade need of job_engine's tables (docs/architecture.md,
-- "7. Security model", Owners in dumps and upgrades):
--   * no column of a reg* type pg_upgrade refuses (it accepts regclass,
--     regtype and regrole), and no role kept as a plain oid, which pg_dump
--     would write as a number that means another role, or none, elsewhere;
--   * every table and sequence with data is marked for pg_dump, and the
--     database's owner may read each one marked (pg_dump as that owner);
--   * a role's name is what the dump writes for it.
-- The TAP test test/t/600_dump_restore.pl restores across clusters.
BEGIN;
SELECT plan(6);

SELECT is(
    (SELECT coalesce(string_agg(c.relname || '.' || a.attname || ' ' || a.atttypid::regtype::text,
                                ', ' ORDER BY c.relname, a.attname), '')
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind = 'r'
        AND a.attnum > 0 AND NOT a.attisdropped
        AND a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype,
                           'regoperator'::regtype, 'regconfig'::regtype,
                           'regdictionary'::regtype, 'regnamespace'::regtype,
                           'regcollation'::regtype)),
    '', 'no column of a reg* type pg_upgrade refuses');

SELECT is(
    (SELECT string_agg(c.relname || '.' || a.attname || ' ' || a.atttypid::regtype::text,
                       ', ' ORDER BY c.relname, a.attname)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind = 'r'
        AND a.attnum > 0 AND NOT a.attisdropped
        AND a.atttypid IN ('oid'::regtype, 'regrole'::regtype)),
    '_events.publisher regrole, _jobs.owner regrole, handlers.owner regrole, subscriptions.owner regrole',
    'roles are regrole, no plain oid');

-- Tables and sequences whose rows are data (not turns of a claim) are marked.
SELECT is(
    (SELECT string_agg(c.relname, ', ' ORDER BY c.relname)
       FROM pg_class c
      WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind IN ('r', 'S')
        AND c.oid NOT IN (SELECT unnest(e.extconfig) FROM pg_extension e WHERE e.extname = 'job_engine')),
    '_queue_turns', 'every table and sequence but _queue_turns is marked for pg_dump');

SELECT is(
    (SELECT coalesce(string_agg(c.relname, ', ' ORDER BY c.relname), '')
       FROM pg_extension e CROSS JOIN unnest(e.extconfig) x(oid)
       JOIN pg_class c ON c.oid = x.oid
      WHERE e.extname = 'job_engine'
        AND NOT has_table_privilege('pg_database_owner', c.oid, 'SELECT')),
    '', 'the database''s owner may read every table and sequence pg_dump saves');

SELECT is(
    (SELECT coalesce(string_agg(c.relname || ' ' || p.privilege_type, ', '), '')
       FROM pg_class c
      CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p(privilege_type)
      WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind = 'r'
        AND has_table_privilege('pg_database_owner', c.oid, p.privilege_type)),
    '', 'and may change none of them');

CREATE ROLE "tap dump Owner";
GRANT EXECUTE ON FUNCTION job_engine.register_handler(text, regprocedure, text, integer,
    interval, interval, interval, text[], text) TO "tap dump Owner";
CREATE SCHEMA tap_dump;
CREATE FUNCTION tap_dump.fn(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA tap_dump TO "tap dump Owner";
SET ROLE "tap dump Owner";
SELECT job_engine.register_handler('tap_dump_h', 'tap_dump.fn(jsonb)') IS NULL AS registered \gset
RESET ROLE;
SELECT is((SELECT owner::text FROM job_engine.handlers WHERE name = 'tap_dump_h'), '"tap dump Owner"',
    'a handler''s owner reads as the role''s name, quoted as pg_dump writes it');

SELECT * FROM finish();
ROLLBACK;

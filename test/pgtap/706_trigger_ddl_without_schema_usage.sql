-- The library sees every command that changes a trigger (guard.c), to know
-- whether it changed one of job_engine._jobs.  A role that may not use
-- schema job_engine (USAGE revoked from PUBLIC, to keep it from submitting)
-- still creates, disables, renames and drops the triggers of its own
-- tables: looking _jobs up must not fail for it.  One transaction, rolled
-- back.
BEGIN;
SELECT plan(4);

CREATE ROLE tap_tgu;
CREATE SCHEMA tap_tgu AUTHORIZATION tap_tgu;
REVOKE USAGE ON SCHEMA job_engine FROM PUBLIC;

SET ROLE tap_tgu;
CREATE TABLE tap_tgu.t (x integer);
CREATE FUNCTION tap_tgu.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
SELECT lives_ok('CREATE TRIGGER tr BEFORE INSERT ON tap_tgu.t FOR EACH ROW EXECUTE FUNCTION tap_tgu.f()',
    'a role without USAGE on job_engine creates a trigger on its own table');
SELECT lives_ok('ALTER TABLE tap_tgu.t DISABLE TRIGGER tr',
    '... disables it');
SELECT lives_ok('ALTER TRIGGER tr ON tap_tgu.t RENAME TO tr2',
    '... renames it');
SELECT lives_ok('DROP TRIGGER tr2 ON tap_tgu.t',
    '... and drops it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

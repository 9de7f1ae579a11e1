-- job_engine: schema, lifecycle guard, SQL API and views.
--
-- Security rules for this script (PostgreSQL's extension guidelines):
--   * no CREATE OR REPLACE, every name schema-qualified, operators qualified
--     where a hostile operator could be picked up;
--   * every function pins search_path = pg_catalog, pg_temp;
--   * tables are written only through the functions below.
--
-- Public functions are thin C entry points (job_engine_gate, src/gate.c): the
-- gate captures the calling role, then runs the matching internal function
-- job_engine_internal._<name>(caller, ...) with the extension's privileges.
-- Internal functions live in their own schema, job_engine_internal, out of
-- the way of \df job_engine.*, and are not executable by PUBLIC.
--
-- The script is built by the Makefile from the pieces in src/sql/, in the
-- order listed there (types and tables before the functions that use
-- them, views before the functions that read them).  Each piece opens
-- with a banner naming its C twin: the module of src/ that does the same
-- work in C, or the one that calls it.  Edit the pieces, not this script.
--
-- Piece src/sql/00_schema.sql.  C twin: none; it refuses a job_engine
-- schema that an ordinary role prepared in advance.

\echo Use "CREATE EXTENSION job_engine" to load this file. \quit

-- The background workers run functions of this schema as a superuser, so
-- the schema must not belong to an ordinary role: one that created it in
-- advance could later plant functions the workers would run.
DO $$
DECLARE
    owner_name name;
BEGIN
    SELECT r.rolname INTO owner_name
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'job_engine'
       AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'schema job_engine is owned by role %, which is not a superuser', owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'job_engine''s workers run the functions of this schema with superuser rights.',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION job_engine again.';
    END IF;
END
$$;

-- The internal functions' schema.  Made here, so that it belongs to the
-- extension (and goes with it); CREATE SCHEMA fails if a schema of that name
-- exists already, whoever made it.
CREATE SCHEMA job_engine_internal;
COMMENT ON SCHEMA job_engine_internal IS
    'Internal functions of job_engine: called by its public functions and workers, not by applications.';

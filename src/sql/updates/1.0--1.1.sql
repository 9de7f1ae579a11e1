-- Update of job_engine from 1.0 to 1.1, run by
-- ALTER EXTENSION job_engine UPDATE.
--
-- The Makefile builds job_engine--1.0--1.1.sql from this file: the line
-- "-- @definitions" below becomes every function and view of the pieces
-- of src/sql/ (as CREATE OR REPLACE) and then the privileges piece
-- (scripts/build_update_script.pl).  What that does not carry is written
-- here, by hand: types, tables, columns, indexes, triggers, sequences,
-- pg_extension_config_dump() calls, data to migrate, and the DROP of
-- functions and views that were removed, renamed, or changed in a way that
-- CREATE OR REPLACE refuses (another result type or argument names, view
-- columns removed or reordered).  Statements that need the new functions
-- (a trigger on a new trigger function) go after the marker.  See
-- docs/upgrading.md.

\echo Use "ALTER EXTENSION job_engine UPDATE TO '1.1'" to load this file. \quit

-- @definitions

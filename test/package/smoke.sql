-- test/package/smoke.sql: run by scripts/check_package.sh, as a superuser,
-- in a throwaway cluster of a root where only the Debian package installed
-- job_engine (preloaded, job_engine.databases = 'postgres').  psql variable
-- version: the control file's default_version.  Any error fails the check.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE EXTENSION job_engine;

SELECT extversion AS extversion FROM pg_extension WHERE extname = 'job_engine' \gset
\echo job_engine :extversion installed
SELECT :'extversion' = :'version' AS version_ok \gset
\if :version_ok
\else
SELECT set_config('package_test.versions', :'extversion' || ' ' || :'version', false) \g /dev/null
DO $$
BEGIN
	RAISE EXCEPTION 'extversion and the control file''s default_version differ: %',
		current_setting('package_test.versions');
END $$;
\endif

-- A job of a role that is no superuser: jobs run as their owner.
CREATE ROLE package_test;
CREATE TABLE public.package_test_log (note text);
GRANT INSERT ON public.package_test_log TO package_test;
CREATE FUNCTION public.package_test_handler(args jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.package_test_log VALUES (args ->> 'note') $$;
SELECT job_engine.register_handler('package_test', 'public.package_test_handler(jsonb)') \g /dev/null

SET ROLE package_test;
SELECT job_engine.submit('package_test', '{"note": "from the package"}') AS job_id \gset
RESET ROLE;

-- Bounded: wait() returns as soon as the job is terminal.
SELECT job_engine.wait(:job_id, '120 seconds') AS state \gset
\echo job :job_id :state

SELECT :'state' = 'succeeded' AND EXISTS (SELECT FROM public.package_test_log
        WHERE note = 'from the package') AS job_ok \gset
\if :job_ok
\else
SELECT attempt, outcome, sqlstate, message FROM job_engine.attempts
 WHERE job_id = :job_id ORDER BY attempt;
SELECT set_config('package_test.state', :'state', false) \g /dev/null
DO $$
BEGIN
	RAISE EXCEPTION 'the job of the package test ended %, not succeeded with its row',
		current_setting('package_test.state');
END $$;
\endif

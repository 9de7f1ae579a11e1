-- 275_cron_time_zone.sql: which time zone pg_cron reads a schedule's cron
-- expression in, and what schedule() says about it (docs/reference.md,
-- schedule).  pg_cron 1.4, preloaded in the test instance, has no
-- cron.timezone and always reads GMT; pg_cron 1.5 and later read
-- cron.timezone.  schedule() itself needs pg_cron installed in the database,
-- which it is not here: test/t/150_configuration.pl sees the NOTICE.  This
-- file checks the functions behind it, and which databases job_engine serves.

SET client_min_messages = warning;

SELECT plan(23);

-------------------------------------------------------------------------------
-- pg_cron's time zone
-------------------------------------------------------------------------------

-- pg_cron 1.4 (Debian 12) has no cron.timezone; 1.5 and later (Debian 13 and
-- later, with PostgreSQL 17 and 18) have it, as a setting only a restart
-- changes.  What job_engine reports follows the pg_cron it finds.
SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'cron.timezone') AS cron_has_tz \gset
SELECT ok(EXISTS (SELECT 1 FROM pg_settings WHERE name = 'cron.database_name'),
          'pg_cron is loaded');
SELECT is(job_engine_internal._cron_time_zone(),
          CASE WHEN :'cron_has_tz' THEN current_setting('cron.timezone') ELSE 'GMT' END,
          'pg_cron reads its cron.timezone, or GMT where it has none (1.4)');
\if :cron_has_tz
SELECT skip('cron.timezone is pg_cron''s own setting here: a session cannot SET it', 1);
\else
SET cron.timezone = 'Asia/Kolkata';
SELECT is(job_engine_internal._cron_time_zone(), 'GMT',
          'a cron.timezone merely SET in the session is not pg_cron''s setting');
RESET cron.timezone;
\endif

SELECT ok(job_engine_internal._same_time_zone('UTC', 'GMT'), 'UTC and GMT read clock times alike');
SELECT ok(job_engine_internal._same_time_zone('Etc/UTC', 'GMT'), 'Etc/UTC and GMT too');
SELECT ok(job_engine_internal._same_time_zone('Asia/Kolkata', 'Asia/Colombo'),
          'Asia/Kolkata and Asia/Colombo (+05:30 all year) too');
SELECT ok(NOT job_engine_internal._same_time_zone('Asia/Kolkata', 'GMT'), 'Asia/Kolkata and GMT differ');
SELECT ok(NOT job_engine_internal._same_time_zone('Europe/London', 'GMT'),
          'Europe/London and GMT differ (in summer)');

-------------------------------------------------------------------------------
-- The NOTICE of schedule()
-------------------------------------------------------------------------------

SET TimeZone = 'UTC';
SELECT is((job_engine_internal._cron_time_zone_notice('0 9 * * *')).message, NULL,
          'a session in UTC gets no NOTICE');

SET TimeZone = 'Asia/Kolkata';
SELECT is((job_engine_internal._cron_time_zone_notice('0 9 * * *')).message,
          'pg_cron reads the cron expression "0 9 * * *" in time zone GMT, not in Asia/Kolkata',
          'a session in Asia/Kolkata is told that pg_cron reads GMT');
SELECT is((job_engine_internal._cron_time_zone_notice('0 9 * * *')).detail,
          'Asia/Kolkata is 05:30:00 ahead of GMT at present.',
          '... and how far ahead Asia/Kolkata is');
SELECT matches((job_engine_internal._cron_time_zone_notice('0 9 * * *')).hint,
               CASE WHEN :'cron_has_tz' THEN '^Write the times in GMT, or set cron\.timezone'
                    ELSE '^Write the times in GMT: .*pg_cron 1\.5' END,
               '... and to write the times in GMT, or set cron.timezone where pg_cron has it');
SELECT is((job_engine_internal._cron_time_zone_notice('30 seconds')).message, NULL,
          'an interval in seconds names no clock time: no NOTICE');

SET TimeZone = 'America/Caracas';
SELECT is((job_engine_internal._cron_time_zone_notice('@daily')).detail,
          'America/Caracas is 04:00:00 behind GMT at present.',
          'a zone west of GMT is behind it');
RESET TimeZone;

SELECT ok(NOT has_function_privilege('public', 'job_engine_internal._cron_time_zone_notice(text)', 'EXECUTE'),
          'the NOTICE function is internal');

-------------------------------------------------------------------------------
-- The WARNING of schedule() when pg_cron cannot connect
-------------------------------------------------------------------------------

-- This instance listens on a Unix socket only (test/run_pgtap.sh) and pg_cron
-- runs no background workers: every run of a schedule would fail to connect
-- to cron.host (localhost).  schedule() says so when it is made.
SELECT ok(current_setting('listen_addresses') = ''
          AND current_setting('cron.use_background_workers') = 'off'
          AND current_setting('cron.host') = 'localhost',
          'the test instance: no TCP address, pg_cron connects to localhost for every run');
SELECT is((job_engine_internal._cron_connection_warning()).message,
          'pg_cron cannot connect to this server to run the schedule',
          'schedule() warns that pg_cron cannot connect');
SELECT matches((job_engine_internal._cron_connection_warning()).detail,
               '^pg_cron connects to cron\.host \(localhost\) for every run, .*"connection failed"',
               '... says why, and what every run will do');
SELECT matches((job_engine_internal._cron_connection_warning()).hint,
               '^Set cron\.use_background_workers = on, or cron\.host to the server''s Unix socket directory',
               '... and what to set');

-------------------------------------------------------------------------------
-- job_engine.databases: names as written
-------------------------------------------------------------------------------

SELECT ok(job_engine_internal._serves_database(current_database()), 'this database is served');
SELECT ok(NOT job_engine_internal._serves_database(upper(current_database())),
          'a name differing only in case is another database');
SELECT ok(NOT job_engine_internal._serves_database('no_such_database'), 'an unlisted name is not served');
SELECT ok(NOT has_function_privilege('public', 'job_engine_internal._serves_database(name)', 'EXECUTE'),
          '_serves_database is internal');

SELECT * FROM finish();

-------------------------------------------------------------------------------
-- Schedules through pg_cron
--
-- Piece src/sql/84_schedules.sql.  C twin: none.  Its public functions are
-- thin C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

-- The time zone pg_cron reads cron expressions in: its setting cron.timezone
-- where the pg_cron loaded defines it (1.5 and later), else GMT, which pg_cron
-- 1.4 and earlier always use.  pg_settings lists only settings that a loaded
-- module defined, not a cron.timezone placeholder that is merely SET.
CREATE FUNCTION job_engine_internal._cron_time_zone()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE((SELECT s.setting FROM pg_catalog.pg_settings s
                      WHERE s.name OPERATOR(pg_catalog.=) 'cron.timezone'), 'GMT')
$$;

-- Whether the time zones a and b read clock times alike: the same offset
-- from UTC now and in mid-January and mid-July, so that daylight saving time
-- in either counts.
CREATE FUNCTION job_engine_internal._same_time_zone(a text, b text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.bool_and(pg_catalog.timezone(a, t) OPERATOR(pg_catalog.=) pg_catalog.timezone(b, t))
      FROM (VALUES (pg_catalog.now()),
                   (pg_catalog.date_trunc('year', pg_catalog.now()) OPERATOR(pg_catalog.+) interval '14 days'),
                   (pg_catalog.date_trunc('year', pg_catalog.now()) OPERATOR(pg_catalog.+) interval '195 days')) v(t)
$$;

-- What schedule() says in a NOTICE when pg_cron reads the clock times of
-- `cron` in another time zone than the session's TimeZone: a schedule
-- written as local time would run at another hour.  All NULL when there is
-- nothing to say ('N seconds' intervals of pg_cron 1.5 name no clock time).
CREATE FUNCTION job_engine_internal._cron_time_zone_notice(cron text,
        OUT message text, OUT detail text, OUT hint text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_zone text := job_engine_internal._cron_time_zone();
    session_zone text := pg_catalog.current_setting('TimeZone');
    ahead interval;
BEGIN
    IF cron OPERATOR(pg_catalog.~*) '^\s*\d+\s+seconds?\s*$'
       OR job_engine_internal._same_time_zone(cron_zone, session_zone) THEN
        RETURN;
    END IF;
    message := pg_catalog.format('pg_cron reads the cron expression "%s" in time zone %s, not in %s',
                                 cron, cron_zone, session_zone);
    ahead := pg_catalog.timezone(session_zone, pg_catalog.now())
             OPERATOR(pg_catalog.-) pg_catalog.timezone(cron_zone, pg_catalog.now());
    detail := CASE
        WHEN ahead OPERATOR(pg_catalog.>) interval '0' THEN
            pg_catalog.format('%s is %s ahead of %s at present.', session_zone, ahead, cron_zone)
        WHEN ahead OPERATOR(pg_catalog.<) interval '0' THEN
            pg_catalog.format('%s is %s behind %s at present.', session_zone,
                              OPERATOR(pg_catalog.-) ahead, cron_zone)
        ELSE
            pg_catalog.format('%s and %s differ while daylight saving time applies in one of them.',
                              session_zone, cron_zone)
        END;
    hint := CASE
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_settings s
                      WHERE s.name OPERATOR(pg_catalog.=) 'cron.timezone') THEN
            pg_catalog.format('Write the times in %s, or set cron.timezone (a restart applies it).', cron_zone)
        ELSE
            pg_catalog.format('Write the times in %s: this pg_cron has no cron.timezone setting (pg_cron 1.5 and later have).', cron_zone)
        END;
END
$$;

-- What schedule() says in a WARNING when pg_cron cannot reach the server to
-- run any schedule: without cron.use_background_workers it opens a libpq
-- connection to cron.host for every run, and with no TCP address to listen
-- on (listen_addresses empty) only a cron.host that is a socket directory
-- can connect.  Every run would fail in cron.job_run_details with
-- "connection failed", which job_engine never sees: said when the schedule
-- is made rather than found at its first run.  All NULL when the runs can
-- connect, or when a TCP address is listened on (pg_hba.conf decides then).
-- The settings are read with the gate's rights: cron.host is a superuser's.
CREATE FUNCTION job_engine_internal._cron_connection_warning(
        OUT message text, OUT detail text, OUT hint text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    host text := COALESCE(pg_catalog.current_setting('cron.host', true), 'localhost');
BEGIN
    IF pg_catalog.current_setting('cron.use_background_workers', true) OPERATOR(pg_catalog.=) 'on'
       OR pg_catalog.btrim(pg_catalog.current_setting('listen_addresses')) OPERATOR(pg_catalog.<>) ''
       OR pg_catalog.left(host, 1) OPERATOR(pg_catalog.=) '/' THEN
        RETURN;
    END IF;
    message := 'pg_cron cannot connect to this server to run the schedule';
    detail := pg_catalog.format('pg_cron connects to cron.host (%s) for every run, and the server listens on no TCP address (listen_addresses is empty): every run will fail with "connection failed" and submit nothing.', host);
    hint := 'Set cron.use_background_workers = on, or cron.host to the server''s Unix socket directory, in postgresql.conf and restart the server.';
END
$$;

-- The hint for a cron expression that pg_cron (of extension version
-- `pg_cron_version`, e.g. '1.4-1') refused.  Intervals of 'N seconds' are
-- pg_cron 1.5's: older versions refuse them as invalid schedules.
CREATE FUNCTION job_engine_internal._invalid_cron_hint(cron text, pg_cron_version text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN cron OPERATOR(pg_catalog.!~*) '^\s*\d+\s+seconds?\s*$' THEN
            'Use five cron fields, e.g. ''*/5 * * * *'' or ''0 3 * * *''.'
        WHEN pg_cron_version OPERATOR(pg_catalog.~) '^(0|1\.[0-4])(\D|$)' THEN
            pg_catalog.format('Intervals of seconds need pg_cron 1.5 or later; this database has pg_cron %s. Use five cron fields instead, e.g. ''* * * * *'' for every minute.',
                              pg_cron_version)
        ELSE
            'pg_cron takes intervals of 1 to 59 seconds; use five cron fields for longer ones, e.g. ''*/5 * * * *''.'
        END
$$;

-- The commands job_engine stores in cron.job, each value a literal made by
-- format('%L'):
--   SELECT job_engine.submit_from_schedule('<name>', '<handler>', '<args>'::jsonb)
-- and, from schedules made by release 1.0,
--   SELECT job_engine.submit('<handler>', '<args>'::jsonb)
-- A literal is '...' with every quote doubled, or E'...' with backslashes
-- doubled as well; inside one, a quote is never single, so each of these
-- patterns matches a command in one way only.
CREATE FUNCTION job_engine_internal._schedule_command_pattern(legacy boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN legacy
        THEN '^SELECT job_engine\.submit\((E?''(?:[^'']|'''')*''), (E?''(?:[^'']|'''')*'')::jsonb\)$'
        ELSE '^SELECT job_engine\.submit_from_schedule\((E?''(?:[^'']|'''')*''), (E?''(?:[^'']|'''')*''), (E?''(?:[^'']|'''')*'')::jsonb\)$'
        END
$$;

-- The text of a literal that format('%L') made: doubled quotes (and, in an
-- E'' literal, doubled backslashes) back to single ones.
CREATE FUNCTION job_engine_internal._unquote_literal(literal text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.left(literal, 1) OPERATOR(pg_catalog.=) 'E'
        THEN pg_catalog.replace(pg_catalog.replace(
                 pg_catalog.substr(literal, 3, pg_catalog.length(literal) OPERATOR(pg_catalog.-) 3),
                 '\\', '\'), '''''', '''')
        ELSE pg_catalog.replace(
                 pg_catalog.substr(literal, 2, pg_catalog.length(literal) OPERATOR(pg_catalog.-) 2),
                 '''''', '''')
        END
$$;

-- `value` as jsonb; NULL when it is no JSON that jsonb takes (bad syntax,
-- a number out of range, nesting too deep).
CREATE FUNCTION job_engine_internal._jsonb_or_null(value text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    RETURN NULL;
END
$$;

-- What a cron.job command of job_engine submits; all NULL for any other
-- command (a pg_cron job that job_engine did not make).  A role that may use
-- pg_cron itself can store a command of this shape whose args are no JSON:
-- that is no schedule either, rather than an error for every reader of the
-- schedules view who may see that role's rows.
CREATE FUNCTION job_engine_internal._schedule_command_parts(command text,
        OUT handler text, OUT args jsonb)
RETURNS record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.args IS NOT NULL THEN p.handler END, p.args
      FROM (SELECT job_engine_internal._unquote_literal(COALESCE(n.m[2], o.m[1])) AS handler,
                   job_engine_internal._jsonb_or_null(
                       job_engine_internal._unquote_literal(COALESCE(n.m[3], o.m[2]))) AS args
              FROM (SELECT pg_catalog.regexp_match(command, job_engine_internal._schedule_command_pattern(false)) AS m) n,
                   (SELECT pg_catalog.regexp_match(command, job_engine_internal._schedule_command_pattern(true)) AS m) o) p
$$;

-- Whether `command` is one that job_engine.schedule() stores.
CREATE FUNCTION job_engine_internal._is_schedule_command(command text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT command OPERATOR(pg_catalog.~) job_engine_internal._schedule_command_pattern(false)
        OR command OPERATOR(pg_catalog.~) job_engine_internal._schedule_command_pattern(true)
$$;

-- Raises 55000 unless pg_cron is installed in this database; when pg_cron
-- runs in another database of the cluster, the hint names it.
CREATE FUNCTION job_engine_internal._require_pg_cron_for_schedules()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_database text := pg_catalog.current_setting('cron.database_name', true);
BEGIN
    IF cron_database IS NOT NULL AND cron_database OPERATOR(pg_catalog.<>) pg_catalog.current_database()
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                        WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('pg_cron runs in database %s: make and remove the schedules of this database there, with job_engine.schedule(..., database => %L).',
                                           cron_database, pg_catalog.current_database());
    END IF;
    PERFORM job_engine_internal._require_pg_cron();
END
$$;

-- The number of job_engine schedules of role `caller` (named `caller_name`)
-- in cron.job, counted after taking a lock on the role's schedules that is
-- held until the transaction ends, and with a snapshot taken after it
-- (src/schedule_room.c): a concurrent schedule() of the role waits for this
-- transaction, and this count sees every schedule committed before it.
-- NULL when one of them is named `schedule_name`: scheduling it replaces it.
CREATE FUNCTION job_engine_internal._schedules_of(caller oid, caller_name text, schedule_name text)
RETURNS bigint
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_schedules_of';

-- Refuses a new schedule `schedule_name` of role `caller` (named
-- `caller_name`) when it has job_engine.max_schedules_per_role of them
-- already (0: no limit; superusers have none); replacing one of the role's
-- schedules is not refused.  Concurrent calls of one role are serialized by
-- _schedules_of()'s lock, which is held until the caller's transaction,
-- which inserts the schedule, ends: N concurrent calls never pass the limit.
-- Whether the name is a replacement is decided under that lock too, never
-- from the caller's snapshot, which may still show a schedule of that name
-- that is gone.
CREATE FUNCTION job_engine_internal._require_schedule_room(caller oid, caller_name text,
        schedule_name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    most integer := pg_catalog.current_setting('job_engine.max_schedules_per_role')::integer;
    has bigint;
BEGIN
    IF most OPERATOR(pg_catalog.=) 0 OR
       (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) caller) THEN
        RETURN;
    END IF;
    has := job_engine_internal._schedules_of(caller, caller_name, schedule_name);
    IF has OPERATOR(pg_catalog.>=) most THEN
        RAISE EXCEPTION 'role % has % schedules, the most job_engine.max_schedules_per_role allows', caller_name, has
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Remove one with job_engine.unschedule(), replace one by scheduling its name again, or ask an administrator to raise the setting for the role (ALTER ROLE ... SET job_engine.max_schedules_per_role).';
    END IF;
END
$$;

-- Creates the schedule, or replaces the caller's own of the same name
-- (pg_cron's upsert: its cron.job row, and job id, stay).  Names are per
-- role, as in pg_cron: another role's schedule of the same name is another
-- row, never touched.  `database` NULL: this one.  For another database the
-- handler is that database's, which cannot be seen from here: it is checked
-- when the schedule fires (submit_from_schedule() there), and pg_cron records
-- a failed run.
CREATE FUNCTION job_engine_internal._schedule(caller oid, schedule_name text, cron text,
        handler text, args jsonb, database text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    handler_name text := handler;
    target text := COALESCE(database, pg_catalog.current_database());
    target_oid oid;
    existing record;
    cron_job bigint;
    caller_name text := pg_catalog.pg_get_userbyid(caller);
    command text;
    zone_notice record;
    unreachable record;
BEGIN
    PERFORM job_engine_internal._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine_internal._require_name(cron, 'cron',
        blank_hint => 'Give a cron expression, e.g. ''0 3 * * *''.');
    PERFORM job_engine_internal._require(args, 'args', has_default => true);
    IF target OPERATOR(pg_catalog.=) pg_catalog.current_database() THEN
        h := job_engine_internal._require_handler(handler);
        PERFORM job_engine_internal._require_execute(caller, h, 'schedule jobs of');
        handler_name := h.name;
    ELSE
        PERFORM job_engine_internal._require_name(handler, 'handler');
        SELECT d.oid INTO target_oid FROM pg_catalog.pg_database d
         WHERE d.datname OPERATOR(pg_catalog.=) target;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'database "%" does not exist', target
                USING ERRCODE = 'invalid_catalog_name',
                      HINT = 'Name a database of this cluster that has job_engine installed, or pass NULL for this one.';
        END IF;
        IF NOT pg_catalog.has_database_privilege(caller, target_oid, 'CONNECT') THEN
            RAISE EXCEPTION 'role % cannot connect to database %', caller_name, target
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'pg_cron runs each schedule as its owner in its database: GRANT CONNECT ON DATABASE to the role.';
        END IF;
    END IF;
    PERFORM job_engine_internal._require_pg_cron_for_schedules();

    SELECT c.jobid, c.command, c.database INTO existing FROM cron.job c
     WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
       AND c.username OPERATOR(pg_catalog.=) caller_name;
    IF FOUND AND NOT job_engine_internal._is_schedule_command(existing.command) THEN
        RAISE EXCEPTION 'pg_cron job "%" of role % is not a job_engine schedule', schedule_name, caller_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Pick another name: job_engine.schedule() replaces only the schedules it made.';
    END IF;
    IF FOUND AND existing.database OPERATOR(pg_catalog.<>) target THEN
        RAISE EXCEPTION 'schedule "%" already exists for database %', schedule_name, existing.database
            USING ERRCODE = 'duplicate_object',
                  HINT = pg_catalog.format('Remove it with job_engine.unschedule() first to move it to database %s, or pick another name.', target);
    END IF;

    -- Each schedule costs pg_cron a worker (or a connection) at every run:
    -- a role may not make pg_cron work for it without bound.  Replacing a
    -- schedule does not count; whether this call replaces one is decided
    -- under the role's lock (a name found above may be gone by now).
    PERFORM job_engine_internal._require_schedule_room(caller, caller_name, schedule_name);

    -- pg_cron runs a SQL string; every user value is quoted as a literal.
    command := pg_catalog.format('SELECT job_engine.submit_from_schedule(%L, %L, %L::jsonb)',
                                 schedule_name, handler_name, args::text);
    BEGIN
        cron_job := cron.schedule_in_database(schedule_name, cron, command,
                                              target, caller_name, true);
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%invalid schedule%' THEN
            RAISE EXCEPTION 'invalid cron expression "%"', cron
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = job_engine_internal._invalid_cron_hint(cron,
                                 (SELECT e.extversion FROM pg_catalog.pg_extension e
                                   WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron'));
        END IF;
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%can not log in%' THEN
            RAISE EXCEPTION 'role % cannot own a schedule: it cannot log in', caller_name
                USING ERRCODE = 'invalid_authorization_specification',
                      HINT = 'pg_cron runs each schedule as its owner; schedule as a role with LOGIN.';
        END IF;
        RAISE;
    END;
    SELECT * INTO zone_notice FROM job_engine_internal._cron_time_zone_notice(cron);
    IF zone_notice.message IS NOT NULL THEN
        RAISE NOTICE '%', zone_notice.message
            USING DETAIL = zone_notice.detail, HINT = zone_notice.hint;
    END IF;
    SELECT * INTO unreachable FROM job_engine_internal._cron_connection_warning();
    IF unreachable.message IS NOT NULL THEN
        RAISE WARNING '%', unreachable.message
            USING DETAIL = unreachable.detail, HINT = unreachable.hint;
    END IF;
    RETURN cron_job;
END
$$;

CREATE FUNCTION job_engine.schedule(schedule_name text, cron text, handler text,
        args jsonb DEFAULT '{}', database text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine_internal._unschedule(caller oid, schedule_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_job bigint;
BEGIN
    PERFORM job_engine_internal._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine_internal._require_pg_cron_for_schedules();
    SELECT c.jobid INTO cron_job FROM cron.job c
     WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
       AND c.username OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(caller)
       AND job_engine_internal._is_schedule_command(c.command);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(cron_job);
END
$$;

CREATE FUNCTION job_engine.unschedule(schedule_name text)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- What a schedule's command runs at every firing: submit() of the handler,
-- and the job records the schedule's name (jobs.schedule).  Any role may
-- call it; it only names its own job.
CREATE FUNCTION job_engine_internal._submit_from_schedule(caller oid, schedule_name text,
        handler text, args jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job_id bigint;
BEGIN
    PERFORM job_engine_internal._require_name(schedule_name, 'schedule_name');
    job_id := job_engine_internal._submit(caller, handler, args, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL);
    UPDATE job_engine._jobs j SET schedule = schedule_name
     WHERE j.id OPERATOR(pg_catalog.=) job_id;
    RETURN job_id;
END
$$;

CREATE FUNCTION job_engine.submit_from_schedule(schedule_name text, handler text,
        args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- The job_engine schedules in this database's cron.job (pg_cron's database:
-- it holds the schedules for every database) that the caller may see, as
-- it may see jobs (the policies on _jobs, 90_views.sql): those of the roles
-- it is a member of, and, for the owner of a database, every schedule that
-- runs in that database (whose jobs it reads already).  With the last run
-- pg_cron recorded (cron.job_run_details, kept while cron.log_run is on).
-- Empty where pg_cron is not installed.
CREATE FUNCTION job_engine_internal._schedule_rows(caller oid)
RETURNS TABLE (name text, owner name, database text, cron text, handler text, args jsonb,
               queue text, active boolean, cron_job_id bigint, last_run_status text,
               last_run_started_at timestamptz, last_run_finished_at timestamptz,
               last_run_message text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                    WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT c.jobname::text, r.rolname, c.database::text, c.schedule::text, p.handler, p.args,
           CASE WHEN c.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                THEN (SELECT h.queue FROM job_engine.handlers h
                       WHERE h.name OPERATOR(pg_catalog.=) p.handler) END,
           c.active, c.jobid, d.status::text, d.start_time, d.end_time, d.return_message::text
      FROM cron.job c
      JOIN pg_catalog.pg_authid r ON r.rolname OPERATOR(pg_catalog.=) c.username
      CROSS JOIN LATERAL job_engine_internal._schedule_command_parts(c.command) p
      LEFT JOIN (SELECT DISTINCT ON (l.jobid) l.jobid, l.status, l.start_time, l.end_time,
                        l.return_message
                   FROM cron.job_run_details l
                  ORDER BY l.jobid, l.runid DESC) d ON d.jobid OPERATOR(pg_catalog.=) c.jobid
     WHERE p.handler IS NOT NULL
       AND (pg_catalog.pg_has_role(caller, r.oid, 'MEMBER')
            OR EXISTS (SELECT 1 FROM pg_catalog.pg_database db
                        WHERE db.datname OPERATOR(pg_catalog.=) c.database
                          AND pg_catalog.pg_has_role(caller, db.datdba, 'MEMBER')));
END
$$;

CREATE FUNCTION job_engine.schedule_rows()
RETURNS TABLE (name text, owner name, database text, cron text, handler text, args jsonb,
               queue text, active boolean, cron_job_id bigint, last_run_status text,
               last_run_started_at timestamptz, last_run_finished_at timestamptz,
               last_run_message text)
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE VIEW job_engine.schedules AS
SELECT s.name, s.owner, s.database, s.cron, s.handler, s.args, s.queue, s.active,
       s.cron_job_id, s.last_run_status, s.last_run_started_at, s.last_run_finished_at,
       s.last_run_message
  FROM job_engine.schedule_rows() s;

-- The schedules of `database` in this database's cron.job, removed: DROP
-- EXTENSION job_engine in it, or DROP DATABASE of it, leaves them with
-- nothing to run (src/drop_guard.c).  The count removed.
CREATE FUNCTION job_engine_internal._unschedule_database(database text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                    WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RETURN 0;
    END IF;
    RETURN (SELECT pg_catalog.count(cron.unschedule(c.jobid)) FROM cron.job c
             WHERE c.database OPERATOR(pg_catalog.=) _unschedule_database.database
               AND job_engine_internal._is_schedule_command(c.command));
END
$$;

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

CREATE FUNCTION job_engine_internal._schedule(caller oid, schedule_name text, cron text,
        handler text, args jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    cron_job bigint;
    caller_name text := pg_catalog.pg_get_userbyid(caller);
    command text;
    zone_notice record;
BEGIN
    PERFORM job_engine_internal._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine_internal._require_name(cron, 'cron',
        blank_hint => 'Give a cron expression, e.g. ''0 3 * * *''.');
    PERFORM job_engine_internal._require(args, 'args', has_default => true);
    h := job_engine_internal._require_handler(handler);
    PERFORM job_engine_internal._require_execute(caller, h, 'schedule jobs of');
    PERFORM job_engine_internal._require_pg_cron();
    IF EXISTS (SELECT 1 FROM cron.job c
                WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
                  AND c.username OPERATOR(pg_catalog.=) caller_name) THEN
        RAISE EXCEPTION 'schedule "%" already exists', schedule_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Remove it with job_engine.unschedule() first, or pick another name.';
    END IF;

    -- pg_cron runs a SQL string; every user value is quoted as a literal.
    command := pg_catalog.format('SELECT job_engine.submit(%L, %L::jsonb)', h.name, args::text);
    BEGIN
        cron_job := cron.schedule_in_database(schedule_name, cron, command,
                                              pg_catalog.current_database(), caller_name, true);
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
    RETURN cron_job;
END
$$;

CREATE FUNCTION job_engine.schedule(schedule_name text, cron text, handler text,
        args jsonb DEFAULT '{}')
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
    PERFORM job_engine_internal._require_pg_cron();
    SELECT c.jobid INTO cron_job FROM cron.job c
     WHERE c.jobname OPERATOR(pg_catalog.=) schedule_name
       AND c.username OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(caller);
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

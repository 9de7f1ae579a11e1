-------------------------------------------------------------------------------
-- Schedules through pg_cron
--
-- Piece src/sql/84_schedules.sql.  C twin: none.  Its public functions are
-- thin C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine._schedule(caller oid, schedule_name text, cron text,
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
BEGIN
    PERFORM job_engine._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine._require_name(cron, 'cron');
    PERFORM job_engine._require(args, 'args');
    h := job_engine._require_handler(handler);
    PERFORM job_engine._require_execute(caller, h, 'schedule jobs of');
    PERFORM job_engine._require_pg_cron();
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
                      HINT = 'Use five cron fields, e.g. ''*/5 * * * *'' or ''0 3 * * *''.';
        END IF;
        IF SQLERRM OPERATOR(pg_catalog.~~*) '%can not log in%' THEN
            RAISE EXCEPTION 'role % cannot own a schedule: it cannot log in', caller_name
                USING ERRCODE = 'invalid_authorization_specification',
                      HINT = 'pg_cron runs each schedule as its owner; schedule as a role with LOGIN.';
        END IF;
        RAISE;
    END;
    RETURN cron_job;
END
$$;

CREATE FUNCTION job_engine.schedule(schedule_name text, cron text, handler text,
        args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine._unschedule(caller oid, schedule_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_job bigint;
BEGIN
    PERFORM job_engine._require_name(schedule_name, 'schedule_name');
    PERFORM job_engine._require_pg_cron();
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

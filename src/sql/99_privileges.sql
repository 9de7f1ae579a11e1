-------------------------------------------------------------------------------
-- Privileges
--
-- Piece src/sql/99_privileges.sql.  C twin: none.
-------------------------------------------------------------------------------

GRANT USAGE ON SCHEMA job_engine TO PUBLIC;
-- Usage only, for the two functions granted below; the others are not
-- executable by PUBLIC.
GRANT USAGE ON SCHEMA job_engine_internal TO PUBLIC;
GRANT SELECT ON job_engine.jobs, job_engine.attempts, job_engine.events,
                job_engine.workers, job_engine.queue_stats, job_engine.metric_samples,
                job_engine.schedules TO PUBLIC;
GRANT SELECT ON job_engine.handlers, job_engine.queues, job_engine.subscriptions TO PUBLIC;

-- pg_dump by the database's owner: it reads every table and sequence that
-- pg_extension_config_dump marked (10_tables.sql), and the database's jobs
-- are the database's data, which its owner backs up.  pg_database_owner is
-- whoever owns the current database (PostgreSQL 14 on), so the grant follows
-- ALTER DATABASE ... OWNER TO.  SELECT only: it also allows LOCK TABLE in
-- ACCESS SHARE mode, which conflicts with nothing the engine takes, and no
-- row lock (those need UPDATE).
GRANT SELECT ON job_engine._jobs, job_engine._attempts, job_engine._events,
                job_engine._dependencies, job_engine._recheck,
                job_engine._pending_outcomes TO pg_database_owner;
GRANT SELECT ON SEQUENCE job_engine._jobs_id_seq, job_engine._events_id_seq,
                job_engine.subscriptions_id_seq TO pg_database_owner;

-- Internal functions: only the extension (through the gate) and superusers.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'job_engine_internal'::regnamespace
                AND p.proname OPERATOR(pg_catalog.~~) '\_%'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

-- Used by views that run with the caller's privileges (workers, and the
-- policy on _jobs).  _workers() shows each caller only what it may see
-- (other databases' executors and other roles' job ids only to
-- pg_read_all_stats): the grant reveals nothing more.  metrics() runs
-- through the gate: _prom_label needs no grant.
GRANT EXECUTE ON FUNCTION job_engine_internal._workers(), job_engine_internal._member_roles() TO PUBLIC;

-- Administration, and receiving events (a subscription to '*' receives the
-- payload of every role's events), are granted explicitly, never to PUBLIC.
REVOKE ALL ON FUNCTION job_engine.register_handler(text, regprocedure, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.register_c_handler(text, text, text, text, integer,
    interval, interval, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.unregister_handler(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.pause_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.resume_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.configure_queue(text, integer, integer, interval, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.subscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION job_engine.unsubscribe(bigint) FROM PUBLIC;

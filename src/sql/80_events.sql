-------------------------------------------------------------------------------
-- Events
--
-- Piece src/sql/80_events.sql.  C twin: none.  Its public functions are thin C
-- entry points: the gate (src/gate.c) runs job_engine._<name>(caller, args...)
-- for each.
-------------------------------------------------------------------------------

CREATE FUNCTION job_engine_internal._subscribe(caller oid, event_type text, handler text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h job_engine.handlers;
    new_id bigint;
BEGIN
    PERFORM job_engine_internal._require_name(event_type, 'event_type');
    IF pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.>) 0
       AND pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.<>) pg_catalog.length(event_type) THEN
        RAISE EXCEPTION 'invalid event type pattern "%"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an exact type, or a prefix ending in a single "*", e.g. ''order.*''.';
    END IF;
    h := job_engine_internal._require_handler(handler);
    PERFORM job_engine_internal._check_owner(caller);
    PERFORM job_engine_internal._require_execute(caller, h, 'subscribe');
    INSERT INTO job_engine.subscriptions (event_type, handler, owner)
    VALUES (event_type, h.name, caller)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

CREATE FUNCTION job_engine.subscribe(event_type text, handler text)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

CREATE FUNCTION job_engine_internal._unsubscribe(caller oid, subscription_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub_owner oid;
BEGIN
    PERFORM job_engine_internal._require(subscription_id, 'subscription_id');
    SELECT s.owner INTO sub_owner FROM job_engine.subscriptions s
     WHERE s.id OPERATOR(pg_catalog.=) subscription_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', subscription_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Subscriptions are listed in job_engine.subscriptions.';
    END IF;
    IF NOT pg_catalog.pg_has_role(caller, sub_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to remove subscription %', subscription_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only members of the subscription''s owner role can remove it.';
    END IF;
    DELETE FROM job_engine.subscriptions s WHERE s.id OPERATOR(pg_catalog.=) subscription_id;
    RETURN true;
END
$$;

CREATE FUNCTION job_engine.unsubscribe(subscription_id bigint)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- True when a subscription pattern (exact, or prefix ending in '*') matches.
CREATE FUNCTION job_engine_internal._event_matches(pattern text, event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN pg_catalog.right(pattern, 1) OPERATOR(pg_catalog.=) '*'
            THEN pg_catalog.starts_with(event_type, pg_catalog.left(pattern, -1))
        ELSE pattern OPERATOR(pg_catalog.=) event_type
    END
$$;

CREATE FUNCTION job_engine_internal._publish(caller oid, event_type text, payload jsonb,
        correlation_id uuid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev job_engine._events;
    parent bigint := job_engine.current_job_id();
    sub record;
BEGIN
    PERFORM job_engine_internal._require_name(event_type, 'event_type');
    PERFORM job_engine_internal._require(payload, 'payload', has_default => true);
    IF pg_catalog.strpos(event_type, '*') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'event type "%" must not contain "*"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"*" is only for subscription patterns.';
    END IF;
    INSERT INTO job_engine._events (event_type, payload, correlation_id, publisher, published_by_job)
    VALUES (event_type, payload,
            COALESCE(correlation_id,
                     (job_engine.context() OPERATOR(pg_catalog.->>) 'correlation_id')::uuid,
                     pg_catalog.gen_random_uuid()),
            caller, parent)
    RETURNING * INTO ev;

    -- A job per matching subscription, owned by the subscriber.  Handlers
    -- are key-share locked like a submit's (_require_handler), so that an
    -- unregister_handler racing this waits and then sees the jobs.
    FOR sub IN SELECT h, s.owner
                 FROM job_engine.subscriptions s
                 JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) s.handler
                WHERE job_engine_internal._event_matches(s.event_type, ev.event_type)
                ORDER BY s.id
                  FOR KEY SHARE OF h
    LOOP
        PERFORM job_engine_internal._create_job(sub.h, sub.owner, ARRAY[ev.payload],
            correlation_id => ev.correlation_id, event_id => ev.id);
    END LOOP;
    RETURN ev.id;
END
$$;

CREATE FUNCTION job_engine.publish(event_type text, payload jsonb DEFAULT '{}',
        correlation_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

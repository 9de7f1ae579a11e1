-------------------------------------------------------------------------------
-- Observability: trace() and metrics()
--
-- Piece src/sql/92_observability.sql.  C twin: none.  Its public functions are
-- thin C entry points: the gate (src/gate.c) runs job_engine._<name>(caller,
-- args...) for each.
-------------------------------------------------------------------------------

-- Sort key of a trace node: creation time, then kind, then id, as text of
-- fixed width so that siblings sort by time and id, not by digits.
CREATE FUNCTION job_engine._trace_key(created_at timestamptz, kind text, id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.lpad(((pg_catalog.date_part('epoch', created_at)
                OPERATOR(pg_catalog.*) 1000000)::bigint)::text, 20, '0')
           OPERATOR(pg_catalog.||) kind
           OPERATOR(pg_catalog.||) pg_catalog.lpad(id::text, 20, '0')
$$;

-- The nodes of trace(): the events and jobs sharing a correlation id that
-- `caller` may see, each with the node that caused it (event -> job, parent
-- -> child, compensation, resubmission, job -> published event) and its key
-- among its siblings (_trace_key).
CREATE FUNCTION job_engine._trace_nodes(caller oid, correlation_id uuid)
RETURNS TABLE (kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text, sort_key text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.*, job_engine._trace_key(n.created_at, n.kind, n.id)
      FROM (
        SELECT 'event'::text AS kind, e.id, e.event_type AS name, NULL::text AS state,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'published' ELSE 'root' END AS cause,
               CASE WHEN e.published_by_job IS NOT NULL THEN 'job' END AS parent_kind,
               e.published_by_job AS parent_id,
               e.published_at AS created_at, NULL::timestamptz AS finished_at,
               NULL::text AS detail
          FROM job_engine._events e
         WHERE e.correlation_id OPERATOR(pg_catalog.=) _trace_nodes.correlation_id
           AND (pg_catalog.pg_has_role(caller, e.publisher, 'MEMBER')
                OR EXISTS (SELECT 1 FROM job_engine._jobs x
                            WHERE x.event_id OPERATOR(pg_catalog.=) e.id
                              AND pg_catalog.pg_has_role(caller, x.owner, 'MEMBER')))
        UNION ALL
        SELECT 'job', j.id, j.handler, j.state::text,
               CASE WHEN j.compensation_of IS NOT NULL THEN 'compensation'
                    WHEN j.resubmitted_from IS NOT NULL THEN 'resubmission'
                    WHEN j.parent_job_id IS NOT NULL THEN 'child'
                    WHEN j.event_id IS NOT NULL THEN 'event'
                    ELSE 'root' END,
               CASE WHEN j.compensation_of IS NOT NULL OR j.resubmitted_from IS NOT NULL
                         OR j.parent_job_id IS NOT NULL THEN 'job'
                    WHEN j.event_id IS NOT NULL THEN 'event' END,
               COALESCE(j.compensation_of, j.resubmitted_from, j.parent_job_id, j.event_id),
               j.created_at, j.finished_at,
               COALESCE(j.last_error, j.abort_reason)
          FROM job_engine._jobs j
         WHERE j.correlation_id OPERATOR(pg_catalog.=) _trace_nodes.correlation_id
           AND pg_catalog.pg_has_role(caller, j.owner, 'MEMBER')
      ) n
$$;

-- What one request set in motion (_trace_nodes), as a tree, depth-first,
-- siblings in key order; a node whose cause is invisible (or purged) is a
-- root.  The walk is iterative, over arrays: first child and next sibling
-- of each node, and its parent to climb back, so a tree of any depth costs
-- time and memory in proportion to its size.
CREATE FUNCTION job_engine._trace(caller oid, correlation_id uuid)
RETURNS TABLE (depth integer, kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys text[];            -- node i: kind:id, nodes in key order
    parent_keys text[];
    pos jsonb;              -- kind:id -> i
    parent integer[];
    first_child integer[];
    last_child integer[];
    next_sibling integer[];
    roots integer[] := '{}';
    walk integer[] := '{}'; -- the nodes, depth-first
    depths integer[] := '{}';
    n integer;
    p integer;
    cur integer;
    d integer;
    r integer;
BEGIN
    SELECT pg_catalog.array_agg(t.kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.id ORDER BY t.sort_key),
           pg_catalog.array_agg(t.parent_kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.parent_id
                                ORDER BY t.sort_key)
      INTO keys, parent_keys
      FROM job_engine._trace_nodes(caller, correlation_id) t;
    n := COALESCE(pg_catalog.cardinality(keys), 0);
    IF n OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;
    SELECT pg_catalog.jsonb_object_agg(k, i) INTO pos
      FROM pg_catalog.unnest(keys) WITH ORDINALITY AS u(k, i);
    parent := pg_catalog.array_fill(NULL::integer, ARRAY[n]);
    first_child := parent;
    last_child := parent;
    next_sibling := parent;
    FOR i IN 1..n LOOP
        p := (pos OPERATOR(pg_catalog.->>) parent_keys[i])::integer;
        IF p IS NULL THEN
            roots := roots OPERATOR(pg_catalog.||) i;
        ELSE
            parent[i] := p;
            IF first_child[p] IS NULL THEN
                first_child[p] := i;
            ELSE
                next_sibling[last_child[p]] := i;
            END IF;
            last_child[p] := i;
        END IF;
    END LOOP;

    FOREACH r IN ARRAY roots LOOP
        cur := r;
        d := 0;
        LOOP
            walk := walk OPERATOR(pg_catalog.||) cur;
            depths := depths OPERATOR(pg_catalog.||) d;
            IF first_child[cur] IS NOT NULL THEN
                cur := first_child[cur];
                d := d OPERATOR(pg_catalog.+) 1;
                CONTINUE;
            END IF;
            WHILE cur OPERATOR(pg_catalog.<>) r AND next_sibling[cur] IS NULL LOOP
                cur := parent[cur];
                d := d OPERATOR(pg_catalog.-) 1;
            END LOOP;
            EXIT WHEN cur OPERATOR(pg_catalog.=) r;
            cur := next_sibling[cur];
        END LOOP;
    END LOOP;

    RETURN QUERY
    SELECT w.depth, t.kind, t.id, t.name, t.state, t.cause, t.parent_kind, t.parent_id,
           t.created_at, t.finished_at, t.detail
      FROM ROWS FROM (pg_catalog.unnest(walk), pg_catalog.unnest(depths)) WITH ORDINALITY AS w(node, depth, ord)
      JOIN job_engine._trace_nodes(caller, correlation_id) t
        ON t.kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.id
           OPERATOR(pg_catalog.=) keys[w.node]
     ORDER BY w.ord;
END
$$;

CREATE FUNCTION job_engine.trace(correlation_id uuid)
RETURNS TABLE (depth integer, kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text)
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- Escapes a Prometheus label value.
CREATE FUNCTION job_engine._prom_label(value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(value,
           E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

-- Counters and gauges in Prometheus text format, over the rows the caller
-- may see.  Attempt counters count retained attempts (purge removes them).
CREATE FUNCTION job_engine.metrics()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_agg(line, E'\n' ORDER BY section, line) OPERATOR(pg_catalog.||) E'\n'
      FROM (
        SELECT 1 AS section, '# HELP job_engine_jobs Jobs by queue and state.' AS line
        UNION ALL SELECT 1, '# TYPE job_engine_jobs gauge'
        UNION ALL
        SELECT 1, pg_catalog.format('job_engine_jobs{queue="%s",state="%s"} %s',
                   job_engine._prom_label(q.queue), s.state, s.n)
          FROM job_engine.queue_stats q,
               LATERAL (VALUES ('created', q.created), ('running', q.running),
                               ('retrying', q.retrying), ('succeeded', q.succeeded),
                               ('failed', q.failed), ('aborted', q.aborted)) AS s(state, n)
        UNION ALL SELECT 2, '# HELP job_engine_attempts Retained attempts by outcome (purge removes them, so this is a gauge).'
        UNION ALL SELECT 2, '# TYPE job_engine_attempts gauge'
        UNION ALL
        SELECT 2, pg_catalog.format('job_engine_attempts{outcome="%s"} %s', o.outcome,
                   (SELECT pg_catalog.count(*) FROM job_engine.attempts a
                     WHERE a.outcome::text OPERATOR(pg_catalog.=) o.outcome))
          FROM pg_catalog.unnest(ARRAY['running', 'succeeded', 'failed', 'aborted', 'crashed']) AS o(outcome)
        UNION ALL SELECT 3, '# HELP job_engine_oldest_waiting_seconds Age of the oldest due job not yet started.'
        UNION ALL SELECT 3, '# TYPE job_engine_oldest_waiting_seconds gauge'
        UNION ALL
        SELECT 3, pg_catalog.format('job_engine_oldest_waiting_seconds{queue="%s"} %s',
                   job_engine._prom_label(q.queue),
                   pg_catalog.round(COALESCE(pg_catalog.date_part('epoch', q.oldest_waiting_age), 0)::numeric, 3))
          FROM job_engine.queue_stats q
        UNION ALL SELECT 4, '# HELP job_engine_job_duration_seconds Durations of jobs finished in the last 5 minutes.'
        UNION ALL SELECT 4, '# TYPE job_engine_job_duration_seconds summary'
        UNION ALL
        SELECT 4, pg_catalog.format('job_engine_job_duration_seconds{queue="%s",quantile="%s"} %s',
                   job_engine._prom_label(q.queue), p.quantile,
                   pg_catalog.round(COALESCE(pg_catalog.date_part('epoch', p.value), 0)::numeric, 6))
          FROM job_engine.queue_stats q,
               LATERAL (VALUES ('0.5', q.p50_duration_5m), ('0.95', q.p95_duration_5m)) AS p(quantile, value)
        UNION ALL SELECT 5, '# HELP job_engine_workers Live executors by state.'
        UNION ALL SELECT 5, '# TYPE job_engine_workers gauge'
        UNION ALL
        SELECT 5, pg_catalog.format('job_engine_workers{database="%s",state="%s"} %s',
                   job_engine._prom_label(pg_catalog.current_database()), st.state,
                   (SELECT pg_catalog.count(*) FROM job_engine.workers w
                     WHERE w.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                       AND w.state OPERATOR(pg_catalog.=) st.state))
          FROM pg_catalog.unnest(ARRAY['idle', 'busy']) AS st(state)
      ) m
$$;

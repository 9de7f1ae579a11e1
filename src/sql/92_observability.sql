-------------------------------------------------------------------------------
-- Observability: trace(), metrics(), metric_rows() and the metric_samples view
--
-- Piece src/sql/92_observability.sql.  C twin: src/metrics.c (the counters,
-- _counters() and _count_created()).  Its public functions are thin C entry
-- points: the gate (src/gate.c) runs job_engine._<name>(caller, args...) for
-- each.
-------------------------------------------------------------------------------

-- Sort key of a trace node: creation time, then kind, then id, as text of
-- fixed width so that siblings sort by time and id, not by digits.
CREATE FUNCTION job_engine_internal._trace_key(created_at timestamptz, kind text, id bigint)
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
CREATE FUNCTION job_engine_internal._trace_nodes(caller oid, correlation_id uuid)
RETURNS TABLE (kind text, id bigint, name text, state text,
               cause text, parent_kind text, parent_id bigint,
               created_at timestamptz, finished_at timestamptz, detail text, sort_key text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.*, job_engine_internal._trace_key(n.created_at, n.kind, n.id)
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
CREATE FUNCTION job_engine_internal._trace(caller oid, correlation_id uuid)
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
      FROM job_engine_internal._trace_nodes(caller, correlation_id) t;
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
      JOIN job_engine_internal._trace_nodes(caller, correlation_id) t
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
CREATE FUNCTION job_engine_internal._prom_label(value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(value,
           E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

-- The shared counters of this database (src/metrics.c), one row per owner
-- of jobs, and one with owner NULL whose jobs_created says how many
-- transitions went uncounted, cluster-wide, because the shared table of
-- (database, owner) pairs was full.
CREATE FUNCTION job_engine_internal._counters()
RETURNS TABLE (owner oid, jobs_created bigint, jobs_succeeded bigint, jobs_failed bigint,
               jobs_aborted bigint, attempts_succeeded bigint, attempts_failed bigint,
               attempts_aborted bigint, attempts_crashed bigint,
               duration_seconds_sum double precision, duration_count bigint)
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_counters';

-- Counts `n` jobs of `owner` created, for the metrics, once the current
-- (sub)transaction commits (src/metrics.c).  Called by _create_job() for
-- the rows it really inserted.
CREATE FUNCTION job_engine_internal._count_created(owner oid, n integer)
RETURNS void
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_count_created';

-- Whether `caller` sees every owner's figures in the metrics: superusers
-- and members of pg_monitor (with its privileges, as pg_stat_activity asks).
CREATE FUNCTION job_engine_internal._sees_all_metrics(caller oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(caller, 'pg_monitor', 'USAGE')
$$;

-- The samples of the metrics, one row per metric and label set, over the
-- jobs `caller` may see (every owner's for _sees_all_metrics).  Its cost
-- does not grow with retained history: the counters are kept in shared
-- memory as the engine works; the gauges read unfinished jobs through
-- the partial indexes that hold only them (jobs_claim_idx, jobs_held_idx,
-- jobs_running_idx); the quantiles read the jobs finished in the last 5
-- minutes through jobs_finished_idx.
CREATE FUNCTION job_engine_internal._metric_rows(caller oid)
RETURNS TABLE (metric text, type text, help text, database text, queue text,
               state text, outcome text, quantile text, value double precision)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- Index scans of the few unfinished rows, whatever the statistics say.
SET enable_seqscan = off
AS $$
DECLARE
    all_owners boolean := job_engine_internal._sees_all_metrics(caller);
    db text := pg_catalog.current_database();
BEGIN
    -- Gauges per queue: unfinished jobs by state, age of the oldest due one.
    RETURN QUERY
    WITH unfinished AS (
        SELECT j.queue, j.state, j.run_at, j.owner FROM job_engine._jobs j
         WHERE j.state IN ('created', 'retrying') AND j.blocked IS NULL
        UNION ALL
        SELECT j.queue, j.state, j.run_at, j.owner FROM job_engine._jobs j
         WHERE j.state IN ('created', 'retrying') AND j.blocked IS NOT NULL
        UNION ALL
        SELECT j.queue, j.state, j.run_at, j.owner FROM job_engine._jobs j
         WHERE j.state OPERATOR(pg_catalog.=) 'running' AND j.worker_pid IS NOT NULL),
    visible AS (
        SELECT u.queue, u.state, u.run_at FROM unfinished u
         WHERE all_owners OR pg_catalog.pg_has_role(caller, u.owner, 'MEMBER')),
    per_queue AS (
        SELECT q.name AS queue,
               pg_catalog.count(v.queue) FILTER (WHERE v.state OPERATOR(pg_catalog.=) 'created') AS created,
               pg_catalog.count(v.queue) FILTER (WHERE v.state OPERATOR(pg_catalog.=) 'running') AS running,
               pg_catalog.count(v.queue) FILTER (WHERE v.state OPERATOR(pg_catalog.=) 'retrying') AS retrying,
               pg_catalog.min(v.run_at) FILTER (WHERE v.state IN ('created', 'retrying')
                                                  AND v.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS oldest_due
          FROM job_engine.queues q
          LEFT JOIN visible v ON v.queue OPERATOR(pg_catalog.=) q.name
         GROUP BY q.name)
    SELECT 'job_engine_jobs', 'gauge', 'Unfinished jobs by queue and state.',
           db, p.queue, s.state, NULL::text, NULL::text, s.n::double precision
      FROM per_queue p,
           LATERAL (VALUES ('created', p.created), ('running', p.running),
                           ('retrying', p.retrying)) AS s(state, n)
    UNION ALL
    SELECT 'job_engine_oldest_waiting_seconds', 'gauge',
           'Age of the oldest due job not yet started (0 when none).',
           db, p.queue, NULL, NULL, NULL,
           COALESCE(pg_catalog.date_part('epoch', pg_catalog.now() OPERATOR(pg_catalog.-) p.oldest_due), 0)
      FROM per_queue p;

    -- Counters, from shared memory: never lowered by retention or purge,
    -- reset when the server restarts.
    RETURN QUERY
    WITH c AS (
        SELECT COALESCE(pg_catalog.sum(k.jobs_created), 0)::double precision AS created,
               COALESCE(pg_catalog.sum(k.jobs_succeeded), 0)::double precision AS succeeded,
               COALESCE(pg_catalog.sum(k.jobs_failed), 0)::double precision AS failed,
               COALESCE(pg_catalog.sum(k.jobs_aborted), 0)::double precision AS aborted,
               COALESCE(pg_catalog.sum(k.attempts_succeeded), 0)::double precision AS a_succeeded,
               COALESCE(pg_catalog.sum(k.attempts_failed), 0)::double precision AS a_failed,
               COALESCE(pg_catalog.sum(k.attempts_aborted), 0)::double precision AS a_aborted,
               COALESCE(pg_catalog.sum(k.attempts_crashed), 0)::double precision AS a_crashed,
               COALESCE(pg_catalog.sum(k.duration_seconds_sum), 0)::double precision AS d_sum,
               COALESCE(pg_catalog.sum(k.duration_count), 0)::double precision AS d_count
          FROM job_engine_internal._counters() k
         WHERE k.owner IS NOT NULL
           AND (all_owners OR pg_catalog.pg_has_role(caller, k.owner, 'MEMBER')))
    SELECT 'job_engine_jobs_created_total', 'counter', 'Jobs created since the server started.',
           db, NULL::text, NULL::text, NULL::text, NULL::text, c.created FROM c
    UNION ALL
    SELECT 'job_engine_jobs_finished_total', 'counter',
           'Jobs that ended since the server started, by final state.',
           db, NULL, s.state, NULL, NULL, s.n
      FROM c, LATERAL (VALUES ('succeeded', c.succeeded), ('failed', c.failed),
                              ('aborted', c.aborted)) AS s(state, n)
    UNION ALL
    SELECT 'job_engine_attempts_total', 'counter',
           'Attempts that ended since the server started, by outcome.',
           db, NULL, NULL, o.outcome, NULL, o.n
      FROM c, LATERAL (VALUES ('succeeded', c.a_succeeded), ('failed', c.a_failed),
                              ('aborted', c.a_aborted), ('crashed', c.a_crashed)) AS o(outcome, n)
    UNION ALL
    SELECT 'job_engine_job_duration_seconds_sum', 'summary',
           'Time from first start to end of jobs that ran (quantiles: jobs ended in the last 5 minutes).',
           db, NULL, NULL, NULL, NULL, c.d_sum FROM c
    UNION ALL
    SELECT 'job_engine_job_duration_seconds_count', 'summary',
           'Time from first start to end of jobs that ran (quantiles: jobs ended in the last 5 minutes).',
           db, NULL, NULL, NULL, NULL, c.d_count FROM c
    UNION ALL
    SELECT 'job_engine_counters_lost_total', 'counter',
           'Transitions not counted because the shared table of counters was full (all databases).',
           NULL, NULL, NULL, NULL, NULL, k.jobs_created::double precision
      FROM job_engine_internal._counters() k
     WHERE k.owner IS NULL AND all_owners;

    -- Quantiles of the durations of the jobs ended in the last 5 minutes;
    -- NaN when none did.
    RETURN QUERY
    WITH d AS (
        SELECT pg_catalog.percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
                   (ORDER BY pg_catalog.date_part('epoch', j.finished_at OPERATOR(pg_catalog.-) j.started_at)) AS v
          FROM job_engine._jobs j
         WHERE j.finished_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::interval)
           AND j.started_at IS NOT NULL
           AND (all_owners OR pg_catalog.pg_has_role(caller, j.owner, 'MEMBER')))
    SELECT 'job_engine_job_duration_seconds', 'summary',
           'Time from first start to end of jobs that ran (quantiles: jobs ended in the last 5 minutes).',
           db, NULL::text, NULL::text, NULL::text, q.quantile,
           COALESCE(d.v[q.i], 'NaN'::double precision)
      FROM d, (VALUES (1, '0.5'), (2, '0.95'), (3, '0.99')) AS q(i, quantile);

    -- Executors of this database, from shared memory, and how many it is
    -- configured to run (0 when job_engine.databases does not list it).
    RETURN QUERY
    SELECT 'job_engine_workers', 'gauge', 'Live executors of the database by state.',
           db, NULL::text, st.state, NULL::text, NULL::text,
           (SELECT pg_catalog.count(*) FROM job_engine_internal._workers() w
             WHERE w.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                       WHERE d.datname OPERATOR(pg_catalog.=) db)
               AND w.state OPERATOR(pg_catalog.=) st.state)::double precision
      FROM pg_catalog.unnest(ARRAY['idle', 'busy']) AS st(state)
    UNION ALL
    SELECT 'job_engine_workers_configured', 'gauge',
           'Executors the database is configured to run (job_engine.max_workers; 0 when not served).',
           db, NULL, NULL, NULL, NULL,
           CASE WHEN job_engine_internal._serves_database(db)
                THEN pg_catalog.current_setting('job_engine.max_workers')::double precision
                ELSE 0 END;
END
$$;

CREATE FUNCTION job_engine.metric_rows()
RETURNS TABLE (metric text, type text, help text, database text, queue text,
               state text, outcome text, quantile text, value double precision)
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- A sample value as Prometheus writes it: whole numbers without a point,
-- NaN as NaN, others in the shortest form that reads back exactly.
CREATE FUNCTION job_engine_internal._prom_value(value double precision)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN value OPERATOR(pg_catalog.=) 'NaN'::double precision THEN 'NaN'
                WHEN value OPERATOR(pg_catalog.=) pg_catalog.trunc(value)
                     AND pg_catalog.abs(value) OPERATOR(pg_catalog.<) 1e15
                THEN value::bigint::text
                ELSE value::text END
$$;

-- The samples of _metric_rows in Prometheus text format: per family (a
-- summary's _sum and _count with it), a HELP and a TYPE line, then its
-- samples, labels in a fixed order.
CREATE FUNCTION job_engine_internal._metrics(caller oid)
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT m.*,
               CASE WHEN m.type OPERATOR(pg_catalog.=) 'summary'
                    THEN pg_catalog.regexp_replace(m.metric, '_(sum|count)$', '')
                    ELSE m.metric END AS family,
               pg_catalog.concat_ws(',',
                   'database="' OPERATOR(pg_catalog.||) job_engine_internal._prom_label(m.database) OPERATOR(pg_catalog.||) '"',
                   'queue="' OPERATOR(pg_catalog.||) job_engine_internal._prom_label(m.queue) OPERATOR(pg_catalog.||) '"',
                   'state="' OPERATOR(pg_catalog.||) m.state OPERATOR(pg_catalog.||) '"',
                   'outcome="' OPERATOR(pg_catalog.||) m.outcome OPERATOR(pg_catalog.||) '"',
                   'quantile="' OPERATOR(pg_catalog.||) m.quantile OPERATOR(pg_catalog.||) '"') AS labels
          FROM job_engine_internal._metric_rows(caller) m),
    lines AS (
        SELECT DISTINCT r.family, 0 AS part, '# HELP ' OPERATOR(pg_catalog.||) r.family
                        OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.help AS line
          FROM r
        UNION ALL
        SELECT DISTINCT r.family, 1, '# TYPE ' OPERATOR(pg_catalog.||) r.family
                        OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.type
          FROM r
        UNION ALL
        SELECT r.family, 2, r.metric
               OPERATOR(pg_catalog.||) CASE WHEN r.labels OPERATOR(pg_catalog.=) '' THEN ''
                                            ELSE '{' OPERATOR(pg_catalog.||) r.labels OPERATOR(pg_catalog.||) '}' END
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) job_engine_internal._prom_value(r.value)
          FROM r)
    SELECT pg_catalog.string_agg(l.line, E'\n' ORDER BY l.family, l.part, l.line COLLATE "C")
           OPERATOR(pg_catalog.||) E'\n'
      FROM lines l
$$;

-- Counters and gauges in Prometheus text format (docs/monitoring.md).
CREATE FUNCTION job_engine.metrics()
RETURNS text
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'job_engine_gate';

-- The samples as rows, for exporters that scrape SQL (postgres_exporter,
-- sql_exporter): one row per metric and label set.
CREATE VIEW job_engine.metric_samples AS
SELECT m.metric, m.type, m.help, m.database, m.queue, m.state, m.outcome, m.quantile, m.value
  FROM job_engine.metric_rows() m;

COMMENT ON FUNCTION job_engine.metrics() IS
    'Counters and gauges in Prometheus text format; every owner''s figures for superusers and pg_monitor members, else the caller''s roles'' (docs/monitoring.md)';
COMMENT ON FUNCTION job_engine.metric_rows() IS
    'The samples of metrics() as rows, one per metric and label set; same visibility as metrics()';
COMMENT ON VIEW job_engine.metric_samples IS
    'One row per sample of metrics(), for exporters that scrape SQL (sql_exporter, postgres_exporter): docs/monitoring.md';

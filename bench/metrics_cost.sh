#!/usr/bin/env bash
#
# bench/metrics_cost.sh: what one scrape costs against retained history.
# One throwaway cluster (scripts/lib.sh), no executors running; for each
# size in JE_BENCH_METRICS_RETAINED it loads that many finished jobs (and
# their attempts) into the queue 'bench', plus a small backlog of waiting
# jobs in a paused queue, and times job_engine.metrics() -- and, when the
# installed version has it, the job_engine.metric_samples view -- as a
# superuser (every owner's jobs) and as a plain role (none of them), best
# of JE_BENCH_METRICS_RUNS calls each.
#
#   bench/metrics_cost.sh
#   JE_BENCH_METRICS_RETAINED="100000" bench/metrics_cost.sh
#
# Environment (defaults in brackets):
#   JE_BENCH_METRICS_RETAINED  retained finished jobs, one size after the other
#                              (cumulative: each size adds to the last) [100000 1000000]
#   JE_BENCH_METRICS_BACKLOG   waiting jobs in the paused queue [1000]
#   JE_BENCH_METRICS_RUNS      calls per figure; the best is reported [5]
#   JE_BENCH_PORT              port of the cluster (its socket is private) [54332]
#   PG_MAJOR, PG_CONFIG        the PostgreSQL to use, as in scripts/lib.sh
#
# It prints one line per size: "retained N: metrics() superuser X ms,
# plain role Y ms; metric_samples superuser Z ms".

# JE_DATABASES and JE_PORT are read by scripts/lib.sh.
# shellcheck disable=SC2034
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES="${JE_BENCH_METRICS_RETAINED:-100000 1000000}"
BACKLOG="${JE_BENCH_METRICS_BACKLOG:-1000}"
RUNS="${JE_BENCH_METRICS_RUNS:-5}"
JE_PORT="${JE_BENCH_PORT:-54332}"
JE_DATABASES=postgres
JE_LOG_DIR="${TMPDIR:-/tmp}/job_engine-bench-logs-$(id -un)"
export JE_LOG_DIR

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

je_init
je_build_and_install || je_die "build failed"
je_start_cluster "$JE_TMP/data" "$JE_PORT" || je_die "the cluster did not start"

q() { je_psql -d postgres -qAt -v ON_ERROR_STOP=1 -c "$1"; }

q "CREATE EXTENSION job_engine; CREATE ROLE bench_plain LOGIN;"
q "INSERT INTO job_engine.queues (name) VALUES ('bench'), ('bench_waiting')"
q "UPDATE job_engine.queues SET paused = true WHERE name = 'bench_waiting'"

# Milliseconds of the best of $RUNS evaluations of statement $2 as role $1.
best_ms() {
	q "SET ROLE $1;
	   DO \$\$
	   DECLARE t0 timestamptz; best double precision;
	   BEGIN
	       FOR i IN 1..$RUNS LOOP
	           t0 := clock_timestamp();
	           PERFORM ($2);
	           best := LEAST(best, 1000 * extract(epoch FROM clock_timestamp() - t0));
	       END LOOP;
	       RAISE NOTICE 'best %', round(best::numeric, 1);
	   END \$\$" 2>&1 | sed -n 's/.*best \([0-9.]*\).*/\1/p'
}

# Waiting jobs: submitted through the lifecycle guard, in the paused queue.
q "ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_lifecycle_guard;
   INSERT INTO job_engine._jobs (handler, queue, state, args, max_attempts, run_at, owner, correlation_id)
   SELECT 'sql', 'bench_waiting', 'created', '{}', 3, now() - interval '1 minute', 10, gen_random_uuid()
     FROM generate_series(1, $BACKLOG);
   ALTER TABLE job_engine._jobs ENABLE TRIGGER jobs_lifecycle_guard"

loaded=0
for n in $SIZES; do
	add=$((n - loaded))
	[ "$add" -gt 0 ] || je_die "sizes must grow: $SIZES"
	je_log "loading $add finished jobs (to $n retained)"
	# Terminal rows cannot be inserted through the lifecycle guard; this is
	# a throwaway cluster, so switch it off for the load.  One in 20 failed.
	q "ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_lifecycle_guard;
	   INSERT INTO job_engine._jobs (handler, queue, state, args, result, attempts, max_attempts,
	          run_at, created_at, started_at, finished_at, state_changed_at, owner, correlation_id)
	   SELECT 'sql', 'bench', CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END::job_engine.job_state,
	          '{}', '{}', 1, 3, t, t, t, t + interval '2 ms', t + interval '2 ms', 10, gen_random_uuid()
	     FROM (SELECT i, now() - interval '1 day' + i * interval '10 ms' AS t
	             FROM generate_series($loaded + 1, $n) i) s;
	   ALTER TABLE job_engine._jobs ENABLE TRIGGER jobs_lifecycle_guard;
	   INSERT INTO job_engine._attempts (job_id, attempt, outcome, started_at, finished_at, worker_pid)
	   SELECT id, 1, CASE WHEN state = 'failed' THEN 'failed' ELSE 'succeeded' END::job_engine.attempt_outcome,
	          started_at, finished_at, 0
	     FROM job_engine._jobs WHERE queue = 'bench' AND id > (SELECT coalesce(max(job_id), 0) FROM job_engine._attempts)"
	q "VACUUM ANALYZE job_engine._jobs" >/dev/null
	q "VACUUM ANALYZE job_engine._attempts" >/dev/null
	loaded=$n
	su_ms="$(best_ms "$JE_PGUSER" "SELECT length(job_engine.metrics())")"
	plain_ms="$(best_ms bench_plain "SELECT length(job_engine.metrics())")"
	line="retained $n: metrics() superuser $su_ms ms, plain role $plain_ms ms"
	if [ "$(q "SELECT to_regclass('job_engine.metric_samples') IS NOT NULL")" = t ]; then
		rows_ms="$(best_ms "$JE_PGUSER" "SELECT count(*) FROM job_engine.metric_samples")"
		line="$line; metric_samples superuser $rows_ms ms"
	fi
	printf '%s\n' "$line"
done

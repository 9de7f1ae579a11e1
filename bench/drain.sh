#!/usr/bin/env bash
#
# bench/drain.sh: throughput and latency figures of job_engine on a
# throwaway cluster.  See bench/README.md for what each figure means.
#
#   bench/drain.sh
#   JE_BENCH_WORKERS=4 bench/drain.sh
#
# Environment:
#   JE_BENCH_WORKERS        job_engine.max_workers (default 2)
#   JE_BENCH_JOBS           jobs submitted with submit_many and drained (default 20000)
#   JE_BENCH_LATENCY_JOBS   single submits for the start latency (default 200)
#   JE_BENCH_RTT_JOBS       round trips measured by notify_rtt (default 500)
#   JE_BENCH_PORT           port of the throwaway cluster (default 54331; its
#                           socket is in a private directory)
#   JE_BENCH_KEEP=1         keep the temp directory (data, server log)
#   PG_CONFIG               pg_config of the PostgreSQL to use
#                           (default /usr/lib/postgresql/15/bin/pg_config)
#
# job_engine must be installed into that PostgreSQL first:
#   make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install
#
# The cluster runs with synchronous_commit = on and fsync = on, as the
# server user (postgres when run as root).  Results are printed as a table
# and written to bench/results/<UTC timestamp>.json.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
WORKERS="${JE_BENCH_WORKERS:-2}"
NJOBS="${JE_BENCH_JOBS:-20000}"
NLAT="${JE_BENCH_LATENCY_JOBS:-200}"
NRTT="${JE_BENCH_RTT_JOBS:-500}"
PORT="${JE_BENCH_PORT:-54331}"

die() { printf 'drain.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

for v in WORKERS NJOBS NLAT NRTT PORT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[ -x "$PG_CONFIG" ] || die "no pg_config at $PG_CONFIG (set PG_CONFIG)"
BINDIR="$("$PG_CONFIG" --bindir)"
PKGLIBDIR="$("$PG_CONFIG" --pkglibdir)"
SHAREDIR="$("$PG_CONFIG" --sharedir)"
[ -f "$PKGLIBDIR/job_engine.so" ] && [ -f "$SHAREDIR/extension/job_engine.control" ] ||
	die "job_engine is not installed in $PKGLIBDIR; run: make PG_CONFIG=$PG_CONFIG install"
command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is needed to build bench/notify_rtt.c"
[ -f "$("$PG_CONFIG" --includedir)/libpq-fe.h" ] ||
	die "libpq-fe.h not found in $("$PG_CONFIG" --includedir) (install libpq-dev)"

# Drop libpq settings of the caller: every client below is told where to go.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGDATA
export LC_ALL=C

if [ "$(id -u)" -eq 0 ]; then
	OS_USER=postgres
	as_server() { runuser -u "$OS_USER" -- "$@"; }
else
	OS_USER="$(id -un)"
	as_server() { "$@"; }
fi
DBUSER="$OS_USER"

parent="${TMPDIR:-/tmp}"
[ "${#parent}" -le 60 ] || parent=/tmp
TMP="$(mktemp -d "$parent/je_bench.XXXXXX")"
chmod 755 "$TMP"
DATA="$TMP/data"
SOCK="$TMP/socket"
SERVER_LOG="$TMP/server.log"
STARTED=0

cleanup() {
	local rc=$?
	if [ "$STARTED" -eq 1 ]; then
		as_server "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -s stop || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$SERVER_LOG" ]; then
		echo "---- last lines of the server log ($SERVER_LOG) ----" >&2
		tail -n 30 "$SERVER_LOG" >&2 || true
	fi
	if [ "${JE_BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT

# ---- build the LISTEN client ------------------------------------------------

log "building notify_rtt"
cc -O2 -Wall -o "$TMP/notify_rtt" "$BENCH_DIR/notify_rtt.c" \
	-I"$("$PG_CONFIG" --includedir)" -L"$("$PG_CONFIG" --libdir)" -lpq

# ---- throwaway cluster ------------------------------------------------------

mkdir -p "$DATA" "$SOCK"
if [ "$(id -u)" -eq 0 ]; then chown "$OS_USER:" "$DATA" "$SOCK" "$TMP"; fi
chmod 700 "$DATA"

log "initdb $DATA"
as_server "$BINDIR/initdb" -D "$DATA" -A trust -U "$DBUSER" -E UTF8 --locale=C \
	>"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }

as_server tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# bench/drain.sh
shared_preload_libraries = 'job_engine'
job_engine.databases = 'postgres'
job_engine.max_workers = $WORKERS
max_worker_processes = $((WORKERS + 8))
synchronous_commit = on
fsync = on
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
log_min_messages = warning
log_line_prefix = '%m [%p] %q%b@%d '
EOF

log "starting PostgreSQL (job_engine.max_workers = $WORKERS)"
as_server "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 -s start ||
	die "the server did not start"
STARTED=1

CONNINFO="host=$SOCK port=$PORT user=$DBUSER dbname=postgres"
psql_() { "$BINDIR/psql" -X -At -q -v ON_ERROR_STOP=1 -d "$CONNINFO" "$@"; }
q() { psql_ -c "$1"; }
now() { date +%s.%N; }
# calc EXPR: floating point arithmetic.
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# rate N SECONDS: per second, one decimal.
rate() { awk "BEGIN { printf \"%.1f\", $1 / $2 }"; }

q "CREATE EXTENSION job_engine"
q "CREATE FUNCTION public.noop(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT job_engine.register_handler('noop', 'public.noop(jsonb)'::regprocedure)" >/dev/null

# wait_for SQL TIMEOUT_S: poll until SQL returns t.
wait_for() {
	local sql="$1" limit="$2" start
	start="$(now)"
	until [ "$(q "$sql")" = t ]; do
		if awk -v s="$start" -v n="$(now)" -v l="$limit" 'BEGIN { exit !(n - s > l) }'; then
			die "timed out after ${limit}s waiting for: $sql"
		fi
		sleep 0.1
	done
}

log "waiting for $WORKERS executors"
wait_for "SELECT count(*) = $WORKERS FROM pg_stat_activity WHERE backend_type = 'job_engine executor'" 60

# ---- (a) submit_many, (b) drain ---------------------------------------------

log "(a) submit_many of $NJOBS jobs"
first_id="$(q "SELECT coalesce(max(id), 0) + 1 FROM job_engine.jobs")"
t0="$(now)"
q "SELECT count(*) FROM job_engine.submit_many('noop', array_fill('{}'::jsonb, ARRAY[$NJOBS]))" >/dev/null
t1="$(now)"

log "(b) draining $NJOBS jobs"
while [ "$(q "SELECT count(*) FROM job_engine.jobs WHERE id >= $first_id AND state NOT IN ('succeeded', 'failed', 'aborted')")" != 0 ]; do
	sleep 0.1
done
t2="$(now)"

states="$(q "SELECT string_agg(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM job_engine.jobs WHERE id >= $first_id GROUP BY state ORDER BY state) s")"
[ "$states" = "succeeded=$NJOBS" ] || die "drained jobs did not all succeed: $states"

submit_s="$(calc "$t1 - $t0")"
submit_rate="$(rate "$NJOBS" "$submit_s")"
drain_s="$(calc "$t2 - $t1")"
drain_rate="$(rate "$NJOBS" "$drain_s")"
# The executors' own view: first attempt start to last finish.
drain_db_s="$(q "SELECT extract(epoch FROM max(a.finished_at) - min(a.started_at)) FROM job_engine.attempts a WHERE a.job_id >= $first_id")"
drain_db_rate="$(rate "$NJOBS" "$drain_db_s")"

# ---- (c) submit -> handler start latency ------------------------------------

log "(c) $NLAT single submits, one at a time"
lat_first="$(q "SELECT coalesce(max(id), 0) + 1 FROM job_engine.jobs")"
{
	for _ in $(seq "$NLAT"); do
		echo "SELECT job_engine.submit('noop') AS id \\gset"
		echo "SELECT job_engine.wait(:id, '30 seconds') AS state \\gset"
	done
} >"$TMP/latency.sql"
psql_ -f "$TMP/latency.sql"
lat_states="$(q "SELECT string_agg(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM job_engine.jobs WHERE id >= $lat_first GROUP BY state ORDER BY state) s")"
[ "$lat_states" = "succeeded=$NLAT" ] || die "latency jobs did not all succeed: $lat_states"
read -r lat_p50 lat_p99 lat_max <<<"$(q "
SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
       round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
       round(max(ms)::numeric, 3)
  FROM (SELECT extract(epoch FROM a.started_at - j.created_at) * 1000 AS ms
          FROM job_engine.jobs j
          JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = 1
         WHERE j.id >= $lat_first) s" | tr '|' ' ')"

# ---- (d) client round trip through LISTEN/NOTIFY -----------------------------

log "(d) $NRTT round trips submit -> 'succeeded' notification"
"$TMP/notify_rtt" -n "$NRTT" "$CONNINFO" >"$TMP/rtt.out"
rtt() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/rtt.out"; }
rtt_p50="$(rtt p50_ms)"
rtt_p99="$(rtt p99_ms)"
rtt_max="$(rtt max_ms)"

# ---- report -----------------------------------------------------------------

pg_version="$(q "SHOW server_version")"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain -- src job_engine--1.0.sql 2>/dev/null)" ]; then
	commit="$commit+changes"
fi
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

printf '\njob_engine bench  (PostgreSQL %s, %s CPUs, max_workers %s, synchronous_commit on, checkout %s)\n\n' \
	"$pg_version" "$(nproc)" "$WORKERS" "$commit"
printf '  %-44s %12s  %s\n' "figure" "value" "unit"
printf '  %-44s %12s  %s\n' "--------------------------------------------" "------------" "----"
printf '  %-44s %12.0f  %s\n' "(a) submit_many of $NJOBS jobs" "$submit_rate" "jobs/s  ($(printf %.3f "$submit_s") s)"
printf '  %-44s %12.0f  %s\n' "(b) drain of $NJOBS no-op jobs (client poll)" "$drain_rate" "jobs/s  ($(printf %.3f "$drain_s") s)"
printf '  %-44s %12.0f  %s\n' "    same, first start to last finish" "$drain_db_rate" "jobs/s  ($(printf %.3f "$drain_db_s") s)"
printf '  %-44s %12.3f  %s\n' "(c) created -> handler start, p50" "$lat_p50" "ms  ($NLAT jobs, one at a time)"
printf '  %-44s %12.3f  %s\n' "    p99" "$lat_p99" "ms  (max $lat_max)"
printf '  %-44s %12.3f  %s\n' "(d) submit -> 'succeeded' NOTIFY, p50" "$rtt_p50" "ms  ($NRTT round trips)"
printf '  %-44s %12.3f  %s\n' "    p99" "$rtt_p99" "ms  (max $rtt_max)"

mkdir -p "$BENCH_DIR/results"
out="$BENCH_DIR/results/$stamp.json"
cat >"$out" <<EOF
{
  "timestamp": "$stamp",
  "checkout": "$commit",
  "postgresql": "$pg_version",
  "cpus": $(nproc),
  "settings": {
    "job_engine.max_workers": $WORKERS,
    "synchronous_commit": "on",
    "fsync": "on"
  },
  "submit_many": { "jobs": $NJOBS, "seconds": $submit_s, "jobs_per_s": $submit_rate },
  "drain": { "jobs": $NJOBS, "seconds": $drain_s, "jobs_per_s": $drain_rate,
             "executor_seconds": $drain_db_s, "executor_jobs_per_s": $drain_db_rate },
  "start_latency_ms": { "jobs": $NLAT, "p50": $lat_p50, "p99": $lat_p99, "max": $lat_max },
  "notify_round_trip_ms": { "jobs": $(rtt n), "lost": $(rtt lost), "p50": $rtt_p50, "p99": $rtt_p99,
                            "max": $rtt_max, "mean": $(rtt mean_ms) }
}
EOF
printf '\nwritten to %s\n' "${out#"$ROOT"/}"

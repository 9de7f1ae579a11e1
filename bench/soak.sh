#!/usr/bin/env bash
#
# bench/soak.sh: steady load for a long time while another session holds a
# snapshot open, then recovery once it lets go.  Run by hand; about
# JE_SOAK_HOLD_MIN + JE_SOAK_RECOVER_MIN minutes (35 by default).
#
#   bench/soak.sh
#   JE_SOAK_RATE=100 JE_SOAK_HOLD_MIN=5 bench/soak.sh
#
# A pgbench client submits no-op SQL jobs at a fixed rate (-R) for the whole
# run; 2 executors run them.  A psql session opens a REPEATABLE READ
# transaction at the start and commits it after JE_SOAK_HOLD_MIN minutes, so
# no dead row or index entry of the jobs table can be removed meanwhile.
# Every JE_SOAK_SAMPLE_S seconds one line: jobs finished in the interval per
# second, submit -> start latency p50/p99 of the jobs started in it, jobs
# waiting, n_dead_tup and the sizes of _jobs and jobs_claim_idx.  The lines
# go to stdout and to bench/results/soak-<stamp>.txt.
#
# Environment:
#   JE_SOAK_RATE         jobs submitted per second [200]
#   JE_SOAK_HOLD_MIN     minutes the snapshot is held [30]
#   JE_SOAK_RECOVER_MIN  minutes of load after it is released [5]
#   JE_SOAK_SAMPLE_S     seconds between samples [60]
#   JE_SOAK_WORKERS      job_engine.max_workers [2]
#   JE_SOAK_PORT         port of the throwaway cluster [54333]
#   JE_BENCH_KEEP=1      keep the temp directory
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
RATE="${JE_SOAK_RATE:-200}"
HOLD_MIN="${JE_SOAK_HOLD_MIN:-30}"
RECOVER_MIN="${JE_SOAK_RECOVER_MIN:-5}"
SAMPLE_S="${JE_SOAK_SAMPLE_S:-60}"
WORKERS="${JE_SOAK_WORKERS:-2}"
PORT="${JE_SOAK_PORT:-54333}"
OUT_DIR="${JE_BENCH_OUT:-$BENCH_DIR/results}"

for v in RATE HOLD_MIN RECOVER_MIN SAMPLE_S WORKERS PORT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: $v must be a positive integer" >&2; exit 2; }
done

JE_LOG_DIR="${TMPDIR:-/tmp}/job_engine-bench-logs-$(id -un)"
export JE_LOG_DIR
export JE_KEEP_TMP="${JE_BENCH_KEEP:-0}"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

log() { printf '==> [%5ss] %s\n' "$((SECONDS))" "$*" >&2; }

je_init
SNAP_FD=""
SNAP_PID=""
LOAD_PID=""
soak_on_exit() {
	local rc=$?
	[ -z "$LOAD_PID" ] || kill "$LOAD_PID" 2>/dev/null || true
	if [ -n "$SNAP_FD" ]; then exec {SNAP_FD}>&- || true; fi
	[ -z "$SNAP_PID" ] || kill "$SNAP_PID" 2>/dev/null || true
	set +e
	(exit "$rc")
	je_on_exit
}
trap soak_on_exit EXIT
export LC_ALL=C

# A copy of the working tree, built and installed privately.
mkdir -p "$JE_TMP/tree"
(cd "$ROOT" && tar --exclude='*.o' --exclude='*.bc' --exclude='*.so' -cf - \
	Makefile job_engine.control src examples) | tar -C "$JE_TMP/tree" -xf -
JE_ROOT="$JE_TMP/tree"
je_build_and_install >"$JE_TMP/build.log" 2>&1 || { cat "$JE_TMP/build.log"; exit 1; }

JE_DATABASES=postgres
je_start_cluster "$JE_TMP/data" "$PORT"
# Durable commits, as in production (the test cluster turns them off).
je_as_server_user tee -a "$JE_DATADIR/postgresql.conf" >/dev/null <<EOF
# bench/soak.sh
job_engine.max_workers = $WORKERS
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = '8GB'
checkpoint_timeout = '30min'
shared_buffers = '512MB'
EOF
je_as_server_user "$JE_BINDIR/pg_ctl" -D "$JE_DATADIR" -l "$JE_SERVER_LOG" -w -t 60 -s restart
# What the server logs from here on (the restart itself logs FATALs of the
# workers it stops).
LOG_FROM=$(($(wc -l <"$JE_SERVER_LOG") + 1))
q() { je_psql -d postgres -X -At -q -c "$1"; }

q "CREATE EXTENSION job_engine"
q "CREATE FUNCTION public.noop_sql(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT job_engine.register_handler('soak', 'public.noop_sql(jsonb)'::regprocedure, queue => 'soak')" >/dev/null

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/soak-$STAMP.txt"
TOTAL_S=$(((HOLD_MIN + RECOVER_MIN) * 60))

# The snapshot holder: a REPEATABLE READ transaction that read the jobs table.
mkfifo "$JE_TMP/snap.fifo"
"$JE_BINDIR/psql" -X -At -q -h "$JE_SOCKDIR" -p "$PORT" -U "$JE_PGUSER" -d postgres \
	<"$JE_TMP/snap.fifo" >"$JE_TMP/snap.out" 2>&1 &
SNAP_PID=$!
exec {SNAP_FD}>"$JE_TMP/snap.fifo"
echo "SET application_name = je_soak_snapshot; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM job_engine._jobs;" >&"$SNAP_FD"
for _ in $(seq 1 100); do
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'je_soak_snapshot' AND backend_xmin IS NOT NULL")" = 1 ] && break
	sleep 0.1
done

# The load: pgbench at a fixed rate for the whole run.
echo "SELECT job_engine.submit('soak', '{}');" >"$JE_TMP/submit.sql"
"$JE_BINDIR/pgbench" -n -h "$JE_SOCKDIR" -p "$PORT" -U "$JE_PGUSER" -c 2 -j 2 \
	-R "$RATE" -T "$TOTAL_S" -f "$JE_TMP/submit.sql" postgres >"$JE_TMP/pgbench.log" 2>&1 &
LOAD_PID=$!

{
	echo "job_engine soak: $RATE jobs/s submitted for $((TOTAL_S / 60)) min, $WORKERS executors;"
	echo "a REPEATABLE READ snapshot is held for the first $HOLD_MIN min."
	echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf '%6s %-8s %9s %9s %9s %9s %10s %10s %10s\n' min snapshot "done/s" "p50 ms" "p99 ms" waiting n_dead_tup "_jobs MB" "claim_idx"
} | tee "$OUT"

held=1
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$TOTAL_S" ]; do
	sleep "$SAMPLE_S"
	el=$((SECONDS - t0))
	if [ "$held" = 1 ] && [ "$el" -ge $((HOLD_MIN * 60)) ]; then
		echo "COMMIT;" >&"$SNAP_FD"
		exec {SNAP_FD}>&-
		SNAP_FD=""
		held=0
		log "snapshot released"
	fi
	row="$(q "SELECT round(count(*) FILTER (WHERE finished_at > now() - interval '$SAMPLE_S s') / $SAMPLE_S.0, 1),
	                 round((1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)
	                        FILTER (WHERE started_at > now() - interval '$SAMPLE_S s')))::numeric, 1),
	                 round((1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - created_at)
	                        FILTER (WHERE started_at > now() - interval '$SAMPLE_S s')))::numeric, 1),
	                 count(*) FILTER (WHERE state IN ('created', 'retrying'))
	            FROM job_engine._jobs")"
	stat="$(q "SELECT n_dead_tup, round(pg_total_relation_size('job_engine._jobs') / 1048576.0, 1),
	                  round(pg_relation_size('job_engine.jobs_claim_idx') / 1048576.0, 1)
	             FROM pg_stat_all_tables WHERE relid = 'job_engine._jobs'::regclass")"
	IFS='|' read -r rate p50 p99 waiting <<<"$row"
	IFS='|' read -r dead size idx <<<"$stat"
	printf '%6.1f %-8s %9s %9s %9s %9s %10s %10s %10s\n' "$(awk -v e="$el" 'BEGIN { print e / 60 }')" \
		"$([ "$held" = 1 ] && echo held || echo released)" "$rate" "${p50:--}" "${p99:--}" "$waiting" "$dead" "$size" "${idx}MB" |
		tee -a "$OUT"
done
wait "$LOAD_PID" || true
LOAD_PID=""
{
	echo "pgbench: $(grep -E '^(number of transactions actually processed|latency average|tps)' "$JE_TMP/pgbench.log" | tr '\n' ';')"
	echo "jobs: $(q "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state::text, count(*) AS n FROM job_engine._jobs GROUP BY 1 ORDER BY 1) s")"
	echo "server log: $(tail -n "+$LOG_FROM" "$JE_SERVER_LOG" | grep -cE 'ERROR|FATAL|PANIC' || true) errors"
	tail -n "+$LOG_FROM" "$JE_SERVER_LOG" | grep -E 'ERROR|FATAL|PANIC' | head -n 20 || true
} | tee -a "$OUT"
log "results: $OUT"

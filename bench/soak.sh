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
# run; 2 executors run them.  For the first JE_SOAK_HOLD_MIN minutes the
# pressure of JE_SOAK_PRESSURE holds the xmin horizon back, so no dead row or
# index entry of the jobs table can be removed meanwhile: "snapshot", a psql
# session that opens a REPEATABLE READ transaction at the start and commits
# it at the end; "xid", a session idle in a transaction that holds an xid;
# "readers", JE_SOAK_READERS REPEATABLE READ sessions that scan
# job_engine.jobs again and again, each in one transaction (the pressure of
# bench/pressure.sh); several kinds may be given.
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
#   JE_SOAK_PRESSURE     what holds the horizon back: snapshot, xid, readers [snapshot]
#   JE_SOAK_READERS      readers of the "readers" pressure [4]
#   JE_SOAK_READER_PAUSE seconds a reader sleeps between scans [1]
#   JE_SOAK_PORT         port of the throwaway cluster [54333]
#   JE_BENCH_REF, JE_BENCH_INSTALL, JE_BENCH_SHARED_BUFFERS, JE_BENCH_NOTIFY,
#   JE_BENCH_CONF, JE_BENCH_KEEP, JE_BENCH_OUT, PG_MAJOR, PG_CONFIG: as for
#   bench/run.sh
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

RATE="${JE_SOAK_RATE:-200}"
HOLD_MIN="${JE_SOAK_HOLD_MIN:-30}"
RECOVER_MIN="${JE_SOAK_RECOVER_MIN:-5}"
SAMPLE_S="${JE_SOAK_SAMPLE_S:-60}"
WORKERS="${JE_SOAK_WORKERS:-2}"
PRESSURE="${JE_SOAK_PRESSURE:-snapshot}"
NREADERS="${JE_SOAK_READERS:-4}"
READER_PAUSE="${JE_SOAK_READER_PAUSE:-1}"
PORT="${JE_SOAK_PORT:-54333}"

BENCH_NAME=soak.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

posints RATE HOLD_MIN RECOVER_MIN SAMPLE_S WORKERS NREADERS
[[ "$READER_PAUSE" =~ ^[0-9]*\.?[0-9]+$ ]] || die "JE_SOAK_READER_PAUSE must be a number of seconds, got '$READER_PAUSE'"
[ -n "${PRESSURE// /}" ] || die "JE_SOAK_PRESSURE names at least one of snapshot, xid, readers"
for p in $PRESSURE; do
	case "$p" in snapshot | xid | readers) ;; *) die "JE_SOAK_PRESSURE: unknown kind '$p' (snapshot xid readers)" ;; esac
done
pressure() { [[ " $PRESSURE " == *" $1 "* ]]; }
# Progress to stderr: stdout is the table.
log() { printf '==> [%5ss] %s\n' "$((SECONDS))" "$*" >&2; }

bench_start
bench_build
bench_cluster "$WORKERS"
bench_schema
LOAD_START="$(loadavg)"
# What the server logs from here on.
LOG_FROM=$(($(wc -l <"$JE_SERVER_LOG") + 1))

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/soak-$STAMP.txt"
TOTAL_S=$(((HOLD_MIN + RECOVER_MIN) * 60))

# The pressure.
HOLD_S=$((HOLD_MIN * 60))
if pressure snapshot; then hold_snapshot je_soak_snapshot; fi
if pressure xid; then hold_xid je_soak_xid; fi
if pressure readers; then readers_start "$NREADERS" "$HOLD_S" "$READER_PAUSE"; fi

# The load: pgbench at a fixed rate for the whole run.
echo "SELECT job_engine.submit('sql', '{}');" >"$W_/submit.sql"
"$BINDIR/pgbench" -n -h "$SOCK" -p "$PORT" -U "$DBUSER" -c 2 -j 2 \
	-R "$RATE" -T "$TOTAL_S" -f "$W_/submit.sql" postgres >"$W_/pgbench.log" 2>&1 &
LOAD_PID=$!
bench_bg "$LOAD_PID"

{
	echo "job_engine soak: $RATE jobs/s submitted for $((TOTAL_S / 60)) min, $WORKERS executors;"
	echo "held for the first $HOLD_MIN min:$(pressure snapshot && echo " a REPEATABLE READ snapshot;")$(pressure xid && echo " an xid, idle in transaction;")$(pressure readers && echo " $NREADERS REPEATABLE READ readers scanning job_engine.jobs;")"
	echo "machine: $(nproc) CPUs, load average $LOAD_START at start; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf '%6s %-8s %9s %9s %9s %9s %10s %10s %10s\n' min snapshot "done/s" "p50 ms" "p99 ms" waiting n_dead_tup "_jobs MB" "claim_idx"
} | tee "$OUT"

held=1
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$TOTAL_S" ]; do
	sleep "$SAMPLE_S"
	el=$((SECONDS - t0))
	if [ "$held" = 1 ] && [ "$el" -ge "$HOLD_S" ]; then
		if pressure snapshot; then hold_close je_soak_snapshot; fi
		if pressure xid; then hold_close je_soak_xid; fi
		if pressure readers; then readers_wait; fi
		held=0
		log "pressure released"
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
bench_unbg "$LOAD_PID"
{
	echo "pgbench: $(grep -E '^(number of transactions actually processed|latency average|tps)' "$W_/pgbench.log" | tr '\n' ';')"
	echo "jobs: $(q "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state::text, count(*) AS n FROM job_engine._jobs GROUP BY 1 ORDER BY 1) s")"
	echo "server log: $(tail -n "+$LOG_FROM" "$JE_SERVER_LOG" | grep -cE 'ERROR|FATAL|PANIC' || true) errors"
	tail -n "+$LOG_FROM" "$JE_SERVER_LOG" | grep -E 'ERROR|FATAL|PANIC' | head -n 20 || true
} | tee -a "$OUT"
log "results: $OUT"

#!/usr/bin/env bash
#
# bench/pressure.sh: steady load through MVCC pressure.  On a throwaway
# cluster as bench/run.sh makes it (fsync and synchronous_commit on), 4
# executors in strict mode run no-op SQL jobs that pgbench submits at a
# fixed rate (-R, one job_engine.submit per transaction) through five phases:
#
#   clean      no pressure                                         [60 s]
#   xid held   a session idle in transaction holding an xid        [240 s]
#   recovery   no pressure                                         [60 s]
#   readers    4 REPEATABLE READ sessions scanning job_engine.jobs,
#              each keeping its snapshot for the whole phase       [120 s]
#   recovery   no pressure                                         [60 s]
#
# then keeps the load on while it polls (up to 5 minutes) for the size of
# the job tables to come back within 2x of their size before the pressure.
# Per phase: jobs offered and finished, the jobs waiting at its end (also in
# seconds of load), p50/p99 of attempt start - created_at of the jobs started
# in it, the size of _jobs (with its indexes) and of _attempts; whether the
# targets of the hot path are met (backlog under 2 s of load, p99 <= 250 ms,
# size back within 2x within 5 minutes).  The table goes to stdout and to
# bench/results/pressure-<UTC timestamp>.txt, the figures to .json.  See
# bench/README.md.
#
#   bench/pressure.sh                      # about 15 minutes
#   JE_PRESSURE_RATE=200 JE_PRESSURE_CLEAN=15 JE_PRESSURE_HOLD=20 JE_PRESSURE_RECOVER=15 \
#   JE_PRESSURE_READERS=20 JE_PRESSURE_SETTLE=30 bench/pressure.sh     # about 2 minutes
#
# Environment (defaults in brackets):
#   JE_PRESSURE_RATE        jobs offered per second [500]
#   JE_PRESSURE_CLEAN       seconds of the clean phase [60]
#   JE_PRESSURE_HOLD        seconds the xid is held [240]
#   JE_PRESSURE_RECOVER     seconds of each recovery phase [60]
#   JE_PRESSURE_READERS     seconds of the readers phase [120]
#   JE_PRESSURE_NREADERS    readers [4]
#   JE_PRESSURE_READER_PAUSE  seconds a reader sleeps between scans [1]
#   JE_PRESSURE_SETTLE      longest wait for the size to come back, s [300]
#   JE_PRESSURE_WORKERS     executors (job_engine.max_workers) [4]
#   JE_PRESSURE_CLIENTS     pgbench clients [4]
#   JE_PRESSURE_RETENTION   job_engine.retention, s [30]
#   JE_PRESSURE_SAMPLE      seconds between samples of the latencies [5]
#   JE_PRESSURE_CONCURRENCY the queue's concurrency limit (configure_queue);
#                           empty: none [empty]
#   JE_PRESSURE_PORT        port of the cluster (its socket is private) [54332]
#   JE_BENCH_REF, JE_BENCH_INSTALL, JE_BENCH_SHARED_BUFFERS, JE_BENCH_NOTIFY,
#   JE_BENCH_CONF, JE_BENCH_KEEP, JE_BENCH_OUT, PG_MAJOR, PG_CONFIG: as for
#   bench/run.sh
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

RATE="${JE_PRESSURE_RATE:-500}"
CLEAN_S="${JE_PRESSURE_CLEAN:-60}"
HOLD_S="${JE_PRESSURE_HOLD:-240}"
RECOVER_S="${JE_PRESSURE_RECOVER:-60}"
READERS_S="${JE_PRESSURE_READERS:-120}"
NREADERS="${JE_PRESSURE_NREADERS:-4}"
READER_PAUSE="${JE_PRESSURE_READER_PAUSE:-1}"
SETTLE_S="${JE_PRESSURE_SETTLE:-300}"
WORKERS="${JE_PRESSURE_WORKERS:-4}"
CLIENTS="${JE_PRESSURE_CLIENTS:-4}"
RETENTION="${JE_PRESSURE_RETENTION:-30}"
SAMPLE_S="${JE_PRESSURE_SAMPLE:-5}"
CONCURRENCY="${JE_PRESSURE_CONCURRENCY:-}"
PORT="${JE_PRESSURE_PORT:-54332}"

# The targets of the hot path (issue "Hot path v2").
T_BACKLOG_S=2      # waiting jobs at the end of every phase, in seconds of load: under this
T_P99_MS=250       # p99 of attempt start - created_at: at most this
T_SIZE_FACTOR=2    # table + index size back within this factor of the pre-pressure size ...
T_SIZE_S=300       # ... within this many seconds

BENCH_NAME=pressure.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

posints RATE CLEAN_S HOLD_S RECOVER_S READERS_S NREADERS SETTLE_S WORKERS CLIENTS RETENTION SAMPLE_S
[[ "$READER_PAUSE" =~ ^[0-9]*\.?[0-9]+$ ]] || die "JE_PRESSURE_READER_PAUSE must be a number of seconds, got '$READER_PAUSE'"

bench_start
bench_build
# Retention keeps the tables to the last minute or two of jobs, so that
# their size measures dead space rather than history.
bench_cluster "$WORKERS" "job_engine.retention = $RETENTION"
bench_schema
if [ -n "$CONCURRENCY" ]; then
	posints CONCURRENCY
	q "SELECT job_engine.configure_queue('bench', concurrency => $CONCURRENCY)" >/dev/null
fi
bench_facts
LOG_FROM=$(($(wc -l <"$JE_SERVER_LOG") + 1))
log "$CPUS CPUs, load average $LOAD_START, PostgreSQL $PG_VERSION, checkout $COMMIT"

# ---- measuring ----------------------------------------------------------------

WAITING="state IN ('created', 'retrying') AND blocked IS NULL"
# Size of job_engine._jobs and _attempts (each with its indexes) and of all
# tables of the schema, in bytes.
SCHEMA_SIZE="(SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
               WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind IN ('r', 'p', 'm'))"
SIZES="pg_total_relation_size('job_engine._jobs'), pg_total_relation_size('job_engine._attempts'), $SCHEMA_SIZE"

# boundary NAME: the state at the end of phase NAME (or "start"), one line
# of $W_/boundaries: name, server time, newest job id, jobs waiting, jobs
# running, the three sizes, CPU mark ("busy ours").
boundary() {
	local row
	row="$(q "SELECT extract(epoch FROM clock_timestamp()),
	                 coalesce((SELECT max(id) FROM job_engine._jobs), 0),
	                 (SELECT count(*) FROM job_engine._jobs WHERE $WAITING),
	                 (SELECT count(*) FROM job_engine._jobs WHERE state = 'running' AND worker_pid IS NOT NULL),
	                 $SIZES")"
	printf '%s|%s|%s\n' "$1" "$row" "$(cpu_mark)" >>"$W_/boundaries"
	relations "$1"
	kill -0 "$LOAD_PID" 2>/dev/null || die "pgbench stopped: $(cat "$W_/pgbench.out")"
}

# relations NAME: the size of every table and index of the schema at the
# end of phase NAME, lines "phase relation bytes" of $W_/relations; at the
# end ("settle") also what pgstattuple finds in them (live, dead, free
# space; a btree's leaf density and deleted pages), so that the size left
# after the pressure can be told apart: dead space waiting for a vacuum,
# free space a vacuum left, or an index that grew and stays grown.
relations() {
	q "COPY (SELECT '$1', c.relname, pg_relation_size(c.oid)
	            FROM pg_class c
	           WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind IN ('r', 'i', 't')
	                 AND pg_relation_size(c.oid) > 8192
	           ORDER BY 3 DESC) TO STDOUT" >>"$W_/relations" || true
	[ "$1" = settle ] || return 0
	q "COPY (SELECT c.relname, pg_relation_size(c.oid),
	                t.tuple_count, t.tuple_percent, t.dead_tuple_count, t.dead_tuple_percent, t.free_percent
	           FROM pg_class c, LATERAL pgstattuple(c.oid) t
	          WHERE c.relnamespace = 'job_engine'::regnamespace AND c.relkind = 'r'
	                AND pg_relation_size(c.oid) > 8192 ORDER BY 2 DESC) TO STDOUT" >"$W_/heap_stats" || true
	q "COPY (SELECT c.relname, pg_relation_size(c.oid), i.leaf_pages, i.empty_pages, i.deleted_pages,
	                i.avg_leaf_density
	           FROM pg_class c JOIN pg_index x ON x.indexrelid = c.oid
	                JOIN pg_am a ON a.oid = c.relam AND a.amname = 'btree', LATERAL pgstatindex(c.oid) i
	          WHERE c.relnamespace = 'job_engine'::regnamespace AND pg_relation_size(c.oid) > 8192
	          ORDER BY 2 DESC) TO STDOUT" >"$W_/index_stats" || true
}

# sample_once: the attempts started since the last sample, as "started_at
# ms" lines of $W_/latency (ms: attempt start - the job's created_at), and a
# line "time waiting" of $W_/series.  A claim stamps its attempt before it
# commits, so a sample reads up to 2 s before its own time; and only from
# the lowest job id waiting at the last sample (less 10 s of load, for
# submits that committed later than their id was drawn).
sample_once() {
	local from lo row t waiting low
	read -r from lo <"$W_/sample.state"
	row="$(q "SELECT extract(epoch FROM clock_timestamp()),
	                 (SELECT count(*) FROM job_engine._jobs WHERE $WAITING),
	                 coalesce((SELECT min(id) FROM job_engine._jobs WHERE $WAITING),
	                          (SELECT max(id) + 1 FROM job_engine._jobs), 0)")" || return 0
	IFS='|' read -r t waiting low <<<"$row"
	printf '%s %s\n' "$t" "$waiting" >>"$W_/series"
	t="$(calc "$t - 2")"
	psqld postgres -c "COPY (SELECT extract(epoch FROM a.started_at),
	                               round((extract(epoch FROM a.started_at - j.created_at) * 1000)::numeric, 3)
	                          FROM job_engine._attempts a JOIN job_engine._jobs j ON j.id = a.job_id
	                         WHERE a.job_id >= $lo AND a.attempt = 1
	                           AND a.started_at > to_timestamp($from) AND a.started_at <= to_timestamp($t))
	                   TO STDOUT" >>"$W_/latency" || return 0
	printf '%s %s\n' "$t" "$((low > RATE * 10 ? low - RATE * 10 : 0))" >"$W_/sample.state"
}
sampler() {
	while [ ! -f "$W_/sample.stop" ]; do
		sleep "$SAMPLE_S"
		sample_once 2>>"$W_/sampler.err"
	done
}

# sleep_until EPOCH
sleep_until() {
	local d
	d="$(calc "$1 - $(now)")"
	if awk -v d="$d" 'BEGIN { exit !(d > 0) }'; then sleep "$d"; fi
}

# ---- the run ------------------------------------------------------------------

q "CHECKPOINT"
echo "SELECT job_engine.submit('sql');" >"$W_/submit.sql"
LOAD_S=$((CLEAN_S + HOLD_S + 2 * RECOVER_S + READERS_S + SETTLE_S + 120))
"$BINDIR/pgbench" -n -M prepared -h "$SOCK" -p "$PORT" -U "$DBUSER" \
	-c "$CLIENTS" -j $((CLIENTS < CPUS ? CLIENTS : CPUS)) -R "$RATE" -T "$LOAD_S" \
	-f "$W_/submit.sql" postgres >"$W_/pgbench.out" 2>&1 &
LOAD_PID=$!
bench_bg "$LOAD_PID"
printf '%s 0\n' "$(now)" >"$W_/sample.state"
sampler &
SAMPLER_PID=$!
bench_bg "$SAMPLER_PID"
boundary start
T0="$(now)"

log "clean: ${CLEAN_S}s at $RATE jobs/s"
sleep_until "$(calc "$T0 + $CLEAN_S")"
boundary clean

log "xid held: a session idle in transaction with an xid, ${HOLD_S}s"
t="$(now)"
hold_xid je_pressure_xid
sleep_until "$(calc "$t + $HOLD_S")"
hold_close je_pressure_xid
boundary xid_held

log "recovery: ${RECOVER_S}s"
sleep_until "$(calc "$(now) + $RECOVER_S")"
boundary recovery_1

log "readers: $NREADERS REPEATABLE READ readers scanning job_engine.jobs, ${READERS_S}s"
readers_start "$NREADERS" "$READERS_S" "$READER_PAUSE"
readers_wait
boundary readers

log "recovery: ${RECOVER_S}s"
sleep_until "$(calc "$(now) + $RECOVER_S")"
boundary recovery_2

# The load goes on while the size is polled.
REF_SIZE="$(awk -F'|' '$1 == "clean" { print $8 }' "$W_/boundaries")"
log "settle: until the job tables are back within ${T_SIZE_FACTOR}x of $((REF_SIZE / 1048576)) MB, at most ${SETTLE_S}s"
t="$(now)"
SETTLED_S=""
while :; do
	size="$(q "SELECT $SCHEMA_SIZE")"
	el="$(calc "$(now) - $t")"
	if [ "$size" -le $((T_SIZE_FACTOR * REF_SIZE)) ]; then
		SETTLED_S="$el"
		break
	fi
	awk -v e="$el" -v l="$SETTLE_S" 'BEGIN { exit !(e < l) }' || break
	sleep "$SAMPLE_S"
done
boundary settle
# Before pgbench is stopped: its sessions end with "connection to client lost".
LOG_PROBLEMS="$(server_log_problems "$LOG_FROM")"

kill "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
bench_unbg "$LOAD_PID"
touch "$W_/sample.stop"
wait "$SAMPLER_PID" || true
bench_unbg "$SAMPLER_PID"
sleep 2
sample_once 2>>"$W_/sampler.err"
LOAD_END="$(loadavg)"
SAMPLER_ERRORS="$(grep -c ERROR "$W_/sampler.err" || true)"

# ---- figures ------------------------------------------------------------------

PHASES="clean xid_held recovery_1 readers recovery_2 settle"
declare -A LABEL=([clean]="clean" [xid_held]="xid held" [recovery_1]="recovery"
	[readers]="$NREADERS RR readers" [recovery_2]="recovery" [settle]="settle")
# phase_figures PREV NAME: "seconds offered finished waiting backlog_s p50
# p99 started jobs_bytes attempts_bytes all_bytes other_cpus cpu_ms_per_job"
# of the phase that ends at boundary NAME.
phase_figures() {
	local pct t0 id0 w0 r0 m0 t1 id1 w1 r1 sj sa sall m1
	IFS='|' read -r _ t0 id0 w0 r0 _ _ _ m0 <<<"$(awk -F'|' -v n="$1" '$1 == n' "$W_/boundaries")"
	IFS='|' read -r _ t1 id1 w1 r1 sj sa sall m1 <<<"$(awk -F'|' -v n="$2" '$1 == n' "$W_/boundaries")"
	pct="$(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 < b { print $2 }' "$W_/latency" | sort -n |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "- - 0"; exit }
			i50 = int(NR * 0.5); if (i50 < NR * 0.5) i50++
			i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
			printf "%.1f %.1f %d\n", v[i50], v[i99], NR }')"
	local offered=$((id1 - id0)) s
	s="$(calc "$t1 - $t0")"
	local finished=$((offered - (w1 - w0) - (r1 - r0)))
	printf '%.1f %s %s %s %s %s %s %s %s %s %s\n' "$s" "$offered" "$finished" "$w1" \
		"$(awk -v w="$w1" -v r="$RATE" 'BEGIN { printf "%.1f", w / r }')" "$pct" \
		"$sj" "$sa" "$sall" "$(other_cpus "$m0" "$m1" "$s")" "$(cpu_ms "$m0" "$m1" "$finished")"
}
declare -A FIG
prev=start
for p in $PHASES; do
	FIG[$p]="$(phase_figures "$prev" "$p")"
	prev="$p"
done
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
yesno() { if [ "$1" = 1 ]; then echo met; else echo "NOT met"; fi; }

MAX_SIZE="$(awk -F'|' '$8 > m { m = $8 } END { print m + 0 }' "$W_/boundaries")"
SIZE_OK=0
if [ -n "$SETTLED_S" ] && awk -v s="$SETTLED_S" -v l="$T_SIZE_S" 'BEGIN { exit !(s <= l) }'; then SIZE_OK=1; fi
SIZE_VERDICT="$(yesno "$SIZE_OK")"
if [ "$SIZE_OK" = 0 ] && [ "$SETTLE_S" -lt "$T_SIZE_S" ]; then SIZE_VERDICT="not known (polled for $SETTLE_S s only)"; fi
BACKLOG_FAIL="" P99_FAIL=""
for p in clean xid_held recovery_1 readers recovery_2; do
	read -r _ _ _ w bs p50 p99 n _ <<<"${FIG[$p]}"
	awk -v b="$bs" -v t="$T_BACKLOG_S" 'BEGIN { exit !(b < t) }' || BACKLOG_FAIL="$BACKLOG_FAIL ${LABEL[$p]}"
	if [ "$p99" = - ]; then
		[ "$w" = 0 ] || P99_FAIL="$P99_FAIL ${LABEL[$p]}"
	else
		awk -v v="$p99" -v t="$T_P99_MS" 'BEGIN { exit !(v <= t) }' || P99_FAIL="$P99_FAIL ${LABEL[$p]}"
	fi
done

# ---- report -------------------------------------------------------------------

mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/pressure-$STAMP.txt"
{
	printf 'job_engine pressure benchmark %s  (checkout %s)\n' "$STAMP" "$COMMIT"
	printf 'machine: %s CPUs (%s), %s MB RAM, load average %s at start, %s at end\n' \
		"$CPUS" "${CPU_MODEL:-?}" "$MEM_MB" "$LOAD_START" "$LOAD_END"
	printf 'PostgreSQL %s; fsync on, synchronous_commit on, shared_buffers %s, job_engine.notify %s, retention %s s, queue concurrency %s\n' \
		"$PG_VERSION" "$SHARED_BUFFERS" "$NOTIFY" "$RETENTION" "${CONCURRENCY:-unlimited}"
	printf '%s jobs/s offered (pgbench -R, %s clients, one submit per transaction), %s executors, strict, no-op SQL handler\n' \
		"$RATE" "$CLIENTS" "$WORKERS"
	printf 'server log: %s errors or warnings; sampler: %s failed queries\n\n' "$LOG_PROBLEMS" "$SAMPLER_ERRORS"
	printf '%-14s %6s %8s %8s %8s %8s %8s %9s %9s %8s %8s %8s %6s %7s\n' phase s offered "done" "done/s" waiting "backlog" "p50 ms" "p99 ms" "_jobs" "_attempts" "all" other "cpu ms"
	printf '%-14s %6s %8s %8s %8s %8s %8s %9s %9s %8s %8s %8s %6s %7s\n' "" "" "" "" "" "at end" "s of load" "" "" MB MB MB CPUs "/job"
	for p in $PHASES; do
		read -r s off fin w bs p50 p99 n sj sa sall oc cm <<<"${FIG[$p]}"
		printf '%-14s %6.0f %8s %8s %8.0f %8s %8s %9s %9s %8s %8s %8s %6s %7s\n' "${LABEL[$p]}" "$s" "$off" "$fin" \
			"$(calc "$fin / $s")" "$w" "$bs" "$p50" "$p99" "$(mb "$sj")" "$(mb "$sa")" "$(mb "$sall")" "$oc" "$cm"
	done
	printf '(p50/p99: attempt start - created_at of the jobs started in the phase; done: offered less the\n'
	printf ' growth of the waiting and running jobs; sizes at the end of the phase, with indexes; "all": every\n'
	printf ' table of the schema job_engine; "settle": the load goes on while the size is polled)\n\n'
	printf 'targets (the five phases):\n'
	printf '  backlog under %s s of load at the end of every phase:  %s%s\n' "$T_BACKLOG_S" \
		"$(yesno "$([ -z "$BACKLOG_FAIL" ] && echo 1)")" "${BACKLOG_FAIL:+ (not in:$BACKLOG_FAIL)}"
	printf '  p99 attempt start - created_at <= %s ms in every phase: %s%s\n' "$T_P99_MS" \
		"$(yesno "$([ -z "$P99_FAIL" ] && echo 1)")" "${P99_FAIL:+ (not in:$P99_FAIL)}"
	printf '  size back within %sx of the pre-pressure size within %s s: %s (before the pressure %s MB, largest %s MB, ' \
		"$T_SIZE_FACTOR" "$T_SIZE_S" "$SIZE_VERDICT" "$(mb "$REF_SIZE")" "$(mb "$MAX_SIZE")"
	if [ -n "$SETTLED_S" ]; then
		printf 'back within %.0f s of the last phase)\n' "$SETTLED_S"
	else
		printf '%s MB after %s s)\n' "$(mb "$(awk -F'|' '$1 == "settle" { print $8 }' "$W_/boundaries")")" "$SETTLE_S"
	fi
	if [ "$CLEAN_S" -lt 60 ]; then
		printf '  (a clean phase under 60 s ends before retention has purged anything: the size before the\n'
		printf '  pressure is below that of a steady state, and the size figure means little)\n'
	fi
} >"$REPORT"

# Per relation: MB at the end of each phase, then pgstattuple at the end.
{
	printf 'job_engine pressure benchmark %s: every table and index of the schema over 8 kB, MB at the end of each phase\n\n' "$STAMP"
	printf '%-32s' relation
	for p in start $PHASES; do printf ' %9s' "$p"; done
	printf '\n'
	awk -v phases="start $PHASES" '
		BEGIN { n = split(phases, ph, " ") }
		{ mb[$2, $1] = $3 / 1048576; if (!($2 in seen)) { seen[$2] = ++k; name[k] = $2 } }
		END { for (r = 1; r <= k; r++) { printf "%-32s", name[r]
				for (i = 1; i <= n; i++) printf " %9.2f", mb[name[r], ph[i]]
				printf "\n" } }' "$W_/relations"
	printf '\nheap at the end (pgstattuple): relation, MB, live tuples, live %%, dead tuples, dead %%, free %%\n'
	awk '{ printf "  %-30s %8.2f %9s %6s %9s %6s %6s\n", $1, $2 / 1048576, $3, $4, $5, $6, $7 }' "$W_/heap_stats"
	printf '\nbtree indexes at the end (pgstatindex): index, MB, leaf pages, empty, deleted, avg leaf density %%\n'
	awk '{ printf "  %-30s %8.2f %9s %6s %8s %6s\n", $1, $2 / 1048576, $3, $4, $5, $6 }' "$W_/index_stats"
} >"$OUT_DIR/pressure-$STAMP.relations.txt"

OUT_JSON="$OUT_DIR/pressure-$STAMP.json"
{
	printf '{\n'
	printf '  "timestamp": "%s",\n  "checkout": "%s",\n' "$STAMP" "$COMMIT"
	printf '  "machine": {"cpus": %s, "cpu_model": %s, "memory_mb": %s, "load_start": "%s", "load_end": "%s"},\n' \
		"$CPUS" "$(json_str "${CPU_MODEL:-}")" "$MEM_MB" "$LOAD_START" "$LOAD_END"
	printf '  "postgresql": %s,\n' "$(json_str "$PG_VERSION")"
	printf '  "settings": {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "%s", "job_engine.notify": "%s", "install": "%s", "rate": %s, "clients": %s, "executors": %s, "retention_s": %s, "concurrency": %s, "readers": %s, "reader_pause_s": %s, "clean_s": %s, "hold_s": %s, "recover_s": %s, "readers_s": %s, "settle_max_s": %s},\n' \
		"$SHARED_BUFFERS" "$NOTIFY" "$INSTALL" "$RATE" "$CLIENTS" "$WORKERS" "$RETENTION" "${CONCURRENCY:-null}" "$NREADERS" "$READER_PAUSE" \
		"$CLEAN_S" "$HOLD_S" "$RECOVER_S" "$READERS_S" "$SETTLE_S"
	printf '  "server_log_problems": %s,\n  "sampler_errors": %s,\n' "$LOG_PROBLEMS" "$SAMPLER_ERRORS"
	printf '  "phases": [\n'
	sep=""
	for p in $PHASES; do
		read -r s off fin w bs p50 p99 n sj sa sall oc cm <<<"${FIG[$p]}"
		printf '%s    {"phase": "%s", "seconds": %s, "offered": %s, "finished": %s, "waiting_at_end": %s, "backlog_s": %s, "started": %s, "p50_ms": %s, "p99_ms": %s, "jobs_bytes": %s, "attempts_bytes": %s, "schema_bytes": %s, "other_cpus": %s, "cpu_ms_per_job": %s}' \
			"$sep" "$p" "$s" "$off" "$fin" "$w" "$bs" "$n" "$(num "${p50#-}")" "$(num "${p99#-}")" \
			"$(num "$sj")" "$(num "$sa")" "$(num "$sall")" "$oc" "$cm"
		sep=$',\n'
	done
	printf '\n  ],\n'
	printf '  "size": {"before_pressure_bytes": %s, "largest_bytes": %s, "back_within_factor_after_s": %s},\n' \
		"$REF_SIZE" "$MAX_SIZE" "$(num "$SETTLED_S")"
	printf '  "targets": {"backlog_under_2s": %s, "p99_le_250ms": %s, "size_within_2x_in_5min": %s},\n' \
		"$([ -z "$BACKLOG_FAIL" ] && echo true || echo false)" "$([ -z "$P99_FAIL" ] && echo true || echo false)" \
		"$(case "$SIZE_VERDICT" in met) echo true ;; not*) echo null ;; *) echo false ;; esac)"
	# Jobs waiting over time: seconds since the start of the clean phase.
	printf '  "waiting": [%s]\n' "$(awk -v t0="$T0" '{ printf "%s[%.1f, %s]", (NR > 1 ? ", " : ""), $1 - t0, $2 }' "$W_/series")"
	printf '}\n'
} >"$OUT_JSON"
if command -v jq >/dev/null 2>&1; then jq . "$OUT_JSON" >/dev/null || die "invalid JSON in $OUT_JSON"; fi
if [ "$LOG_PROBLEMS" -gt 0 ]; then
	tail -n "+$LOG_FROM" "$JE_SERVER_LOG" >"$OUT_DIR/pressure-$STAMP.server.log"
fi

printf '\n'
cat "$REPORT"
printf '\nresults: %s\n         %s\n         %s\n' "${OUT_JSON#"$ROOT"/}" "${REPORT#"$ROOT"/}" \
	"${OUT_DIR#"$ROOT"/}/pressure-$STAMP.relations.txt"

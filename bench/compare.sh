#!/usr/bin/env bash
#
# bench/compare.sh: job_engine side by side with graphile-worker on one
# throwaway cluster.  For each executor count (= graphile-worker's
# concurrency) and mode, drains JE_BENCH_JOBS no-op jobs with one, then the
# other, JE_COMPARE_ROUNDS times (the first to go alternating by round), and
# prints jobs/s per run and the ratio job_engine / graphile-worker.
#
#   strict:  job_engine group_commit 1 vs graphile-worker's defaults
#   batched: job_engine group_commit JE_COMPARE_GROUP vs graphile-worker's
#            local queue (JE_COMPARE_GW_LOCAL_QUEUE jobs per fetch) and
#            batched completion (completeJobBatchDelay JE_COMPARE_GW_BATCH_DELAY)
#
# Results: bench/results/compare-<UTC timestamp>.txt and .json.  The
# cluster, the build and the job_engine drain are bench/run.sh's (sourced);
# graphile-worker is the version that bench/graphile/package-lock.json
# pins, installed with `npm ci` into the temp directory and run by
# bench/graphile/drain.js in a Node process of its own.  See bench/README.md.
#
#   bench/compare.sh
#   JE_COMPARE_ROUNDS=1 JE_COMPARE_CONCURRENCY="4" bench/compare.sh
#
# Environment (defaults in brackets):
#   JE_COMPARE_ROUNDS           runs of each system per cell [3]
#   JE_COMPARE_CONCURRENCY      executor counts / graphile-worker concurrency [2 4 8]
#   JE_COMPARE_MODES            strict and/or batched [strict batched]
#   JE_COMPARE_GROUP            job_engine group_commit of batched mode [64]
#   JE_COMPARE_GW_LOCAL_QUEUE   graphile-worker localQueue.size of batched mode [256]
#   JE_COMPARE_GW_BATCH_DELAY   graphile-worker completeJobBatchDelay and
#                               failJobBatchDelay of batched mode, ms [10]
#   JE_BENCH_JOBS, JE_BENCH_DRAIN_TIMEOUT, JE_BENCH_PORT, JE_BENCH_KEEP,
#   JE_BENCH_INSTALL, JE_BENCH_REF, JE_BENCH_CONF, JE_BENCH_OUT, PG_MAJOR,
#   PG_CONFIG:                  as for bench/run.sh
#
# Node.js and npm: Debian's nodejs and npm packages, installed when missing
# and run as root.

# Lists in variables are split on purpose; run.sh sets the variables used
# here (PG_VERSION, SOCK, ...).
# shellcheck disable=SC2086,SC2153
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

COMPARE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS="${JE_COMPARE_ROUNDS:-3}"
CONCURRENCY="${JE_COMPARE_CONCURRENCY:-2 4 8}"
MODES="${JE_COMPARE_MODES:-strict batched}"
GROUP="${JE_COMPARE_GROUP:-64}"
GW_LOCAL_QUEUE="${JE_COMPARE_GW_LOCAL_QUEUE:-256}"
GW_BATCH_DELAY="${JE_COMPARE_GW_BATCH_DELAY:-10}"

cdie() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || cdie "JE_COMPARE_ROUNDS must be a positive integer, got '$ROUNDS'"
for m in $MODES; do
	case "$m" in strict | batched) ;; *) cdie "modes are strict and batched, got '$m'" ;; esac
done
[[ "$GW_LOCAL_QUEUE" =~ ^[1-9][0-9]*$ ]] || cdie "JE_COMPARE_GW_LOCAL_QUEUE must be a positive integer"
[[ "$GW_BATCH_DELAY" =~ ^-?[0-9]+$ ]] || cdie "JE_COMPARE_GW_BATCH_DELAY must be an integer (ms; -1 disables)"

# Node first: without it there is nothing to compare with.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "==> installing nodejs and npm (Debian packages)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q --no-install-recommends nodejs npm >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 &&
				apt-get install -y -q --no-install-recommends nodejs npm >/dev/null; } ||
			cdie "could not install nodejs and npm"
	fi
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		cdie "Node.js and npm are needed (apt-get install nodejs npm)"
	fi
fi

# bench/run.sh's build, cluster and drain: only its setup runs when sourced.
first_c="$(printf '%s\n' $CONCURRENCY | sort -n | head -n 1)"
export JE_BENCH_STAGES=drain
export JE_BENCH_EXECUTORS="$CONCURRENCY"
export JE_BENCH_WORKERS="$first_c"
export JE_BENCH_GROUPS="1 $GROUP"
export JE_BENCH_HANDLERS=sql
export JE_BENCH_FSYNC_TEST="${JE_BENCH_FSYNC_TEST:-0}"
export JE_BENCH_PLOT=0
. "$COMPARE_DIR/run.sh"

GW_DIR="$TMP/graphile"
mkdir -p "$GW_DIR"
cp "$COMPARE_DIR/graphile/package.json" "$COMPARE_DIR/graphile/package-lock.json" \
	"$COMPARE_DIR/graphile/drain.js" "$GW_DIR/"
log "npm ci (graphile-worker, as pinned by bench/graphile/package-lock.json)"
(cd "$GW_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$TMP/log/npm.log" 2>&1) ||
	{ cat "$TMP/log/npm.log"; die "npm ci failed"; }
GW_VERSION="$(cd "$GW_DIR" && node -p 'JSON.parse(require("fs").readFileSync("node_modules/graphile-worker/package.json")).version')"
NODE_VERSION="$(node --version)"
log "graphile-worker $GW_VERSION on Node.js $NODE_VERSION"

# gw_drain CONCURRENCY MODE: one drain with graphile-worker.  Sets D_RATE,
# D_SECONDS, D_CPU (CPU ms per job of the cluster and the Node process,
# its start excluded), D_OTHER as drain does.
gw_drain() {
	local c="$1" mode="$2" line pre_ms mark0 mark1 t0 jobs pid
	local -a env=(PGHOST="$SOCK" PGPORT="$PORT" PGUSER="$DBUSER" PGDATABASE=postgres
		GW_LOCAL_QUEUE="$GW_LOCAL_QUEUE" GW_BATCH_DELAY="$GW_BATCH_DELAY" GW_TIMEOUT="$DRAIN_TIMEOUT")
	coproc GWP { env "${env[@]}" node "$GW_DIR/drain.js" "$NJOBS" "$c" "$mode" 2>>"$TMP/log/graphile.log"; }
	pid="$GWP_PID"
	read -r -u "${GWP[0]}" line || { wait "$pid" || true; die "graphile-worker did not start: $(tail -n 5 "$TMP/log/graphile.log")"; }
	[[ "$line" == "ready "* ]] || die "graphile-worker: unexpected '$line'"
	pre_ms="${line#ready }"
	mark0="$(cpu_mark)"
	# The Node process's CPU time until now is counted in mark1 once it is
	# reaped: count it in mark0 too.
	mark0="$(awk -v m="$mark0" -v p="$pre_ms" -v hz="$CLK_TCK" 'BEGIN {
		split(m, x, " "); printf "%s %d", x[1], x[2] + p * hz / 1000 }')"
	t0="$(now)"
	echo go >&"${GWP[1]}"
	read -r -u "${GWP[0]}" jobs D_SECONDS D_RATE || true
	wait "$pid" || die "graphile-worker drain failed: $(tail -n 5 "$TMP/log/graphile.log")"
	[ "${jobs:-}" = "$NJOBS" ] || die "graphile-worker drained ${jobs:-no} jobs of $NJOBS"
	mark1="$(cpu_mark)"
	D_OTHER="$(other_cpus "$mark0" "$mark1" "$(calc "$(now) - $t0")")"
	D_CPU="$(cpu_ms "$mark0" "$mark1" "$NJOBS")"
}

# je_drain CONCURRENCY MODE: one drain with job_engine (bench/run.sh).
je_drain() {
	reset_jobs
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	[ "$D_TIMEDOUT" = 0 ] || die "job_engine's drain took longer than $DRAIN_TIMEOUT s"
}

declare -A RATES
RUNS="$W_/runs.jsonl"
: >"$RUNS"
# measure SYSTEM C MODE ROUND
measure() {
	local sys="$1" c="$2" mode="$3" r="$4"
	if [ "$sys" = job_engine ]; then je_drain "$c" "$mode"; else gw_drain "$c" "$mode"; fi
	RATES["$mode/$c/$sys"]+="$D_RATE "
	log "$mode, $c: $sys $(fmt0 "$D_RATE") jobs/s ($(printf %.2f "$D_SECONDS") s, $D_CPU CPU ms/job, other load $D_OTHER CPUs)"
	printf '{"mode": "%s", "concurrency": %s, "round": %s, "system": "%s", "jobs": %s, "seconds": %s, "jobs_per_s": %s, "cpu_ms_per_job": %s, "other_cpus": %s, "load": "%s"}\n' \
		"$mode" "$c" "$r" "$sys" "$NJOBS" "$D_SECONDS" "$D_RATE" "$D_CPU" "$D_OTHER" "$(loadavg)" >>"$RUNS"
}

LINES="$W_/lines.txt"
: >"$LINES"
for c in $(printf '%s\n' $CONCURRENCY | sort -n | uniq); do
	set_workers "$c"
	for mode in $MODES; do
		if [ "$mode" = strict ]; then set_group 1; else set_group "$GROUP"; fi
		for ((r = 1; r <= ROUNDS; r++)); do
			order="job_engine graphile-worker"
			[ $((r % 2)) = 1 ] || order="graphile-worker job_engine"
			for sys in $order; do measure "$sys" "$c" "$mode" "$r"; done
			je="$(echo ${RATES[$mode/$c/job_engine]} | awk '{ print $NF }')"
			gw="$(echo ${RATES[$mode/$c/graphile-worker]} | awk '{ print $NF }')"
			printf '   %-8s %2s  round %d   job_engine %7.0f   graphile-worker %7.0f   ratio %5.2f\n' \
				"$mode" "$c" "$r" "$je" "$gw" "$(calc "$je / $gw")" | tee -a "$LINES"
		done
	done
done
set_group 1

# median LIST
median() { printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
LOAD_END="$(loadavg)"
STAMP="compare-$STAMP"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/$STAMP.txt"
SUMMARY="$W_/summary.jsonl"
: >"$SUMMARY"
{
	printf 'job_engine vs graphile-worker %s  (checkout %s)\n' "${STAMP#compare-}" "$COMMIT"
	printf 'machine: %s CPUs (%s), %s MB RAM, load average %s at start, %s at end\n' \
		"$CPUS" "${CPU_MODEL:-?}" "$MEM_MB" "$LOAD_START" "$LOAD_END"
	printf 'PostgreSQL %s; fsync on, synchronous_commit on, job_engine.notify %s; graphile-worker %s on Node.js %s\n' \
		"$PG_VERSION" "$NOTIFY" "$GW_VERSION" "$NODE_VERSION"
	printf 'drains of %s no-op jobs, jobs/s; %s rounds, the first system alternating by round\n' "$NJOBS" "$ROUNDS"
	printf 'strict: group_commit 1 vs defaults; batched: group_commit %s vs localQueue.size %s, completeJobBatchDelay %s ms\n' \
		"$GROUP" "$GW_LOCAL_QUEUE" "$GW_BATCH_DELAY"
	printf '\nruns:\n'
	cat "$LINES"
	printf '\nmedians:\n   %-8s %5s %12s %16s %7s %17s\n' mode exec job_engine graphile-worker ratio "ratio min..max"
	for mode in $MODES; do
		for c in $(printf '%s\n' $CONCURRENCY | sort -n | uniq); do
			je="$(median "${RATES[$mode/$c/job_engine]}")"
			gw="$(median "${RATES[$mode/$c/graphile-worker]}")"
			ratios="$(paste -d' ' <(printf '%s\n' ${RATES[$mode/$c/job_engine]}) <(printf '%s\n' ${RATES[$mode/$c/graphile-worker]}) |
				awk '{ print $1 / $2 }')"
			rmin="$(printf '%s\n' $ratios | sort -g | head -n 1)"
			rmax="$(printf '%s\n' $ratios | sort -g | tail -n 1)"
			printf '   %-8s %5s %12.0f %16.0f %7.2f %8.2f..%-8.2f\n' "$mode" "$c" "$je" "$gw" "$(calc "$je / $gw")" "$rmin" "$rmax"
			printf '{"mode": "%s", "concurrency": %s, "job_engine_median": %s, "graphile_worker_median": %s, "ratio": %s, "ratio_min": %s, "ratio_max": %s}\n' \
				"$mode" "$c" "$je" "$gw" "$(calc "$je / $gw")" "$rmin" "$rmax" >>"$SUMMARY"
		done
	done
} >"$REPORT"

OUT_JSON="$OUT_DIR/$STAMP.json"
{
	printf '{\n  "timestamp": "%s",\n  "checkout": "%s",\n' "${STAMP#compare-}" "$COMMIT"
	printf '  "machine": {"cpus": %s, "cpu_model": %s, "memory_mb": %s, "load_start": "%s", "load_end": "%s"},\n' \
		"$CPUS" "$(json_str "${CPU_MODEL:-}")" "$MEM_MB" "$LOAD_START" "$LOAD_END"
	printf '  "postgresql": %s,\n' "$(json_str "$PG_VERSION")"
	printf '  "settings": {"jobs": %s, "rounds": %s, "modes": "%s", "group_commit": %s, "job_engine.notify": "%s", "graphile_worker": "%s", "node": "%s", "gw_local_queue": %s, "gw_batch_delay_ms": %s},\n' \
		"$NJOBS" "$ROUNDS" "$MODES" "$GROUP" "$NOTIFY" "$GW_VERSION" "$NODE_VERSION" "$GW_LOCAL_QUEUE" "$GW_BATCH_DELAY"
	printf '  "runs": [\n    %s\n  ],\n' "$(paste -sd, "$RUNS" | sed 's/},{/},\n    {/g')"
	printf '  "summary": [\n    %s\n  ]\n}\n' "$(paste -sd, "$SUMMARY" | sed 's/},{/},\n    {/g')"
} >"$OUT_JSON"
if command -v jq >/dev/null 2>&1; then jq . "$OUT_JSON" >/dev/null || die "invalid JSON in $OUT_JSON"; fi

printf '\n'
cat "$REPORT"
printf '\nresults: %s\n         %s\n' "${OUT_JSON#"$ROOT"/}" "${REPORT#"$ROOT"/}"

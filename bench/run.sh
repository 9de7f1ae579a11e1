#!/usr/bin/env bash
#
# bench/run.sh: the job_engine benchmark.  One command, one throwaway
# cluster (fsync = on, synchronous_commit = on), every figure:
#
#   1. drain throughput of no-op jobs by executor count, strict and group commit
#   2. the ideal-SQL ceiling: pgbench claim/complete on a comparable plain table
#   3. latency: submit -> handler start, and submit -> 'succeeded' notification
#   4. submit and submit_many rates (plus a plain INSERT ceiling)
#   5. drain throughput with 1M terminal jobs retained vs an empty table
#   6. drain throughput and dead tuples while a snapshot is held open, and after
#   7. executor memory (RSS) over a long drain
#   8. drain throughput with 100,000 jobs due in a year waiting in other queues
#
# It prints a table, writes it to bench/results/<UTC timestamp>.txt, the
# figures to bench/results/<UTC timestamp>.json and, when
# gnuplot is available (installed from Debian packages when run as root), a
# plot bench/results/<UTC timestamp>.svg (or .png).  See bench/README.md.
#
#   bench/run.sh
#   JE_BENCH_STAGES="drain latency" JE_BENCH_EXECUTORS="2" bench/run.sh
#
# Environment (defaults in brackets):
#   JE_BENCH_STAGES         stages to run [drain ceiling latency submit retained snapshot rss deferred]
#   JE_BENCH_REF            build this git revision (e.g. HEAD) instead of the
#                           working tree as it is now []
#   JE_BENCH_EXECUTORS      executor counts of stage 1 [1 2 4 8]
#   JE_BENCH_GROUPS         group_commit values of stage 1 [1 32 64]
#   JE_BENCH_HANDLERS       no-op handlers of stage 1: sql, plpgsql [sql plpgsql]
#   JE_BENCH_JOBS           jobs per drain (stages 1, 5, 6, 8) and per submit_many call [20000]
#   JE_BENCH_CEILING_JOBS   jobs per run of stage 2 [10000]
#   JE_BENCH_WORKERS        executors for stages 3, 5, 6, 7, 8 [2]
#   JE_BENCH_CLIENTS        pgbench client counts of stages 2 and 4 [1 2 4 8]
#   JE_BENCH_BATCH          jobs per statement of the batched ceiling [64]
#   JE_BENCH_RTT_JOBS       round trips of stage 3 [500]
#   JE_BENCH_SUBMIT_SECONDS duration of each pgbench run of stage 4 [4]
#   JE_BENCH_RETAINED       terminal jobs retained in stage 5 [1000000]
#   JE_BENCH_SNAPSHOT_TIMEOUT  longest drain while the snapshot is held, s [120]
#   JE_BENCH_RSS_JOBS       jobs of the long drain of stage 7 [100000]
#   JE_BENCH_RSS_GROUP      group_commit of that drain [1]
#   JE_BENCH_DEFERRED       jobs due in a year waiting during stage 8's drain [100000]
#   JE_BENCH_DEFERRED_QUEUES  queues they are spread over [100]
#   JE_BENCH_RETRIES        measurements of stages 1, 2 and 4 during which other
#                           processes used more than JE_BENCH_QUIET CPUs are
#                           repeated up to this many times; the best is kept [1]
#   JE_BENCH_QUIET          see JE_BENCH_RETRIES [0.5]
#   JE_BENCH_DRAIN_TIMEOUT  longest drain; a slower one is cut short, reported
#                           from the jobs done by then and marked '*' [120]
#   JE_BENCH_SHARED_BUFFERS shared_buffers of the cluster [512MB]
#   JE_BENCH_NOTIFY         job_engine.notify of the cluster; stage 3 needs on [on]
#   JE_BENCH_CONF           more lines for postgresql.conf (they come last) []
#   JE_BENCH_FSYNC_TEST     1: run pg_test_fsync -s 1 for the machine facts [1]
#   JE_BENCH_PLOT           1: draw the plot (needs gnuplot) [1]
#   JE_BENCH_PLOT_FORMAT    svg or png [svg]
#   JE_BENCH_INSTALL        private: build this checkout and install it into a
#                           private copy of PostgreSQL (scripts/lib.sh);
#                           system: use the job_engine installed in PG_CONFIG [private]
#   JE_BENCH_PORT           port of the cluster (its socket is private) [54331]
#   JE_BENCH_KEEP=1         keep the temp directory (data, logs, raw samples)
#   JE_BENCH_OUT            results directory [bench/results]
#   PG_MAJOR, PG_CONFIG     the PostgreSQL to use, as in scripts/lib.sh
#                           [the distribution's; /usr/lib/postgresql/$PG_MAJOR/bin/pg_config]

# Lists in variables (executor counts, pids) are split on purpose; some
# variables set here are read by scripts/lib.sh.
# shellcheck disable=SC2086,SC2034
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

STAGES="${JE_BENCH_STAGES:-drain ceiling latency submit retained snapshot rss deferred}"
EXECUTORS="${JE_BENCH_EXECUTORS:-1 2 4 8}"
GROUPS_="${JE_BENCH_GROUPS:-1 32 64}"
HANDLERS="${JE_BENCH_HANDLERS:-sql plpgsql}"
NJOBS="${JE_BENCH_JOBS:-20000}"
CEIL_JOBS="${JE_BENCH_CEILING_JOBS:-10000}"
WORKERS="${JE_BENCH_WORKERS:-2}"
CLIENTS="${JE_BENCH_CLIENTS:-1 2 4 8}"
BATCH="${JE_BENCH_BATCH:-64}"
NRTT="${JE_BENCH_RTT_JOBS:-500}"
SUBMIT_S="${JE_BENCH_SUBMIT_SECONDS:-4}"
RETAINED="${JE_BENCH_RETAINED:-1000000}"
SNAP_TIMEOUT="${JE_BENCH_SNAPSHOT_TIMEOUT:-120}"
RSS_JOBS="${JE_BENCH_RSS_JOBS:-100000}"
RSS_GROUP="${JE_BENCH_RSS_GROUP:-1}"
DEFERRED="${JE_BENCH_DEFERRED:-100000}"
DEFERRED_QUEUES="${JE_BENCH_DEFERRED_QUEUES:-100}"
DRAIN_TIMEOUT="${JE_BENCH_DRAIN_TIMEOUT:-120}"
RETRIES="${JE_BENCH_RETRIES:-1}"
QUIET="${JE_BENCH_QUIET:-0.5}"
FSYNC_TEST="${JE_BENCH_FSYNC_TEST:-1}"
PLOT="${JE_BENCH_PLOT:-1}"
PLOT_FORMAT="${JE_BENCH_PLOT_FORMAT:-svg}"
PORT="${JE_BENCH_PORT:-54331}"

BENCH_NAME=run.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

posints NJOBS CEIL_JOBS WORKERS BATCH NRTT SUBMIT_S RETAINED SNAP_TIMEOUT RSS_JOBS RSS_GROUP DEFERRED DEFERRED_QUEUES DRAIN_TIMEOUT
for w in $EXECUTORS $CLIENTS; do posint "$w" || die "executor and client counts must be positive integers, got '$w'"; done
for g in $GROUPS_; do
	{ posint "$g" && [ "$g" -le 64 ]; } || die "group_commit values must be 1..64, got '$g'"
done
for h in $HANDLERS; do
	case "$h" in sql | plpgsql) ;; *) die "handlers are sql and plpgsql, got '$h'" ;; esac
done
for s in $STAGES; do
	case "$s" in drain | ceiling | latency | submit | retained | snapshot | rss | deferred) ;;
	*) die "unknown stage '$s' (drain ceiling latency submit retained snapshot rss deferred)" ;;
	esac
done
[ "$RSS_GROUP" -le 64 ] || die "JE_BENCH_RSS_GROUP must be 1..64"
[[ "$RETRIES" =~ ^[0-9]+$ ]] || die "JE_BENCH_RETRIES must be an integer >= 0, got '$RETRIES'"
[[ "$QUIET" =~ ^[0-9]*\.?[0-9]+$ ]] || die "JE_BENCH_QUIET must be a number of CPUs, got '$QUIET'"
[ "$NOTIFY" = on ] || ! stage latency || die "the latency stage needs JE_BENCH_NOTIFY=on"
case "$PLOT_FORMAT" in svg | png) ;; *) die "JE_BENCH_PLOT_FORMAT is svg or png, got '$PLOT_FORMAT'" ;; esac
stage() { [[ " $STAGES " == *" $1 "* ]]; }

# ---- build ------------------------------------------------------------------

bench_start
bench_build

command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is needed to build bench/notify_rtt.c"
INCDIR="$("$PG_CONFIG" --includedir)"
[ -f "$INCDIR/libpq-fe.h" ] || die "libpq-fe.h not found in $INCDIR (install libpq-dev)"
cc -O2 -Wall -o "$TMP/notify_rtt" "$BENCH_DIR/notify_rtt.c" -I"$INCDIR" \
	-L"$("$PG_CONFIG" --libdir)" -lpq || die "could not build notify_rtt"

# ---- helpers ----------------------------------------------------------------

# best_of FN ARGS...: runs FN, which sets M_RATE, M_OTHER (other_cpus),
# M_CPU (CPU ms per job), M_JSON (an object) and M_LOG; again while other processes used more than
# $QUIET CPUs, at most $RETRIES more times.  Leaves the best run's M_*, with
# "tries" added to M_JSON.
best_of() {
	local try b_rate="" b_other b_json b_log b_mark b_cpu
	for ((try = 1; try <= RETRIES + 1; try++)); do
		"$@"
		if [ -z "$b_rate" ] || awk -v a="$M_RATE" -v b="$b_rate" 'BEGIN { exit !(a > b) }'; then
			b_rate="$M_RATE" b_other="$M_OTHER" b_json="$M_JSON" b_log="$M_LOG" b_mark="${M_MARK:-}" b_cpu="${M_CPU:-}"
		fi
		awk -v o="$M_OTHER" -v q="$QUIET" 'BEGIN { exit !(o > q) }' || break
		[ "$try" -gt "$RETRIES" ] || log "  other processes used $M_OTHER CPUs meanwhile: measuring again"
	done
	M_RATE="$b_rate" M_OTHER="$b_other" M_LOG="$b_log" M_MARK="$b_mark" M_CPU="$b_cpu"
	M_JSON="${b_json%\}}, \"tries\": $((try > RETRIES + 1 ? RETRIES + 1 : try))}"
}
qp() { psqld bench_plain -c "$1"; }

# ---- the cluster ------------------------------------------------------------

# Executor counts in order; stages 3 to 8 run at $WORKERS.
all_w="$( (stage drain && printf '%s\n' $EXECUTORS; printf '%s\n' "$WORKERS") | sort -n | uniq)"
first_w="$(echo $all_w | cut -d' ' -f1)"

bench_cluster "$first_w"
bench_schema

# ---- machine facts ----------------------------------------------------------

bench_facts
FSYNC_OPS=""
if [ "$FSYNC_TEST" = 1 ] && [ -x "$BINDIR/pg_test_fsync" ]; then
	log "pg_test_fsync -s 1"
	"$BINDIR/pg_test_fsync" -s 1 -f "$TMP/fsync.test" >"$TMP/log/pg_test_fsync.log" 2>&1 || true
	# The first fdatasync line: one 8kB write then fdatasync (wal_sync_method on Linux).
	FSYNC_OPS="$(awk '$1 == "fdatasync" && $3 == "ops/sec" { printf "%.0f", $2; exit }' "$TMP/log/pg_test_fsync.log")"
	rm -f "$TMP/fsync.test"
fi
log "$CPUS CPUs, load average $LOAD_START, PostgreSQL $PG_VERSION, fdatasync ${FSYNC_OPS:-?} ops/s"

# ---- draining ---------------------------------------------------------------

# A clean slate for the next measurement: no jobs, nothing dirty.
reset_jobs() {
	q "TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs"
	q "CHECKPOINT"
}

set_group() { q "SELECT job_engine.configure_queue('bench', group_commit => $1)" >/dev/null; }

# drain HANDLER N TIMEOUT_S: submit N jobs into the paused queue 'bench',
# resume it and poll (short separate sessions, no snapshot kept) until none of
# the queue is left waiting or running (other queues' jobs may wait: stage 8).
# Sets D_DONE (jobs succeeded), D_SECONDS (resume to the last job's finish,
# server clock), D_RATE (D_DONE / D_SECONDS), D_SPAN (first claim to last
# finish), D_WALL (resume to the poll that saw the queue empty), D_TIMEDOUT
# (1 if TIMEOUT_S passed first), D_OTHER (CPUs used by other processes of the
# machine meanwhile), D_CPU (CPU ms per job of the cluster and the poller).
drain() {
	local handler="$1" n="$2" limit="$3" first t0 start left row mark0 mark1
	q "SELECT job_engine.pause_queue('bench')" >/dev/null
	first="$(q "SELECT min(id) FROM job_engine.submit_many('$handler', array_fill('{}'::jsonb, ARRAY[$n])) s(id)")"
	q "CHECKPOINT"
	start="$(now)"
	mark0="$(cpu_mark)"
	t0="$(q "SELECT job_engine.resume_queue('bench') IS NULL, extract(epoch FROM now())" | cut -d'|' -f2)"
	D_TIMEDOUT=0
	while :; do
		# Candidates, then held ones (by jobs_claim_idx and jobs_held_idx).
		left="$(q "SELECT EXISTS (SELECT 1 FROM job_engine._jobs WHERE queue = 'bench' AND state IN ('created', 'retrying') AND blocked IS NULL)
		                  OR EXISTS (SELECT 1 FROM job_engine._jobs WHERE queue = 'bench' AND state IN ('created', 'retrying') AND blocked IS NOT NULL)
		                  OR EXISTS (SELECT 1 FROM job_engine._jobs WHERE state = 'running')")"
		[ "$left" = t ] || break
		if awk -v s="$start" -v n="$(now)" -v l="$limit" 'BEGIN { exit !(n - s > l) }'; then
			D_TIMEDOUT=1
			break
		fi
		sleep 0.2
	done
	D_WALL="$(calc "$(now) - $start")"
	mark1="$(cpu_mark)"
	D_OTHER="$(other_cpus "$mark0" "$mark1" "$D_WALL")"
	row="$(q "SELECT count(*) FILTER (WHERE state = 'succeeded'),
	                 count(*) FILTER (WHERE state NOT IN ('succeeded', 'created', 'retrying', 'running')),
	                 extract(epoch FROM max(finished_at)) - $t0,
	                 extract(epoch FROM max(finished_at) - min(started_at))
	            FROM job_engine._jobs WHERE id >= $first")"
	IFS='|' read -r D_DONE bad D_SECONDS D_SPAN <<<"$row"
	[ "$bad" = 0 ] || die "$bad jobs of a drain did not succeed: $(q "SELECT string_agg(DISTINCT coalesce(last_error, state::text), '; ') FROM job_engine._jobs WHERE id >= $first AND state IN ('failed', 'aborted')")"
	if [ "$D_TIMEDOUT" = 1 ]; then
		D_SECONDS="$D_WALL"
		# Stop what is left, so that it does not run into the next figure.
		q "SELECT job_engine.pause_queue('bench')" >/dev/null
		wait_for "SELECT NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE state = 'running')" 120
		log "drain cut short after ${limit}s: $D_DONE of $n jobs done"
	else
		[ "$D_DONE" = "$n" ] || die "drained $D_DONE of $n jobs"
	fi
	D_RATE="$(awk -v d="$D_DONE" -v s="$D_SECONDS" 'BEGIN { printf "%.1f", (s > 0 ? d / s : 0) }')"
	D_CPU="$(cpu_ms "$mark0" "$mark1" "$D_DONE")"
	D_MARK=""
	[ "$D_TIMEDOUT" = 0 ] || D_MARK="*"
}

# exec_anon: the largest private memory (RssAnon, kB) of the executors now.
exec_anon() {
	local pid m=0 kb
	for pid in $(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine executor'"); do
		kb="$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
		[ -z "$kb" ] || [ "$kb" -le "$m" ] || m="$kb"
	done
	echo "$m"
}

declare -A DRAIN DRAIN_MARK DRAIN_CPU CEIL CEIL_CPU SUBMIT SUBMIT_CPU

# ---- stages -----------------------------------------------------------------

# drain_cell HANDLER GROUP EXECUTORS: one drain of stage 1, for best_of.
drain_cell() {
	local h="$1" g="$2" w="$3" anon
	reset_jobs
	drain "$h" "$NJOBS" "$DRAIN_TIMEOUT"
	anon="$(exec_anon)"
	M_RATE="$D_RATE" M_OTHER="$D_OTHER" M_MARK="$D_MARK" M_CPU="$D_CPU"
	M_LOG="drain: $w executors, group_commit $g, $h handler: $(fmt0 "$D_RATE")$D_MARK jobs/s ($(printf %.2f "$D_SECONDS") s, $D_CPU CPU ms/job, other load $D_OTHER CPUs, executor RssAnon $anon kB)"
	M_JSON="{\"executors\": $w, \"group_commit\": $g, \"handler\": \"$h\", \"jobs\": $D_DONE, \"seconds\": $D_SECONDS, \"jobs_per_s\": $D_RATE, \"cpu_ms_per_job\": $D_CPU, \"cut_short\": $([ "$D_TIMEDOUT" = 1 ] && echo true || echo false), \"first_claim_to_last_finish_s\": $(num "$D_SPAN"), \"wall_s\": $D_WALL, \"executor_rssanon_max_kb\": $anon, \"other_cpus\": $D_OTHER, \"load\": \"$(loadavg)\"}"
}

stage_drain() {
	local w="$1" g h
	for g in $GROUPS_; do
		set_group "$g"
		for h in $HANDLERS; do
			best_of drain_cell "$h" "$g" "$w"
			DRAIN["$h/$g/$w"]="$M_RATE"
			DRAIN_CPU["$h/$g/$w"]="$M_CPU"
			DRAIN_MARK["$h/$g/$w"]="$M_MARK"
			log "$M_LOG"
			jadd drain "$M_JSON"
		done
	done
	set_group 1
}

# pgbench_rate OUTFILE: the tps pgbench reports.
pgbench_tps() { awk '/^tps = / { print $3; exit }' "$1"; }

# run_pgbench DB SCRIPT CLIENTS ARGS...: runs pgbench, leaves its output in $W_/pgbench.out.
run_pgbench() {
	local db="$1" script="$2" c="$3" j
	shift 3
	j=$((c < CPUS ? c : CPUS))
	"$BINDIR/pgbench" -n -M prepared -h "$SOCK" -p "$PORT" -U "$DBUSER" \
		-c "$c" -j "$j" -f "$script" "$@" "$db" >"$W_/pgbench.out" 2>&1 ||
		{ cat "$W_/pgbench.out"; die "pgbench failed ($script, $c clients)"; }
}

PLAIN_READY=0
setup_plain() {
	[ "$PLAIN_READY" = 0 ] || return 0
	PLAIN_READY=1
	q "CREATE DATABASE bench_plain"
	# The comparable plain table: job_engine._jobs' hot columns, its
	# fillfactor, its claim and running indexes.
	qp "CREATE TABLE q (
	        id bigserial PRIMARY KEY,
	        state text NOT NULL DEFAULT 'created',
	        priority integer NOT NULL DEFAULT 0,
	        payload jsonb NOT NULL,
	        result jsonb,
	        attempts integer NOT NULL DEFAULT 0,
	        run_at timestamptz NOT NULL DEFAULT now(),
	        created_at timestamptz NOT NULL DEFAULT now(),
	        started_at timestamptz,
	        finished_at timestamptz,
	        worker_pid integer
	    ) WITH (fillfactor = 80)"
	qp "CREATE INDEX q_claim_idx ON q (priority, run_at, id) WHERE state = 'created'"
	qp "CREATE INDEX q_running_idx ON q (worker_pid) WHERE state = 'running'"
	# The same table with the index set of job_engine._jobs (what a claim and
	# a completion of a plain job write into it): a correlation id in every
	# version, creation time by block range, and the finished history by
	# time, queue, state and owner.  Its rates against q's are what the
	# index set alone costs hand-written SQL.
	qp "CREATE TABLE qj (LIKE q INCLUDING DEFAULTS INCLUDING INDEXES) WITH (fillfactor = 80)"
	qp "ALTER TABLE qj ADD COLUMN correlation_id uuid NOT NULL DEFAULT gen_random_uuid(),
	                   ADD COLUMN queue text NOT NULL DEFAULT 'default',
	                   ADD COLUMN owner oid NOT NULL DEFAULT 10"
	qp "CREATE INDEX ON qj (correlation_id)"
	qp "CREATE INDEX ON qj USING brin (created_at)"
	qp "CREATE INDEX ON qj (finished_at) WHERE finished_at IS NOT NULL"
	qp "CREATE INDEX ON qj (queue) WHERE finished_at IS NOT NULL"
	qp "CREATE INDEX ON qj (state, id) WHERE state = 'done'"
	qp "CREATE INDEX ON qj (owner, state, id) WHERE state = 'done'"
	# job_engine here too, for the submit rates: this database is not in
	# job_engine.databases, so no executor runs or wakes up for it.
	qp "CREATE EXTENSION job_engine"
	qp "CREATE FUNCTION public.noop_sql(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
	qp "SELECT job_engine.register_handler('sql', 'public.noop_sql(jsonb)'::regprocedure)" >/dev/null

	local pick="SELECT id FROM q WHERE state = 'created' AND run_at <= now() ORDER BY priority, run_at, id"
	local run="state = 'running', attempts = attempts + 1, started_at = now(), worker_pid = :client_id"
	local fin="state = 'done', finished_at = now(), result = '{}', worker_pid = NULL"
	cat >"$W_/single_1commit.sql" <<EOF
BEGIN;
$pick LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE q SET $run WHERE id = :id;
UPDATE q SET $fin WHERE id = :id;
COMMIT;
EOF
	cat >"$W_/single_2commits.sql" <<EOF
BEGIN;
$pick LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE q SET $run WHERE id = :id;
COMMIT;
UPDATE q SET $fin WHERE id = :id;
EOF
	cat >"$W_/batch_1commit.sql" <<EOF
BEGIN;
UPDATE q SET $run WHERE id = ANY (ARRAY($pick LIMIT $BATCH FOR UPDATE SKIP LOCKED));
UPDATE q SET $fin WHERE state = 'running' AND worker_pid = :client_id;
COMMIT;
EOF
	cat >"$W_/batch_2commits.sql" <<EOF
BEGIN;
UPDATE q SET $run WHERE id = ANY (ARRAY($pick LIMIT $BATCH FOR UPDATE SKIP LOCKED));
COMMIT;
UPDATE q SET $fin WHERE state = 'running' AND worker_pid = :client_id;
EOF
	sed 's/\bq\b/qj/g' "$W_/single_2commits.sql" >"$W_/single_2commits_jobs.sql"
	sed 's/\bq\b/qj/g' "$W_/batch_2commits.sql" >"$W_/batch_2commits_jobs.sql"
	echo "SELECT job_engine.submit('sql');" >"$W_/submit.sql"
	echo "SELECT count(*) FROM job_engine.submit_many('sql', array_fill('{}'::jsonb, ARRAY[100]));" >"$W_/submit_many100.sql"
	echo "SELECT count(*) FROM job_engine.submit_many('sql', array_fill('{}'::jsonb, ARRAY[$NJOBS]));" >"$W_/submit_many_all.sql"
	echo "INSERT INTO q (payload) VALUES ('{}');" >"$W_/insert.sql"
}

# timed_pgbench DB SCRIPT CLIENTS ARGS...: run_pgbench, with M_OTHER set
# and the CPU marks around it in PG_MARK0 and PG_MARK1.
timed_pgbench() {
	local t0
	PG_MARK0="$(cpu_mark)"
	t0="$(now)"
	run_pgbench "$@"
	PG_MARK1="$(cpu_mark)"
	M_OTHER="$(other_cpus "$PG_MARK0" "$PG_MARK1" "$(calc "$(now) - $t0")")"
}

CEIL_VARIANTS="single_1commit single_2commits batch_1commit batch_2commits single_2commits_jobs batch_2commits_jobs"
# ceiling_cell VARIANT CLIENTS: one run of stage 2, for best_of.
ceiling_cell() {
	local v="$1" c="$2" per=1 t total tps completed table=q
	[[ "$v" == batch* ]] && per="$BATCH"
	[[ "$v" == *_jobs ]] && table=qj
	t=$(((CEIL_JOBS + per * c - 1) / (per * c)))
	total=$((t * per * c))
	qp "TRUNCATE $table"
	qp "INSERT INTO $table (payload) SELECT '{}' FROM generate_series(1, $((total + per * c)))"
	qp "ANALYZE $table"
	q "CHECKPOINT"
	timed_pgbench bench_plain "$W_/$v.sql" "$c" -t "$t"
	tps="$(pgbench_tps "$W_/pgbench.out")"
	completed="$(qp "SELECT count(*) FROM $table WHERE state = 'done'")"
	[ "$completed" = "$total" ] || die "ceiling $v with $c clients completed $completed of $total jobs"
	M_RATE="$(calc "$tps * $per")"
	M_CPU="$(cpu_ms "$PG_MARK0" "$PG_MARK1" "$total")"
	M_LOG="ceiling: $v, $c clients: $(fmt0 "$M_RATE") jobs/s ($M_CPU CPU ms/job, other load $M_OTHER CPUs)"
	M_JSON="{\"variant\": \"$v\", \"clients\": $c, \"jobs_per_transaction\": $per, \"jobs\": $total, \"jobs_per_s\": $M_RATE, \"cpu_ms_per_job\": $M_CPU, \"other_cpus\": $M_OTHER, \"load\": \"$(loadavg)\"}"
}

stage_ceiling() {
	local v c
	setup_plain
	for v in $CEIL_VARIANTS; do
		for c in $CLIENTS; do
			best_of ceiling_cell "$v" "$c"
			CEIL["$v/$c"]="$M_RATE"
			CEIL_CPU["$v/$c"]="$M_CPU"
			log "$M_LOG"
			jadd ceiling "$M_JSON"
		done
	done
	qp "TRUNCATE q, qj"
}

# submit_cell VARIANT CLIENTS: one run of stage 4, for best_of.
submit_cell() {
	local v="$1" c="$2" per=1 tps
	[ "$v" = submit_many100 ] && per=100
	qp "TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs, q"
	q "CHECKPOINT"
	timed_pgbench bench_plain "$W_/$v.sql" "$c" -T "$SUBMIT_S"
	tps="$(pgbench_tps "$W_/pgbench.out")"
	M_RATE="$(calc "$tps * $per")"
	M_CPU="$(cpu_ms "$PG_MARK0" "$PG_MARK1" "$(awk '/^number of transactions actually processed:/ { print $NF; exit }' "$W_/pgbench.out" | cut -d/ -f1 | awk -v p="$per" '{ print $1 * p }')")"
	M_LOG="submit: $v, $c clients: $(fmt0 "$M_RATE") jobs/s ($M_CPU CPU ms/job, other load $M_OTHER CPUs)"
	M_JSON="{\"variant\": \"$v\", \"clients\": $c, \"jobs_per_call\": $per, \"seconds\": $SUBMIT_S, \"jobs_per_s\": $M_RATE, \"cpu_ms_per_job\": $M_CPU, \"other_cpus\": $M_OTHER, \"load\": \"$(loadavg)\"}"
}

stage_submit() {
	local v c tps
	setup_plain
	for v in submit submit_many100 insert; do
		for c in $CLIENTS; do
			best_of submit_cell "$v" "$c"
			SUBMIT["$v/$c"]="$M_RATE"
			SUBMIT_CPU["$v/$c"]="$M_CPU"
			log "$M_LOG"
			jadd submit "$M_JSON"
		done
	done
	qp "TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs"
	q "CHECKPOINT"
	run_pgbench bench_plain "$W_/submit_many_all.sql" 1 -t 3
	tps="$(pgbench_tps "$W_/pgbench.out")"
	SUBMIT_MANY_ALL="$(calc "$tps * $NJOBS")"
	log "submit: submit_many of $NJOBS jobs in one call: $(fmt0 "$SUBMIT_MANY_ALL") jobs/s"
	jadd submit "{\"variant\": \"submit_many_all\", \"clients\": 1, \"jobs_per_call\": $NJOBS, \"calls\": 3, \"jobs_per_s\": $SUBMIT_MANY_ALL, \"load\": \"$(loadavg)\"}"
	qp "TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs, q"
}

stage_latency() {
	local out="$W_/rtt.out" first last row
	set_group 1
	reset_jobs
	log "latency: $NRTT round trips, one job at a time, 5 ms apart"
	local mark0 t0
	# Commit timestamps, for submit commit -> start; only for this stage.
	q "ALTER SYSTEM SET track_commit_timestamp = on"
	restart_cluster
	mark0="$(cpu_mark)"
	t0="$(now)"
	"$TMP/notify_rtt" -n "$NRTT" -w 20 -p 5 -h sql -o "$W_/rtt.samples" "$CONN dbname=postgres" >"$out" ||
		die "notify_rtt failed: $(cat "$out")"
	LAT_OTHER="$(other_cpus "$mark0" "$(cpu_mark)" "$(calc "$(now) - $t0")")"
	rtt() { awk -v k="$1" '$1 == k { print $2 }' "$out"; }
	first="$(rtt first_job_id)"
	last="$(rtt last_job_id)"
	q "COPY (SELECT j.id, extract(epoch FROM a.started_at - j.created_at) * 1000
	           FROM job_engine._jobs j JOIN job_engine._attempts a ON a.job_id = j.id AND a.attempt = 1
	          WHERE j.id BETWEEN $first AND $last ORDER BY 2) TO STDOUT" >"$W_/start.samples"
	row="$(q "SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	                 round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	                 round(max(ms)::numeric, 3), count(*)
	            FROM (SELECT extract(epoch FROM a.started_at - j.created_at) * 1000 AS ms
	                    FROM job_engine._jobs j
	                    JOIN job_engine._attempts a ON a.job_id = j.id AND a.attempt = 1
	                   WHERE j.id BETWEEN $first AND $last) s")"
	IFS='|' read -r LAT_P50 LAT_P99 LAT_MAX LAT_N <<<"$row"
	# From the commit of the submitting transaction (its xid is the last
	# column of rtt.samples) to the attempt's start.
	q "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_rtt; CREATE TABLE bench_rtt (job_id bigint, rtt_ms float8, submit_ms float8, xid xid8)"
	psqld postgres -c "\\copy bench_rtt FROM '$W_/rtt.samples' WITH (DELIMITER ' ')" >/dev/null
	row="$(q "SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	                 round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	                 round(max(ms)::numeric, 3)
	            FROM (SELECT extract(epoch FROM a.started_at - pg_xact_commit_timestamp(r.xid::text::xid)) * 1000 AS ms
	                    FROM bench_rtt r
	                    JOIN job_engine._attempts a ON a.job_id = r.job_id AND a.attempt = 1) s")"
	IFS='|' read -r COMMIT_P50 COMMIT_P99 COMMIT_MAX <<<"$row"
	q "DROP TABLE bench_rtt"
	q "ALTER SYSTEM RESET track_commit_timestamp"
	restart_cluster
	RTT_P50="$(rtt p50_ms)" RTT_P99="$(rtt p99_ms)" RTT_MAX="$(rtt max_ms)" RTT_N="$(rtt n)"
	RTT_LOST="$(rtt lost)" SUB_P50="$(rtt submit_p50_ms)" SUB_P99="$(rtt submit_p99_ms)"
	[ "$RTT_LOST" = 0 ] || die "$RTT_LOST notifications were lost"
	log "latency: commit -> start p50 $COMMIT_P50 ms p99 $COMMIT_P99 ms; created -> start p50 $LAT_P50 ms p99 $LAT_P99 ms; round trip p50 $RTT_P50 ms p99 $RTT_P99 ms (other load $LAT_OTHER CPUs)"
}

# Dead tuples and size of job_engine._jobs: "n_dead_tup|actual dead|table
# bytes|claim index bytes|autovacuums".
table_state() {
	q "SELECT (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'job_engine._jobs'::regclass),
	          (SELECT dead_tuple_count FROM pgstattuple('job_engine._jobs')),
	          pg_total_relation_size('job_engine._jobs'),
	          pg_relation_size('job_engine.jobs_claim_idx'),
	          (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'job_engine._jobs'::regclass)"
}

stage_retained() {
	local row
	set_group 1
	reset_jobs
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	RET_EMPTY="$D_RATE" RET_EMPTY_OTHER="$D_OTHER"
	log "retained: empty table: $(fmt0 "$RET_EMPTY") jobs/s (other load $D_OTHER CPUs)"
	reset_jobs
	log "retained: loading $RETAINED succeeded jobs (and their attempts)"
	# Terminal rows cannot be inserted through the lifecycle guard; this is
	# a throwaway cluster, so switch it off for the load.
	q "ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_lifecycle_guard;
	   INSERT INTO job_engine._jobs (handler, queue, state, args, result, attempts, max_attempts,
	          run_at, created_at, started_at, finished_at, state_changed_at, owner, correlation_id)
	   SELECT 'sql', 'bench', 'succeeded', '{}', '{}', 1, 3, t, t, t, t + interval '2 ms',
	          t + interval '2 ms', 10, gen_random_uuid()
	     FROM (SELECT now() - interval '1 day' + i * interval '10 ms' AS t
	             FROM generate_series(1, $RETAINED) i) s;
	   ALTER TABLE job_engine._jobs ENABLE TRIGGER jobs_lifecycle_guard;
	   INSERT INTO job_engine._attempts (job_id, attempt, outcome, started_at, finished_at, worker_pid)
	   SELECT id, 1, 'succeeded', started_at, finished_at, 0 FROM job_engine._jobs"
	q "VACUUM ANALYZE job_engine._jobs"
	q "VACUUM ANALYZE job_engine._attempts"
	RET_SIZE="$(q "SELECT pg_total_relation_size('job_engine._jobs') + pg_total_relation_size('job_engine._attempts')")"
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	RET_FULL="$D_RATE"
	log "retained: $RETAINED terminal jobs: $(fmt0 "$RET_FULL") jobs/s (other load $D_OTHER CPUs)"
	jadd retained "{\"retained\": 0, \"jobs\": $NJOBS, \"jobs_per_s\": $RET_EMPTY, \"other_cpus\": $RET_EMPTY_OTHER}"
	jadd retained "{\"retained\": $RETAINED, \"jobs\": $NJOBS, \"jobs_per_s\": $RET_FULL, \"other_cpus\": $D_OTHER, \"jobs_and_attempts_bytes\": $RET_SIZE}"
	reset_jobs
}

stage_snapshot() {
	set_group 1
	reset_jobs
	# A clean baseline on the empty table, then the same drain with an old
	# snapshot held, then once more after it is released.
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	SNAP_BASE="$D_RATE" SNAP_BASE_S="$D_SECONDS" SB_OTHER="$D_OTHER"
	IFS='|' read -r SB_STAT SB_DEAD SB_SIZE SB_IDX SB_AV <<<"$(table_state)"
	log "snapshot: baseline $(fmt0 "$SNAP_BASE") jobs/s (other load $D_OTHER CPUs)"
	reset_jobs

	hold_snapshot je_bench_snapshot
	drain sql "$NJOBS" "$SNAP_TIMEOUT"
	SNAP_HELD="$D_RATE" SNAP_HELD_DONE="$D_DONE" SNAP_HELD_TIMEDOUT="$D_TIMEDOUT" SNAP_HELD_S="$D_SECONDS" SH_OTHER="$D_OTHER"
	IFS='|' read -r SH_STAT SH_DEAD SH_SIZE SH_IDX SH_AV <<<"$(table_state)"
	log "snapshot: held: $(fmt0 "$SNAP_HELD") jobs/s ($SNAP_HELD_DONE jobs in $(printf %.2f "$SNAP_HELD_S") s, other load $D_OTHER CPUs), dead tuples $SH_DEAD (n_dead_tup $SH_STAT)"

	hold_close je_bench_snapshot
	# Jobs a timed-out drain left behind run now, then the next drain.
	wait_for "SELECT NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE state IN ('created', 'retrying', 'running'))" "$DRAIN_TIMEOUT"
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	SNAP_AFTER="$D_RATE" SNAP_AFTER_S="$D_SECONDS" SA_OTHER="$D_OTHER"
	IFS='|' read -r SA_STAT SA_DEAD SA_SIZE SA_IDX SA_AV <<<"$(table_state)"
	log "snapshot: released: $(fmt0 "$SNAP_AFTER") jobs/s (other load $D_OTHER CPUs), dead tuples $SA_DEAD (n_dead_tup $SA_STAT)"
	snapjson() {
		printf '{"phase": "%s", "jobs": %s, "seconds": %s, "jobs_per_s": %s, "cut_short": %s, "n_dead_tup": %s, "dead_tuples_pgstattuple": %s, "table_bytes": %s, "claim_index_bytes": %s, "autovacuum_count": %s, "other_cpus": %s}' \
			"$1" "$2" "$3" "$4" "$5" "$(num "$6")" "$(num "$7")" "$(num "$8")" "$(num "$9")" "$(num "${10}")" "${11}"
	}
	jadd snapshot "$(snapjson baseline "$NJOBS" "$SNAP_BASE_S" "$SNAP_BASE" false "$SB_STAT" "$SB_DEAD" "$SB_SIZE" "$SB_IDX" "$SB_AV" "$SB_OTHER")"
	jadd snapshot "$(snapjson held "$SNAP_HELD_DONE" "$SNAP_HELD_S" "$SNAP_HELD" "$([ "$SNAP_HELD_TIMEDOUT" = 1 ] && echo true || echo false)" "$SH_STAT" "$SH_DEAD" "$SH_SIZE" "$SH_IDX" "$SH_AV" "$SH_OTHER")"
	jadd snapshot "$(snapjson released "$NJOBS" "$SNAP_AFTER_S" "$SNAP_AFTER" false "$SA_STAT" "$SA_DEAD" "$SA_SIZE" "$SA_IDX" "$SA_AV" "$SA_OTHER")"
	reset_jobs
}

# rss_sampler T0 PIDS...: every second, "elapsed pid VmRSS RssAnon RssShmem" (kB).
rss_sampler() {
	local t0="$1" pid
	shift
	while :; do
		for pid in "$@"; do
			[ -r "/proc/$pid/status" ] || continue
			awk -v t="$(calc "$(now) - $t0")" -v pid="$pid" '
				/^VmRSS:/ { rss = $2 } /^RssAnon:/ { anon = $2 } /^RssShmem:/ { shm = $2 }
				END { printf "%.1f %s %s %s %s\n", t, pid, rss, anon, shm }' "/proc/$pid/status"
		done
		sleep 1
	done
}

stage_rss() {
	local pids rss_pid
	set_group "$RSS_GROUP"
	reset_jobs
	pids="$(q "SELECT string_agg(pid::text, ' ') FROM job_engine.workers")"
	[ -n "$pids" ] || die "no executor pids in job_engine.workers"
	log "rss: draining $RSS_JOBS jobs (group_commit $RSS_GROUP), sampling executors $pids"
	rss_sampler "$(now)" $pids >"$W_/rss.samples" &
	rss_pid=$!
	bench_bg "$rss_pid"
	drain sql "$RSS_JOBS" "$DRAIN_TIMEOUT"
	sleep 1
	kill "$rss_pid" 2>/dev/null || true
	wait "$rss_pid" 2>/dev/null || true
	bench_unbg "$rss_pid"
	RSS_RATE="$D_RATE" RSS_S="$D_SECONDS" RSS_OTHER="$D_OTHER"
	# Per executor: VmRSS min/max, RssAnon at its first and last sample, max.
	awk '{ n[$2]++; if (!($2 in mn) || $3 < mn[$2]) mn[$2] = $3; if ($3 > mx[$2]) mx[$2] = $3
	       if (!($2 in a0)) a0[$2] = $4; a1[$2] = $4; if ($4 > amx[$2]) amx[$2] = $4; s1[$2] = $5 }
	     END { for (p in n) print p, n[p], mn[p], mx[p], a0[p], a1[p], amx[p], s1[p] }' \
		"$W_/rss.samples" | sort -n >"$W_/rss.summary"
	RSS_VMIN="$(awk 'NR == 1 || $3 < m { m = $3 } END { print m }' "$W_/rss.summary")"
	RSS_VMAX="$(awk '$4 > m { m = $4 } END { print m + 0 }' "$W_/rss.summary")"
	RSS_GROWTH="$(awk '{ g = $6 - $5; if (NR == 1 || g > m) m = g } END { print m }' "$W_/rss.summary")"
	RSS_ANON_MAX="$(awk '$7 > m { m = $7 } END { print m + 0 }' "$W_/rss.summary")"
	# Flat: no executor's private memory grew by more than 1 MB over the drain.
	if [ "$RSS_GROWTH" -le 1024 ]; then RSS_FLAT=true; else RSS_FLAT=false; fi
	while read -r p ns vmin vmax a0 a1 amx s1; do
		jadd rss "{\"pid\": $p, \"samples\": $ns, \"vmrss_min_kb\": $vmin, \"vmrss_max_kb\": $vmax, \"rssanon_first_kb\": $a0, \"rssanon_last_kb\": $a1, \"rssanon_max_kb\": $amx, \"rssshmem_last_kb\": $s1}"
	done <"$W_/rss.summary"
	log "rss: VmRSS $RSS_VMIN..$RSS_VMAX kB, RssAnon growth $RSS_GROWTH kB, flat: $RSS_FLAT"
	set_group 1
	reset_jobs
}

# Jobs not yet due (docs/architecture.md section 3, "Jobs not yet due"):
# the same drain on an empty table, then with DEFERRED jobs due in a year
# waiting in DEFERRED_QUEUES other queues, ahead of the drained ones by
# priority.  While they sat in jobs_claim_idx every claim passed over them
# (drains about 30 times slower); deferred, they should cost it nothing.
stage_deferred() {
	set_group 1
	reset_jobs
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	DEF_EMPTY="$D_RATE" DEF_EMPTY_S="$D_SECONDS" DEF_EMPTY_OTHER="$D_OTHER" DEF_EMPTY_MARK="$D_MARK"
	log "deferred: empty table: $(fmt0 "$DEF_EMPTY")$D_MARK jobs/s (other load $D_OTHER CPUs)"
	# Only the parked jobs differ from the baseline: no finished rows left.
	reset_jobs
	log "deferred: submitting $DEFERRED jobs due in a year over $DEFERRED_QUEUES queues"
	# Round robin (job i into queue i mod N), one submit_many per queue;
	# priority -1 sorts them ahead of the drain's jobs (priority 0).
	q "SELECT count(*) FROM (SELECT i % $DEFERRED_QUEUES AS g, array_agg('{}'::jsonb) AS a
	                           FROM generate_series(0, $((DEFERRED - 1))) i GROUP BY 1) s,
	          LATERAL job_engine.submit_many('sql', s.a, queue => 'deferred_' || s.g, priority => -1,
	                                         run_at => now() + interval '1 year')" >/dev/null
	q "VACUUM ANALYZE job_engine._jobs"
	drain sql "$NJOBS" "$DRAIN_TIMEOUT"
	DEF_FULL="$D_RATE" DEF_FULL_MARK="$D_MARK"
	# Sanity: the parked jobs are deferred (out of jobs_claim_idx), still after the drain.
	DEF_BLOCKED="$(q "SELECT count(*) FROM job_engine._jobs WHERE blocked = 't'")"
	DEF_RATIO="$(awk -v a="$DEF_EMPTY" -v b="$DEF_FULL" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
	log "deferred: $DEFERRED jobs not yet due: $(fmt0 "$DEF_FULL")$D_MARK jobs/s, slowdown ${DEF_RATIO}x (other load $D_OTHER CPUs), $DEF_BLOCKED deferred"
	jadd deferred "{\"deferred\": 0, \"jobs\": $NJOBS, \"seconds\": $DEF_EMPTY_S, \"jobs_per_s\": $DEF_EMPTY, \"cut_short\": $([ -z "$DEF_EMPTY_MARK" ] && echo false || echo true), \"other_cpus\": $DEF_EMPTY_OTHER}"
	jadd deferred "{\"deferred\": $DEFERRED, \"queues\": $DEFERRED_QUEUES, \"jobs\": $D_DONE, \"seconds\": $D_SECONDS, \"jobs_per_s\": $DEF_FULL, \"cut_short\": $([ -z "$DEF_FULL_MARK" ] && echo false || echo true), \"blocked_t\": $DEF_BLOCKED, \"slowdown\": $DEF_RATIO, \"other_cpus\": $D_OTHER}"
	reset_jobs
	# Their queues were created by the submits; later stages start without them.
	q "DELETE FROM job_engine.queues WHERE name LIKE 'deferred\_%'"
}

# bench/compare.sh sources this file for the build, the cluster and the
# drain above; it runs its own measurements.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

# ---- run --------------------------------------------------------------------

for w in $all_w; do
	set_workers "$w"
	[ "$w" != "$WORKERS" ] || FRESH_ANON="$(exec_anon)"
	if stage drain && printf '%s\n' $EXECUTORS | grep -qx "$w"; then stage_drain "$w"; fi
	if [ "$w" = "$WORKERS" ]; then
		if stage latency; then stage_latency; fi
		if stage ceiling; then stage_ceiling; fi
		if stage submit; then stage_submit; fi
		if stage retained; then stage_retained; fi
		if stage snapshot; then stage_snapshot; fi
		if stage rss; then stage_rss; fi
		if stage deferred; then stage_deferred; fi
	fi
done
LOAD_END="$(loadavg)"
# Other processes' CPU over the kept measurements: mean and max.
# (Stages that keep no JSON lines, such as latency alone, leave none.)
OTHER_SUMMARY="$({ cat "$W_"/*.jsonl 2>/dev/null || true; } | { grep -o '"other_cpus": [0-9.]*' || true; } |
	awk '{ s += $2; n++; if ($2 > m) m = $2 } END { if (n) printf "%.2f %.2f", s / n, m }')"
[ -n "$OTHER_SUMMARY" ] || OTHER_SUMMARY="- -"
# Anything unexpected in the server log (restarts for max_workers aside).
LOG_PROBLEMS="$(server_log_problems 1)"
if [ "$LOG_PROBLEMS" -gt 0 ]; then
	mkdir -p "$OUT_DIR"
	cp "$JE_SERVER_LOG" "$OUT_DIR/$STAMP.server.log"
fi
TOTAL_S="$SECONDS"

# ---- report -----------------------------------------------------------------

mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/$STAMP.txt"
{
	printf 'job_engine benchmark %s  (checkout %s)\n' "$STAMP" "$COMMIT"
	printf 'machine: %s CPUs (%s), %s MB RAM, load average %s at start, %s at end\n' \
		"$CPUS" "${CPU_MODEL:-?}" "$MEM_MB" "$LOAD_START" "$LOAD_END"
	printf 'PostgreSQL %s; fsync on, synchronous_commit on, shared_buffers %s, job_engine.notify %s; fdatasync %s ops/s (pg_test_fsync)\n' \
		"$PG_VERSION" "$SHARED_BUFFERS" "$NOTIFY" "${FSYNC_OPS:-not measured}"
	printf 'other processes used %s CPUs on average during the measurements (at most %s)\n' $OTHER_SUMMARY
	printf 'run took %d s; server log: %s errors or warnings%s\n' "$TOTAL_S" "$LOG_PROBLEMS" \
		"$([ "$LOG_PROBLEMS" = 0 ] || echo " (kept as ${OUT_DIR#"$ROOT"/}/$STAMP.server.log)")"

	# fmt3 N: three decimals, "-" when empty.
	fmt3() { if [ -z "${1:-}" ]; then printf -- -; else printf '%.3f' "$1"; fi; }
	if stage drain; then
		printf '\n1. drain of %s no-op jobs, jobs/s (resume of the queue to the last finish)\n' "$NJOBS"
		drain_rows() {
			local -n vals="$1"
			local fmt="$2" h g w
			printf '   %-9s %-13s' handler group_commit
			for w in $EXECUTORS; do printf ' %9s' "$w exec"; done
			printf '\n'
			for h in $HANDLERS; do
				for g in $GROUPS_; do
					printf '   %-9s %-13s' "$h" "$g$([ "$g" = 1 ] && echo ' (strict)')"
					for w in $EXECUTORS; do
						printf ' %9s' "$("$fmt" "${vals[$h/$g/$w]:-}")$([ "$fmt" = fmt3 ] || echo "${DRAIN_MARK[$h/$g/$w]:-}")"
					done
					printf '\n'
				done
			done
		}
		drain_rows DRAIN fmt0
		if [[ "${DRAIN_MARK[*]}" == *"*"* ]]; then
			printf '   * cut short after %s s: the rate of the jobs done by then\n' "$DRAIN_TIMEOUT"
		fi
		printf '   CPU time per job, ms (all processes of the cluster, and the poller):\n'
		drain_rows DRAIN_CPU fmt3
	fi
	# client_rows ARRAY FORMAT VARIANT=LABEL...: one row per variant, one column per client count.
	client_rows() {
		local -n vals="$1"
		local fmt="$2" vl c
		shift 2
		printf '   %-38s' variant
		for c in $CLIENTS; do printf ' %9s' "$c cl"; done
		printf '\n'
		for vl in "$@"; do
			printf '   %-38s' "${vl#*=}"
			for c in $CLIENTS; do printf ' %9s' "$("$fmt" "${vals[${vl%%=*}/$c]:-}")"; done
			printf '\n'
		done
	}
	if stage ceiling; then
		printf '\n2. ideal SQL on a plain table (pgbench, %s jobs per run), jobs/s\n' "$CEIL_JOBS"
		ceil_labels=("single_1commit=1 job: claim+complete, 1 commit"
			"single_2commits=1 job: claim commit, complete commit"
			"batch_1commit=$BATCH jobs/stmt: claim+complete, 1 commit"
			"batch_2commits=$BATCH jobs/stmt: 2 commits"
			"single_2commits_jobs=1 job, 2 commits, _jobs' indexes"
			"batch_2commits_jobs=$BATCH jobs/stmt, 2 commits, _jobs' indexes")
		client_rows CEIL fmt0 "${ceil_labels[@]}"
		printf '   CPU time per job, ms (all processes of the cluster, and pgbench):\n'
		client_rows CEIL_CPU fmt3 "${ceil_labels[@]}"
	fi
	if stage latency; then
		printf '\n3. latency, one job at a time into idle executors (%s jobs, %s executors), ms\n' "$NRTT" "$WORKERS"
		printf '   %-44s %9s %9s %9s\n' "" p50 p99 max
		printf '   %-44s %9.3f %9.3f %9.3f\n' "submit commit -> attempt started_at" "$COMMIT_P50" "$COMMIT_P99" "$COMMIT_MAX"
		printf '   %-44s %9.3f %9.3f %9.3f\n' "created_at -> attempt started_at" "$LAT_P50" "$LAT_P99" "$LAT_MAX"
		printf '   %-44s %9.3f %9.3f %9s\n' "client: submit call (submit + commit)" "$SUB_P50" "$SUB_P99" ""
		printf '   %-44s %9.3f %9.3f %9.3f\n' "client: submit -> 'succeeded' notification" "$RTT_P50" "$RTT_P99" "$RTT_MAX"
	fi
	if stage submit; then
		printf '\n4. submit rates (database without executors), jobs/s\n'
		submit_labels=("submit=job_engine.submit, 1 job/call"
			"submit_many100=job_engine.submit_many, 100 jobs/call"
			"insert=ceiling: plain INSERT of 1 row")
		client_rows SUBMIT fmt0 "${submit_labels[@]}"
		printf '   %-38s %9s\n' "submit_many, $NJOBS jobs in one call" "$(fmt0 "$SUBMIT_MANY_ALL")"
		printf '   CPU time per job, ms (all processes of the cluster, and pgbench):\n'
		client_rows SUBMIT_CPU fmt3 "${submit_labels[@]}"
	fi
	if stage retained; then
		printf '\n5. drain of %s jobs (%s executors, strict), jobs/s\n' "$NJOBS" "$WORKERS"
		printf '   %-44s %9s\n' "empty table" "$(fmt0 "$RET_EMPTY")"
		printf '   %-44s %9s   (_jobs + _attempts: %s MB)\n' "$RETAINED terminal jobs retained" "$(fmt0 "$RET_FULL")" "$((RET_SIZE / 1048576))"
	fi
	if stage snapshot; then
		printf '\n6. drain of %s jobs (%s executors, strict) and an old snapshot\n' "$NJOBS" "$WORKERS"
		printf '   %-30s %9s %10s %11s %10s %12s %11s\n' "" "jobs/s" "n_dead_tup" "dead tuples" "table MB" "claim idx MB" autovacuums
		srow() { printf '   %-30s %9s %10s %11s %10s %12s %11s\n' "$1" "$(fmt0 "$2")" "$3" "$4" \
			"$(awk -v b="$5" 'BEGIN { printf "%.1f", b / 1048576 }')" "$(awk -v b="$6" 'BEGIN { printf "%.2f", b / 1048576 }')" "$7"; }
		srow "no snapshot (baseline)" "$SNAP_BASE" "$SB_STAT" "$SB_DEAD" "$SB_SIZE" "$SB_IDX" "$SB_AV"
		srow "snapshot held$([ "$SNAP_HELD_TIMEDOUT" = 1 ] && echo " ($SNAP_HELD_DONE done*)")" "$SNAP_HELD" "$SH_STAT" "$SH_DEAD" "$SH_SIZE" "$SH_IDX" "$SH_AV"
		srow "after release (next drain)" "$SNAP_AFTER" "$SA_STAT" "$SA_DEAD" "$SA_SIZE" "$SA_IDX" "$SA_AV"
		printf '   (each row: state right after that drain.  n_dead_tup and autovacuums: pg_stat_user_tables;\n'
		printf '   dead tuples: pgstattuple, counted in the table.  Sizes: _jobs with its indexes; jobs_claim_idx)\n'
		[ "$SNAP_HELD_TIMEDOUT" = 0 ] || printf '   * cut short after %s s: the rate of the jobs done by then\n' "$SNAP_TIMEOUT"
	fi
	if stage rss; then
		printf '\n7. executor memory over a drain of %s jobs (group_commit %s, %s jobs/s, %s s)\n' \
			"$RSS_JOBS" "$RSS_GROUP" "$(fmt0 "$RSS_RATE")" "$(printf %.0f "$RSS_S")"
		printf '   %-8s %8s %13s %13s %15s %15s\n' pid samples "VmRSS min kB" "VmRSS max kB" "RssAnon 1st kB" "RssAnon last kB"
		while read -r p ns vmin vmax a0 a1 _ _; do
			printf '   %-8s %8s %13s %13s %15s %15s\n' "$p" "$ns" "$vmin" "$vmax" "$a0" "$a1"
		done <"$W_/rss.summary"
		printf '   private memory (RssAnon) flat over this drain: %s (largest growth %s kB; VmRSS also counts\n' \
			"$RSS_FLAT" "$RSS_GROWTH"
		printf '   the shared buffers a process has touched).  RssAnon right after the executors started: %s kB\n' "$FRESH_ANON"
	fi
	if stage deferred; then
		printf '\n8. drain of %s jobs (%s executors, strict) and jobs not yet due, jobs/s\n' "$NJOBS" "$WORKERS"
		printf '   %-52s %9s\n' "empty table" "$(fmt0 "$DEF_EMPTY")$DEF_EMPTY_MARK"
		printf '   %-52s %9s   (still deferred: %s)\n' "$DEFERRED due in a year, $DEFERRED_QUEUES queues, priority -1" \
			"$(fmt0 "$DEF_FULL")$DEF_FULL_MARK" "$DEF_BLOCKED"
		printf '   %-52s %9s\n' "slowdown (empty table / with them)" "${DEF_RATIO}x"
		[ -z "$DEF_EMPTY_MARK$DEF_FULL_MARK" ] || printf '   * cut short after %s s: the rate of the jobs done by then\n' "$DRAIN_TIMEOUT"
	fi
} >"$REPORT"

OUT_JSON="$OUT_DIR/$STAMP.json"
{
	printf '{\n'
	printf '  "timestamp": "%s",\n  "checkout": "%s",\n' "$STAMP" "$COMMIT"
	printf '  "machine": {"cpus": %s, "cpu_model": %s, "memory_mb": %s, "load_start": "%s", "load_end": "%s", "fdatasync_ops_per_s": %s, "other_cpus_mean": %s, "other_cpus_max": %s},\n' \
		"$CPUS" "$(json_str "${CPU_MODEL:-}")" "$MEM_MB" "$LOAD_START" "$LOAD_END" "$(num "$FSYNC_OPS")" \
		"$(num "${OTHER_SUMMARY% *}" | sed 's/^-$/null/')" "$(num "${OTHER_SUMMARY#* }" | sed 's/^-$/null/')"
	printf '  "postgresql": %s,\n' "$(json_str "$PG_VERSION")"
	printf '  "settings": {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "%s", "job_engine.notify": "%s", "install": "%s", "jobs": %s, "workers": %s, "stages": "%s"},\n' \
		"$SHARED_BUFFERS" "$NOTIFY" "$INSTALL" "$NJOBS" "$WORKERS" "$STAGES"
	printf '  "run_seconds": %s,\n  "server_log_problems": %s,\n' "$TOTAL_S" "$LOG_PROBLEMS"
	printf '  "drain": %s,\n' "$(jarray drain)"
	printf '  "ceiling": %s,\n' "$(jarray ceiling)"
	if stage latency; then
		printf '  "latency_ms": {"jobs": %s, "executors": %s, "commit_to_start": {"p50": %s, "p99": %s, "max": %s}, "created_to_start": {"p50": %s, "p99": %s, "max": %s},\n' \
			"$LAT_N" "$WORKERS" "$COMMIT_P50" "$COMMIT_P99" "$COMMIT_MAX" "$LAT_P50" "$LAT_P99" "$LAT_MAX"
		printf '                 "submit_call": {"p50": %s, "p99": %s},\n' "$SUB_P50" "$SUB_P99"
		printf '                 "notify_round_trip": {"p50": %s, "p99": %s, "max": %s, "lost": %s}, "other_cpus": %s},\n' \
			"$RTT_P50" "$RTT_P99" "$RTT_MAX" "$RTT_LOST" "$LAT_OTHER"
	else
		printf '  "latency_ms": null,\n'
	fi
	printf '  "submit": %s,\n' "$(jarray submit)"
	printf '  "retained": %s,\n' "$(jarray retained)"
	printf '  "snapshot": %s,\n' "$(jarray snapshot)"
	printf '  "deferred": %s,\n' "$(jarray deferred)"
	if stage rss; then
		printf '  "rss": {"jobs": %s, "group_commit": %s, "jobs_per_s": %s, "seconds": %s, "flat": %s, "rssanon_growth_kb": %s, "rssanon_max_kb": %s, "rssanon_after_start_kb": %s, "other_cpus": %s, "executors": %s}\n' \
			"$RSS_JOBS" "$RSS_GROUP" "$RSS_RATE" "$RSS_S" "$RSS_FLAT" "$RSS_GROWTH" "$RSS_ANON_MAX" "$FRESH_ANON" "$RSS_OTHER" "$(jarray rss)"
	else
		printf '  "rss": null\n'
	fi
	printf '}\n'
} >"$OUT_JSON"
if command -v jq >/dev/null 2>&1; then jq . "$OUT_JSON" >/dev/null || die "invalid JSON in $OUT_JSON"; fi

# ---- plot -------------------------------------------------------------------

plot() {
	local gp="$W_/plot.gp" img="$OUT_DIR/$STAMP.$PLOT_FORMAT" panels=0 rows
	if ! command -v gnuplot >/dev/null 2>&1; then
		if je_is_root && command -v apt-get >/dev/null 2>&1; then
			log "installing gnuplot-nox"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox \
				>"$TMP/log/apt.log" 2>&1 ||
				{ DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$TMP/log/apt.log" 2>&1 &&
					DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox \
						>>"$TMP/log/apt.log" 2>&1; } || true
		fi
		command -v gnuplot >/dev/null 2>&1 || {
			PLOT_NOTE="no plot: gnuplot is not installed (apt-get install gnuplot-nox)"
			return 0
		}
	fi
	# Data: one row per executor/client count, one column per series.
	{
		printf 'n'
		stage drain && for h in $HANDLERS; do for g in $GROUPS_; do printf ' "%s g%s"' "$h" "$g"; done; done
		stage ceiling && printf ' "SQL 1 job 1 commit" "SQL 1 job 2 commits" "SQL %s/stmt 1 commit" "SQL %s/stmt 2 commits" "SQL 1 job 2 commits, _jobs idx" "SQL %s/stmt 2 commits, _jobs idx"' "$BATCH" "$BATCH" "$BATCH"
		printf '\n'
		for n in $( (printf '%s\n' $EXECUTORS $CLIENTS) | sort -n | uniq); do
			printf '%s' "$n"
			stage drain && for h in $HANDLERS; do for g in $GROUPS_; do printf ' %s' "${DRAIN[$h/$g/$n]:-NaN}"; done; done
			stage ceiling && for v in $CEIL_VARIANTS; do printf ' %s' "${CEIL[$v/$n]:-NaN}"; done
			printf '\n'
		done
	} >"$W_/throughput.dat"
	{
		printf 'n "submit" "submit_many 100/call" "plain INSERT"\n'
		for c in $CLIENTS; do
			printf '%s %s %s %s\n' "$c" "${SUBMIT[submit/$c]:-NaN}" "${SUBMIT[submit_many100/$c]:-NaN}" "${SUBMIT[insert/$c]:-NaN}"
		done
	} >"$W_/submit.dat"
	# Columns: n, the engine's series, then the SQL ceilings.
	local ncol neng=0
	ncol="$(awk 'NR == 2 { print NF; exit }' "$W_/throughput.dat")"
	stage drain && neng=$(($(echo $HANDLERS | wc -w) * $(echo $GROUPS_ | wc -w)))
	panels=$((${ncol:-1} > 1 ? 1 : 0))
	stage submit && panels=$((panels + 1))
	stage latency && panels=$((panels + 1))
	stage rss && panels=$((panels + 1))
	[ "$panels" -gt 0 ] || { PLOT_NOTE="no plot: nothing to draw"; return 0; }
	rows=$(((panels + 1) / 2))
	{
		if [ "$PLOT_FORMAT" = svg ]; then
			printf 'set terminal svg size 1400,%d dynamic noenhanced font "sans,12"\n' $((rows * 520))
		else
			printf 'set terminal pngcairo size 1400,%d noenhanced font "sans,10"\n' $((rows * 520))
		fi
		printf 'set output "%s"\n' "$img"
		printf 'set multiplot layout %d,%d title "job_engine %s (%s, %s CPUs, PostgreSQL %s, fsync on)"\n' \
			"$rows" $((panels > 1 ? 2 : 1)) "$STAMP" "$COMMIT" "$CPUS" "$PG_VERSION"
		printf 'set grid\nset key below font ",9"\nset datafile missing "NaN"\n'
		if [ "${ncol:-1}" -gt 1 ]; then
			printf 'set title "1-2. jobs/s by executors: engine (solid); by clients: ideal SQL (dashed)"\n'
			printf 'unset xlabel\nset ylabel "jobs/s"\nset logscale xy 2\n'
			printf 'set xtics (1, 2, 4, 8, 16, 32, 64)\n'
			printf 'plot '
			[ "$neng" -eq 0 ] || printf 'for [i=2:%s] "%s" using 1:i with linespoints title columnhead(i)' \
				$((neng + 1)) "$W_/throughput.dat"
			[ "$neng" -eq 0 ] || [ "$ncol" -le $((neng + 1)) ] || printf ', '
			[ "$ncol" -le $((neng + 1)) ] || printf 'for [i=%s:%s] "%s" using 1:i with linespoints dashtype 2 title columnhead(i)' \
				$((neng + 2)) "$ncol" "$W_/throughput.dat"
			printf '\nunset logscale\n'
		fi
		if stage submit; then
			printf 'set title "4. submit rates by clients (no executors)"\nunset xlabel\nset ylabel "jobs/s"\nset logscale xy 2\n'
			printf 'plot for [i=2:4] "%s" using 1:i with linespoints title columnhead(i)\n' "$W_/submit.dat"
			printf 'unset logscale\n'
		fi
		if stage latency; then
			printf 'set title "3. latency in ms, one job at a time (CDF)"\nunset xlabel\nset ylabel "fraction of jobs"\nset logscale x\nset xtics auto\n'
			printf 'plot "%s" using 2:(1.0/%s) smooth cumulative with lines title "created -> handler start", ' \
				"$W_/start.samples" "$LAT_N"
			printf '"%s" using 2:(1.0/%s) smooth cumulative with lines title "submit -> succeeded NOTIFY"\n' \
				"$W_/rtt.samples" "$RTT_N"
			printf 'unset logscale\n'
		fi
		if stage rss; then
			printf 'set title "7. executor memory (kB) by second of a drain of %s jobs"\nunset xlabel\nset ylabel "kB"\nset xtics auto\n' "$RSS_JOBS"
			printf 'plot '
			local first=1 p
			while read -r p _; do
				awk -v p="$p" '$2 == p' "$W_/rss.samples" >"$W_/rss.$p.dat"
				[ "$first" = 1 ] || printf ', '
				first=0
				printf '"%s" using 1:3 with lines title "VmRSS %s", ' "$W_/rss.$p.dat" "$p"
				printf '"%s" using 1:4 with lines dashtype 2 title "RssAnon %s"' "$W_/rss.$p.dat" "$p"
			done <"$W_/rss.summary"
			printf '\n'
		fi
		printf 'unset multiplot\n'
	} >"$gp"
	if gnuplot "$gp" >"$TMP/log/gnuplot.log" 2>&1; then
		PLOT_NOTE="plot: ${img#"$ROOT"/}"
	else
		PLOT_NOTE="no plot: gnuplot failed ($(grep -v '^ *$' "$TMP/log/gnuplot.log" | tail -n 2 | tr '\n' ' '))"
		rm -f "$img"
	fi
}
PLOT_NOTE="no plot (JE_BENCH_PLOT=0)"
if [ "$PLOT" = 1 ]; then plot; fi

printf '\n'
cat "$REPORT"
printf '\nresults: %s\n         %s\n%s\n' "${OUT_JSON#"$ROOT"/}" "${REPORT#"$ROOT"/}" "$PLOT_NOTE"

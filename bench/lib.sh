# shellcheck shell=bash disable=SC2034,SC2153  # variables are read and set by the callers
#
# bench/lib.sh: what the benchmark scripts share (bench/run.sh,
# bench/pressure.sh, bench/soak.sh): the build of a private copy of
# job_engine, a throwaway cluster with durable commits, short psql sessions,
# CPU accounting, sessions held open in a transaction, readers, JSON pieces.
#
# Source it from a bash script under `set -euo pipefail`, after setting
# BENCH_NAME (for messages) and PORT:
#
#     BENCH_NAME=pressure.sh PORT="${JE_PRESSURE_PORT:-54332}"
#     . "$BENCH_DIR/lib.sh"
#     bench_start                   # temp dir, exit trap
#     bench_build                   # BINDIR: private install or the system's
#     bench_cluster 4 "job_engine.retention = 30"
#     bench_schema                  # extension, no-op handlers, queue 'bench'
#     bench_facts                   # PG_VERSION, CPUS, ..., COMMIT, STAMP
#
# Environment (defaults in brackets), as documented in bench/README.md:
#   JE_BENCH_REF, JE_BENCH_INSTALL [private], JE_BENCH_SHARED_BUFFERS [512MB],
#   JE_BENCH_NOTIFY [on], JE_BENCH_CONF, JE_BENCH_KEEP, JE_BENCH_OUT
#   [bench/results], PG_MAJOR, PG_CONFIG.
#
# Lists in variables (pids) are split on purpose.
# shellcheck disable=SC2086
# shellcheck source-path=SCRIPTDIR

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_NAME="${BENCH_NAME:-$(basename "$0")}"

REF="${JE_BENCH_REF:-}"
INSTALL="${JE_BENCH_INSTALL:-private}"
SHARED_BUFFERS="${JE_BENCH_SHARED_BUFFERS:-512MB}"
NOTIFY="${JE_BENCH_NOTIFY:-on}"
OUT_DIR="${JE_BENCH_OUT:-$BENCH_DIR/results}"

# scripts/lib.sh: temp dir and exit trap, private install.  Its log
# directory is only used by the test scripts; keep ours apart.
JE_LOG_DIR="${TMPDIR:-/tmp}/job_engine-bench-logs-$(id -un)"
export JE_LOG_DIR
export JE_KEEP_TMP="${JE_BENCH_KEEP:-0}"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }
log() { printf '==> [%4ss] %s\n' "$((SECONDS))" "$*"; }

posint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
# posints VAR...: each named variable must hold a positive integer.
posints() {
	local v
	for v in "$@"; do posint "${!v}" || die "$v must be a positive integer, got '${!v}'"; done
}
posints PORT
case "$NOTIFY" in on | off) ;; *) die "JE_BENCH_NOTIFY is on or off, got '$NOTIFY'" ;; esac
case "$INSTALL" in private | system) ;; *) die "JE_BENCH_INSTALL is private or system, got '$INSTALL'" ;; esac

# ---- temp directory, background processes, exit -------------------------------

# Background processes to stop on exit (bench_bg), sessions held open in a
# transaction (hold_open): their psql and the descriptor that feeds it.
BG_PIDS=""
declare -A HOLD_FD=() HOLD_PID=()
bench_bg() { BG_PIDS="$BG_PIDS $1"; }
bench_unbg() { BG_PIDS="$(printf ' %s ' $BG_PIDS | sed "s/ $1 / /")"; }

bench_on_exit() {
	local rc=$? p name fd
	for p in $BG_PIDS; do kill "$p" 2>/dev/null || true; done
	for name in "${!HOLD_FD[@]}"; do
		fd="${HOLD_FD[$name]}"
		exec {fd}>&- || true
		kill "${HOLD_PID[$name]}" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ] && [ -n "$JE_SERVER_LOG" ] && [ -f "$JE_SERVER_LOG" ]; then
		echo "---- last lines of the server log ----" >&2
		tail -n 30 "$JE_SERVER_LOG" >&2 || true
	fi
	if [ "$rc" -ne 0 ] || [ "$JE_KEEP_TMP" = 1 ]; then
		JE_KEEP_TMP=1
		echo "kept $JE_TMP" >&2
	fi
	# je_on_exit stops the cluster and removes the temp directory; it reads
	# the exit status from $?.
	set +e
	(exit "$rc")
	je_on_exit
}

# bench_start: the private temp directory (TMP, scratch files in W_) and the
# exit trap.
bench_start() {
	je_init
	trap bench_on_exit EXIT
	TMP="$JE_TMP"
	W_="$TMP/work"
	mkdir -p "$W_"
	export LC_ALL=C # decimal points in awk and printf
}

# ---- build ------------------------------------------------------------------

# bench_build: BINDIR, the PostgreSQL binaries to use, with job_engine
# installed: the working tree (or JE_BENCH_REF) built into a private copy of
# PostgreSQL, or the one installed in PG_CONFIG's.
bench_build() {
	case "$INSTALL" in
	private)
		# Build a copy of the sources (the working tree, or JE_BENCH_REF), so
		# that builds run in the working tree at the same time cannot interfere.
		# scripts/ holds what the build runs (the update script's builder).
		mkdir -p "$TMP/tree"
		if [ -n "$REF" ]; then
			git -C "$ROOT" rev-parse --verify -q "$REF^{commit}" >/dev/null || die "no git revision '$REF'"
			# shellcheck disable=SC2046
			git -C "$ROOT" archive "$REF" $(git -C "$ROOT" ls-tree --name-only "$REF" |
				grep -E '^(Makefile|job_engine\.control|job_engine--.*\.sql|src|scripts|examples)$') |
				tar -C "$TMP/tree" -xf -
		else
			(cd "$ROOT" && tar --exclude='*.o' --exclude='*.bc' --exclude='*.so' -cf - \
				Makefile job_engine.control src scripts examples) | tar -C "$TMP/tree" -xf -
		fi
		JE_ROOT="$TMP/tree"
		je_build_and_install >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; die "build failed"; }
		BINDIR="$JE_BINDIR"
		;;
	system)
		[ -x "$PG_CONFIG" ] || die "no pg_config at $PG_CONFIG (set PG_CONFIG)"
		BINDIR="$("$PG_CONFIG" --bindir)"
		[ -f "$("$PG_CONFIG" --pkglibdir)/job_engine.so" ] ||
			die "job_engine is not installed in $("$PG_CONFIG" --pkglibdir); run: make PG_CONFIG=$PG_CONFIG install"
		JE_BINDIR="$BINDIR"
		[ -z "$REF" ] || die "JE_BENCH_REF needs JE_BENCH_INSTALL=private"
		;;
	esac
	log "PostgreSQL binaries: $BINDIR ($INSTALL install of job_engine)"
}

# ---- helpers ----------------------------------------------------------------

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# fmt0 N: rounded to an integer, "-" when empty.
fmt0() { if [ -z "${1:-}" ]; then printf -- -; else printf '%.0f' "$1"; fi; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Other load during a measurement.  cpu_mark prints "busy ours" in clock
# ticks: busy is the non-idle time of all CPUs (steal included), ours the CPU
# time of this cluster (the postmaster, its live children, the children it
# has reaped) and of this script with the clients it has run.
# other_cpus MARK0 MARK1 SECONDS: the CPUs the rest of the machine used.
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
cpu_mark() {
	local pm pids
	pm="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)"
	pids="$$ $pm $(pgrep -P "$pm" 2>/dev/null | tr '\n' ' ')"
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat | tr '\n' ' '
	for p in $pids; do cat "/proc/$p/stat" 2>/dev/null || true; done |
		awk '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}
# cpu_ms MARK0 MARK1 JOBS: our CPU time per job, in ms.
cpu_ms() {
	awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		printf "%.3f", (y[2] - x[2]) / hz * 1000 / (n > 0 ? n : 1) }'
}
other_cpus() {
	awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		o = ((y[1] - x[1]) - (y[2] - x[2])) / hz / (s > 0 ? s : 1)
		printf "%.2f", (o > 0 ? o : 0) }'
}

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
# num V: V as a JSON number, null when empty.
num() { if [ -z "${1:-}" ]; then printf null; else printf '%s' "$1"; fi; }

# JSON parts: one file per section, one object per line.
jadd() { printf '%s\n' "$2" >>"$W_/$1.jsonl"; }
jarray() {
	if [ -f "$W_/$1.jsonl" ]; then
		printf '[\n    %s\n  ]' "$(paste -sd, "$W_/$1.jsonl" | sed 's/},{/},\n    {/g')"
	else
		printf '[]'
	fi
}

# psqld DB SQL...: one short session per call, so no snapshot outlives it.
psqld() {
	local db="$1"
	shift
	"$BINDIR/psql" -X -At -q -v ON_ERROR_STOP=1 -d "$CONN dbname=$db" "$@"
}
q() { psqld postgres -c "$1"; }

# wait_for SQL TIMEOUT_S: poll until SQL returns t.
wait_for() {
	local sql="$1" limit="$2" start="$SECONDS"
	until [ "$(q "$sql")" = t ]; do
		[ $((SECONDS - start)) -le "$limit" ] || die "timed out after ${limit}s waiting for: $sql"
		sleep 0.1
	done
}

# ---- the cluster ------------------------------------------------------------

# bench_cluster WORKERS [CONF]: initdb and start the throwaway cluster:
# durable commits, job_engine preloaded with WORKERS executors serving the
# database postgres, CONF (lines for postgresql.conf), then JE_BENCH_CONF.
# Its socket is in a private directory; lib.sh's cleanup stops it.
bench_cluster() {
	local workers="$1" conf="${2:-}"
	SOCK="$TMP/socket"
	DATA="$TMP/data"
	DBUSER="$JE_PGUSER"
	CONN="host=$SOCK port=$PORT user=$DBUSER"
	mkdir -p "$SOCK" "$DATA" "$TMP/log"
	JE_SOCKDIR="$SOCK"
	JE_PORT="$PORT"
	JE_DATADIR="$DATA"
	JE_SERVER_LOG="$TMP/log/server.log"
	if je_is_root; then chown "$JE_OS_USER:" "$SOCK" "$DATA" "$TMP/log"; fi
	chmod 700 "$DATA"

	log "initdb $DATA"
	je_as_server_user "$BINDIR/initdb" -D "$DATA" -A trust -U "$DBUSER" -E UTF8 --locale=C \
		>"$TMP/log/initdb.log" 2>&1 || { cat "$TMP/log/initdb.log"; die "initdb failed"; }
	je_as_server_user tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# bench/$BENCH_NAME
shared_preload_libraries = 'job_engine'
job_engine.databases = 'postgres'
job_engine.max_workers = $workers
job_engine.notify = $NOTIFY
max_worker_processes = 40
max_connections = 100
synchronous_commit = on
fsync = on
full_page_writes = on
shared_buffers = '$SHARED_BUFFERS'
# Checkpoints are taken explicitly before each measurement.
max_wal_size = '8GB'
checkpoint_timeout = '30min'
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%b@%d '
$conf
${JE_BENCH_CONF:-}
EOF
	CONF_WORKERS="$workers"
	log "starting PostgreSQL"
	start_cluster
}

start_cluster() {
	je_as_server_user "$BINDIR/pg_ctl" -D "$DATA" -l "$JE_SERVER_LOG" -w -t 120 -s start ||
		die "the server did not start"
	JE_CLUSTER_UP=1
}
stop_cluster() {
	je_as_server_user "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 120 -s stop || die "stop failed"
	JE_CLUSTER_UP=0
}
wait_executors() {
	wait_for "SELECT count(*) = $1 FROM pg_stat_activity WHERE backend_type = 'job_engine executor'" 60
}
# restart_cluster: for postmaster settings changed with ALTER SYSTEM.
restart_cluster() {
	stop_cluster
	start_cluster
	wait_executors "$CONF_WORKERS"
}
# set_workers N: job_engine.max_workers = N, a postmaster setting: restart
# when it changes, then wait for the N executors.
set_workers() {
	local n="$1"
	if [ "$CONF_WORKERS" != "$n" ]; then
		q "ALTER SYSTEM SET job_engine.max_workers = $n"
		stop_cluster
		start_cluster
		CONF_WORKERS="$n"
	fi
	wait_executors "$n"
}

# bench_schema: job_engine and pgstattuple, the no-op handlers 'sql' and
# 'plpgsql' of the strict queue 'bench', then the executors.
bench_schema() {
	q "CREATE EXTENSION job_engine"
	q "CREATE EXTENSION pgstattuple"
	q "CREATE FUNCTION public.noop_sql(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
	q "CREATE FUNCTION public.noop_plpgsql(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN RETURN '{}'::jsonb; END \$\$"
	q "SELECT job_engine.configure_queue('bench', group_commit => 1)" >/dev/null
	q "SELECT job_engine.register_handler('sql', 'public.noop_sql(jsonb)'::regprocedure, queue => 'bench')" >/dev/null
	q "SELECT job_engine.register_handler('plpgsql', 'public.noop_plpgsql(jsonb)'::regprocedure, queue => 'bench')" >/dev/null
	wait_executors "$CONF_WORKERS"
}

# bench_facts: the machine, the server and the checkout measured
# (PG_VERSION, CPUS, CPU_MODEL, MEM_MB, LOAD_START, COMMIT: "+changes" when
# src/ differs from it) and the timestamp that names the results (STAMP).
bench_facts() {
	PG_VERSION="$(q "SHOW server_version")"
	CPUS="$(nproc)"
	CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
	MEM_MB="$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)"
	LOAD_START="$(loadavg)"
	if [ -n "$REF" ]; then
		COMMIT="$(git -C "$ROOT" rev-parse --short "$REF")"
	else
		COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
		if [ "$COMMIT" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain -- src job_engine--1.0.sql 2>/dev/null)" ]; then
			COMMIT="$COMMIT+changes"
		fi
		[ "$INSTALL" = private ] || COMMIT="installed build (checkout $COMMIT)"
	fi
	STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
}

# server_log_problems FROM_LINE: errors and warnings the server logged
# (restarts for max_workers aside).
server_log_problems() {
	tail -n "+$1" "$JE_SERVER_LOG" | grep -E '(ERROR|FATAL|PANIC|WARNING):|terminated by signal' |
		grep -vc 'due to administrator command' || true
}

# ---- pressure: sessions that hold the xmin horizon back ------------------------

# hold_open NAME SQL READY: a psql session (application_name NAME) that runs
# SQL and then stays idle in its transaction until hold_close NAME; returns
# once pg_stat_activity shows it so and READY (a condition on its row, e.g.
# "backend_xid IS NOT NULL") holds.
hold_open() {
	local name="$1" sql="$2" ready="$3" fd
	mkfifo "$W_/$name.fifo"
	"$BINDIR/psql" -X -At -q -d "$CONN dbname=postgres application_name=$name" \
		<"$W_/$name.fifo" >"$W_/$name.out" 2>&1 &
	HOLD_PID[$name]=$!
	exec {fd}>"$W_/$name.fifo"
	HOLD_FD[$name]="$fd"
	echo "$sql" >&"$fd"
	wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '$name'
	                            AND state = 'idle in transaction' AND ($ready))" 30
}
# hold_close NAME: commit the held transaction and end the session (with
# \q: processes started meanwhile inherited the other end of the pipe, so
# psql might see no end of its input).
hold_close() {
	local name="$1" fd="${HOLD_FD[$1]}"
	printf 'COMMIT;\n\\q\n' >&"$fd"
	exec {fd}>&-
	wait "${HOLD_PID[$name]}" || true
	unset "HOLD_FD[$name]" "HOLD_PID[$name]"
	rm -f "$W_/$name.fifo"
}
# The two kinds: a transaction that holds an xid (idle in transaction after
# a write would), and a REPEATABLE READ snapshot.
hold_xid() { hold_open "$1" "BEGIN; SELECT pg_current_xact_id();" "backend_xid IS NOT NULL"; }
hold_snapshot() {
	hold_open "$1" "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;" \
		"backend_xmin IS NOT NULL"
}

# readers_start N SECONDS PAUSE: N sessions, each one REPEATABLE READ
# transaction that scans job_engine.jobs, sleeps PAUSE seconds and scans
# again, until SECONDS have passed: every scan sees the snapshot of its
# first.  READER_PIDS: their psql processes (readers_wait waits for them).
READER_PIDS=""
readers_start() {
	local n="$1" seconds="$2" pause="$3" i
	for ((i = 1; i <= n; i++)); do
		psqld postgres -c "SET application_name = je_bench_reader_$i" \
			-c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
			-c "DO \$\$ DECLARE deadline timestamptz := clock_timestamp() + interval '$seconds s'; n bigint;
			    BEGIN
			        LOOP
			            SELECT count(*) INTO n FROM job_engine.jobs;
			            EXIT WHEN clock_timestamp() >= deadline;
			            PERFORM pg_sleep(least($pause, extract(epoch FROM deadline - clock_timestamp())));
			        END LOOP;
			    END \$\$" \
			-c "COMMIT" >"$W_/reader_$i.out" 2>&1 &
		READER_PIDS="$READER_PIDS $!"
		bench_bg "$!"
	done
}
readers_wait() {
	local p
	for p in $READER_PIDS; do
		wait "$p" || die "a reader failed: $(cat "$W_"/reader_*.out)"
		bench_unbg "$p"
	done
	READER_PIDS=""
}

#!/usr/bin/env bash
#
# scripts/demo.sh: build job_engine, start a throwaway PostgreSQL cluster
# with it (and pg_cron) preloaded, and play demo/scenario.sql against the
# database postgres.  PG_MAJOR picks the version (see scripts/lib.sh); one
# that the host's Debian lacks runs in a chroot, as in scripts/test.sh.
#
#   scripts/demo.sh            the full scenario
#   scripts/demo.sh --short    the quick version (psql variable short=1), as
#                              scripts/test.sh runs it
#   scripts/demo.sh --keep     leave the cluster running afterwards and print
#                              how to connect to it and how to stop it
#
# While the scenario runs, a second session (LISTEN job_engine) prints every
# outcome notification as it arrives, as lines like
#
#     [outcome +0.42s] job 12   charge_payment   → retrying  (attempt 1)
#
# Environment: see scripts/lib.sh (JE_PORT, JE_DATABASES, ...).  The demo plays
# against the database postgres, which is therefore also pg_cron's database.

set -euo pipefail

# The scenario schedules a Command through pg_cron in the database postgres.
JE_CRON_DATABASE=postgres

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHORT=0
KEEP=0
for arg in "$@"; do
	case "$arg" in
		--short) SHORT=1 ;;
		--keep) KEEP=1 ;;
		-h | --help)
			sed -n '3,/^$/s/^# \{0,1\}//p' "$0"
			exit 0
			;;
		*)
			echo "unknown argument: $arg (try --help)" >&2
			exit 2
			;;
	esac
done

if je_needs_chroot; then
	[ "$KEEP" -eq 0 ] || je_die "PostgreSQL $PG_MAJOR is not installed here, and --keep cannot keep a cluster in a chroot"
	exec "$JE_ROOT/scripts/chroot.sh" "$PG_MAJOR" scripts/demo.sh "$@"
fi

SCENARIO="$JE_ROOT/demo/scenario.sql"
if [ ! -f "$SCENARIO" ]; then
	echo "ERROR: $SCENARIO is missing: there is no demo to run" >&2
	exit 1
fi

# ---- the live listener --------------------------------------------------------
#
# A background psql that has run `LISTEN job_engine` and is fed `SELECT 1`
# every 0.2 s through a FIFO: psql prints pending notifications after each
# statement, and listener_format turns its "Asynchronous notification ..."
# lines into one short line per outcome.  It is stopped by removing its run
# flag (the feeder ends, psql reads EOF and exits, the formatter drains), and
# killed for certain by the exit trap.  It never decides the demo's exit
# status.

LISTENER_PIDS=()
LISTENER_FLAG=""

# Microseconds since the epoch (bash 5's EPOCHREALTIME, else whole seconds).
now_us() {
	local t="${EPOCHREALTIME:-}"
	if [ -n "$t" ]; then
		t="${t/./}"
		t="${t/,/}"
		echo "$t"
	else
		echo "$(($(date +%s) * 1000000))"
	fi
}

# Reads psql's output and prints one line per outcome notification:
#     [outcome +1.24s] job 12   charge_payment   → retrying   (attempt 1)
# The payload is json_build_object's: {"job_id" : 1, "state" : "...",
# "handler" : "...", "queue" : "...", "attempt" : 1, "correlation_id" : "..."}.
listener_format() {
	local line start elapsed color="" reset="" state
	local re='^Asynchronous notification "job_engine" with payload "\{"job_id" : ([0-9]+), "state" : "([a-z]+)", "handler" : "(.*)", "queue" : "(.*)", "attempt" : ([0-9]+), "correlation_id" : "?([^"]*)"?\}" received from server process with PID ([0-9]+)\.$'
	local use_color=0
	[ -t 1 ] && [ -z "${NO_COLOR:-}" ] && use_color=1
	start="$(now_us)"
	while IFS= read -r line; do
		[[ $line =~ $re ]] || continue
		state="${BASH_REMATCH[2]}"
		if [ "$use_color" -eq 1 ]; then
			case "$state" in
				succeeded) color=$'\033[32m' ;;
				retrying) color=$'\033[33m' ;;
				failed) color=$'\033[31m' ;;
				*) color=$'\033[35m' ;;
			esac
			reset=$'\033[0m'
		fi
		elapsed=$(($(now_us) - start))
		printf '[outcome +%d.%02ds] job %-4s %-16s → %s%-9s%s (attempt %s)\n' \
			$((elapsed / 1000000)) $((elapsed % 1000000 / 10000)) \
			"${BASH_REMATCH[1]}" "${BASH_REMATCH[3]}" "$color" "$state" "$reset" \
			"${BASH_REMATCH[5]}"
	done
}

listener_start() {
	local fifo="$JE_TMP/listener.fifo"
	LISTENER_FLAG="$JE_TMP/listener.run"
	mkfifo "$fifo" || return 1
	touch "$LISTENER_FLAG"

	# Feeder: LISTEN once, then a statement every 0.2 s while the flag exists.
	(
		printf 'LISTEN job_engine;\n'
		while [ -e "$LISTENER_FLAG" ]; do
			printf 'SELECT 1 \\g /dev/null\n'
			sleep 0.2
		done
	) >"$fifo" 2>/dev/null &
	LISTENER_PIDS+=("$!")

	# Listener: psql reading the FIFO, its output reformatted.  ($! is the
	# formatter's pid; psql's own is written to a file.)
	(
		echo "$BASHPID" >"$JE_TMP/listener.pid"
		exec "$JE_BINDIR/psql" -X -q -h "$JE_SOCKDIR" -p "$JE_PORT" -U "$JE_PGUSER" \
			-d "dbname=postgres application_name=job_engine_demo_listener" \
			<"$fifo" 2>"$JE_TMP/listener.err"
	) | listener_format &
	LISTENER_PIDS+=("$!")

	for _ in $(seq 50); do
		[ -s "$JE_TMP/listener.pid" ] && break
		sleep 0.1
	done
	[ -s "$JE_TMP/listener.pid" ] && LISTENER_PIDS+=("$(cat "$JE_TMP/listener.pid")")

	# Ready once the session has run its LISTEN (at most 10 s; the demo goes
	# on without live outcomes rather than fail).
	for _ in $(seq 100); do
		if [ "$(je_psql -d postgres -Atc "SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'job_engine_demo_listener' AND query <> ''" 2>/dev/null)" = 1 ]; then
			return 0
		fi
		sleep 0.1
	done
	je_warn "the live listener did not start (see $JE_TMP/listener.err); outcomes are shown at the end only"
	return 1
}

# Let the last notifications through, then stop the listener: gently (the
# flag), then for certain (SIGTERM to what is left).  Never fails.
listener_stop() {
	local pid alive
	[ "${#LISTENER_PIDS[@]}" -gt 0 ] || return 0
	if [ -n "$LISTENER_FLAG" ]; then
		rm -f "$LISTENER_FLAG"
	fi
	for _ in $(seq 30); do
		alive=0
		for pid in "${LISTENER_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ "$alive" -eq 1 ] || break
		sleep 0.1
	done
	for pid in "${LISTENER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${LISTENER_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	LISTENER_PIDS=()
}

# The exit trap of lib.sh, with the listener stopped first.
# shellcheck disable=SC2317  # invoked by the EXIT trap
demo_on_exit() {
	local rc=$?
	set +e
	listener_stop
	(exit "$rc")
	je_on_exit
}

je_init
trap 'demo_on_exit' EXIT
je_ensure_packages
je_build_and_install || je_die "the build failed"
je_start_cluster "$JE_TMP/data" "$JE_PORT" || je_die "could not start the demo cluster"

psql_args=(-v ON_ERROR_STOP=1)
if [ "$SHORT" -eq 1 ]; then
	psql_args+=(-v short=1)
else
	psql_args+=(-v short=0)
fi

psql_args+=(-v with_cron=1)

je_log "starting the live listener (LISTEN job_engine): outcomes are printed as [outcome] lines"
listener_start || true

je_log "running demo/scenario.sql$([ "$SHORT" -eq 1 ] && echo ' (short)')"
rc=0
cd "$JE_ROOT"
je_run_logged "$JE_TMP/demo.log" "${JE_DEMO_TIMEOUT:-0}" \
	"$JE_BINDIR/psql" -X -h "$JE_SOCKDIR" -p "$JE_PORT" -U "$JE_PGUSER" -d postgres \
	"${psql_args[@]}" -f demo/scenario.sql || rc=$?
listener_stop

echo
if [ "$rc" -eq 0 ]; then
	# Outcomes as the extension records them, if its views are there.
	if [ "$(je_psql -d postgres -Atc "SELECT to_regclass('job_engine.jobs') IS NOT NULL")" = t ]; then
		je_log "outcomes: jobs by handler and state"
		je_psql -d postgres -P pager=off -c \
			"SELECT handler, state, count(*) AS jobs, max(attempts) AS max_attempts
			   FROM job_engine.jobs GROUP BY handler, state ORDER BY handler, state" ||
			je_warn "could not read job_engine.jobs"
	fi
fi

if [ "$rc" -ne 0 ]; then
	JE_RUN_FAILED=1
	je_log "demo FAILED (psql exit status $rc)"
else
	je_log "demo finished"
fi

if [ "$KEEP" -eq 1 ]; then
	JE_KEEP_CLUSTER=1
	JE_KEEP_TMP=1
	echo
	echo "The cluster is still running. Connect with:"
	echo "  $JE_BINDIR/psql -X -h $JE_SOCKDIR -p $JE_PORT -U $JE_PGUSER -d postgres"
	echo "Server log: $JE_SERVER_LOG"
	echo "Stop it and remove its files with:"
	if je_is_root; then
		echo "  runuser -u $JE_OS_USER -- $JE_BINDIR/pg_ctl -D $JE_DATADIR -m fast stop && rm -rf $JE_TMP"
	else
		echo "  $JE_BINDIR/pg_ctl -D $JE_DATADIR -m fast stop && rm -rf $JE_TMP"
	fi
fi
exit "$rc"

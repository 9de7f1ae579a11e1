#!/usr/bin/env bash
#
# scripts/demo.sh: build job_engine, start a throwaway PostgreSQL 15 cluster
# with it (and pg_cron) preloaded, and play demo/scenario.sql against the
# database postgres.
#
#   scripts/demo.sh            the full scenario
#   scripts/demo.sh --short    the quick version (psql variable short=1), as
#                              scripts/test.sh runs it
#   scripts/demo.sh --keep     leave the cluster running afterwards and print
#                              how to connect to it and how to stop it
#
# Environment: see scripts/lib.sh (JE_PORT, JE_DATABASES, ...).

set -euo pipefail

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

SCENARIO="$JE_ROOT/demo/scenario.sql"
if [ ! -f "$SCENARIO" ]; then
	echo "ERROR: $SCENARIO is missing: there is no demo to run" >&2
	exit 1
fi

je_init
je_ensure_packages
je_build_and_install || je_die "the build failed"
je_start_cluster "$JE_TMP/data" "$JE_PORT" || je_die "could not start the demo cluster"

psql_args=(-v ON_ERROR_STOP=1)
if [ "$SHORT" -eq 1 ]; then
	psql_args+=(-v short=1)
else
	psql_args+=(-v short=0)
fi

je_log "running demo/scenario.sql$([ "$SHORT" -eq 1 ] && echo ' (short)')"
rc=0
cd "$JE_ROOT"
je_run_logged "$JE_TMP/demo.log" "${JE_DEMO_TIMEOUT:-0}" \
	"$JE_BINDIR/psql" -X -h "$JE_SOCKDIR" -p "$JE_PORT" -U "$JE_PGUSER" -d postgres \
	"${psql_args[@]}" -f demo/scenario.sql || rc=$?

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

#!/usr/bin/env bash
#
# test/run_pgtap.sh BINDIR CONFIG FILE...: run pgTAP files with pg_prove
# against a temporary instance of their own, as pg_regress --temp-instance
# does for the regression suites.  The Makefile's installcheck-pgtap calls it.
#
# The instance is made in ./tmp_check_pgtap with BINDIR's initdb (UTF8, C
# locale), gets the settings of CONFIG and listens only on a Unix socket in a
# private directory.  The files run in its database pgtap_test, which has the
# extensions pgtap and job_engine.  The instance is stopped at the end; its
# data directory is removed when every file passed.  Its log is
# ./tmp_check_pgtap/log/postmaster.log.
#
# PostgreSQL refuses to run as root: run this as the server's OS user.

set -euo pipefail

if [ "$#" -lt 3 ]; then
	echo "usage: $0 BINDIR CONFIG FILE..." >&2
	exit 2
fi
bindir="$1" config="$2"
shift 2

dir="$PWD/tmp_check_pgtap"
data="$dir/data"
log="$dir/log/postmaster.log"
# The socket directory is private, so the port never clashes with another
# server.
port=54329

echo "+++ pgtap install-check in temporary instance $dir +++"
rm -rf "$dir"
mkdir -p "$dir/log"
# A Unix socket path must stay short (about 100 bytes).
tmp="${TMPDIR:-/tmp}"
[ "${#tmp}" -le 60 ] || tmp=/tmp
sockdir="$(mktemp -d "$tmp/pgtap.XXXXXX")"

started=0
cleanup() {
	if [ "$started" -eq 1 ]; then
		"$bindir/pg_ctl" -D "$data" -m fast -w -t 60 -s stop || true
	fi
	rm -rf "$sockdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "$bindir/initdb" -D "$data" --auth=trust -E UTF8 --locale=C --no-sync \
	>"$dir/log/initdb.log" 2>&1; then
	cat "$dir/log/initdb.log" >&2
	echo "initdb failed" >&2
	exit 1
fi
{
	echo
	echo "# added by test/run_pgtap.sh"
	cat "$config"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$sockdir'"
	echo "port = $port"
} >>"$data/postgresql.conf"

if ! "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start; then
	echo "the temporary instance did not start (log: $log)" >&2
	exit 1
fi
started=1

psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$port")
"${psql[@]}" -d postgres -c 'CREATE DATABASE pgtap_test'
"${psql[@]}" -d pgtap_test -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION job_engine'

# The files expect the engine to serve pgtap_test already.  Its supervisor
# starts within a second or so of the database's creation: wait for its
# executors (at most 60 s).
serving="SELECT EXISTS (SELECT 1 FROM job_engine.workers WHERE database = current_database())"
for _ in $(seq 600); do
	[ "$("${psql[@]}" -d pgtap_test -Atc "$serving")" = t ] && break
	sleep 0.1
done
if [ "$("${psql[@]}" -d pgtap_test -Atc "$serving")" != t ]; then
	echo "job_engine does not serve database pgtap_test after 60 s (log: $log)" >&2
	exit 1
fi

rc=0
pg_prove --psql-bin "$bindir/psql" -h "$sockdir" -p "$port" -d pgtap_test "$@" || rc=$?

if [ "$rc" -eq 0 ]; then
	cleanup
	started=0
	rm -rf "$data"
else
	echo "pgTAP failed; the server log is $log"
fi
exit "$rc"

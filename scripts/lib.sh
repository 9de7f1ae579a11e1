# shellcheck shell=bash disable=SC2034  # variables are read by the callers
#
# scripts/lib.sh: shared functions of scripts/test.sh and scripts/demo.sh.
#
# Source it from a bash script that runs under `set -euo pipefail`:
#
#     . "$(dirname "$0")/lib.sh"
#     je_init                       # temp dir, exit trap, clean environment
#     je_ensure_packages            # Debian packages (installs them as root)
#     je_build_and_install          # make; make install into a private copy
#     je_start_cluster "$JE_TMP/data" "$JE_PORT"
#     je_psql -d postgres -c 'SELECT 1'
#
# The extension is installed into a private copy of the PostgreSQL
# installation ("temp install", $JE_TMP/install), never into /usr, and every
# server runs on a throwaway cluster whose only socket is in a private
# directory.  PostgreSQL refuses to run as root, so when these scripts run as
# root the servers (and TAP tests) run as the `postgres` OS user.
#
# Settings, from the environment:
#   PG_MAJOR           major version of PostgreSQL to build against and test
#                      (default: PG_CONFIG's when it is set, else the
#                      distribution's, as postgresql-common or apt say)
#   PG_CONFIG          pg_config to build against
#                      (default /usr/lib/postgresql/$PG_MAJOR/bin/pg_config)
#   JE_PORT            port of the throwaway cluster (default 54329; the socket
#                      is private, so it never clashes with another server)
#   JE_DATABASES       job_engine.databases of the throwaway cluster
#   JE_CRON_DATABASE   cron.database_name (default postgres)
#   JE_LOG_DIR         where server logs and diffs of a failed run are kept
#                      (default ${TMPDIR:-/tmp}/job_engine-test-output-$USER)
#   JE_TMP             the private temp directory to use: a new one (in an
#                      existing directory) or an empty one, since its
#                      contents are removed at exit (anything else is
#                      refused); at most 78 characters long (the cluster's
#                      Unix socket is in it) and reachable by the server's
#                      OS user.  Default: a new one under ${TMPDIR:-/tmp}
#                      (/tmp when that is too long).  Not passed on to the
#                      scripts a script runs (demo.sh, check_package.sh in
#                      scripts/test.sh), which make their own, nor into the
#                      chroot (scripts/chroot.sh)
#   JE_KEEP_TMP=1      keep the temp directory when the script exits
#   JE_COPT            compiler options added to the build of job_engine
#                      (with -Werror), e.g. -fsanitize=undefined

JE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JE_PORT="${JE_PORT:-54329}"
JE_DATABASES="${JE_DATABASES:-postgres,contrib_regression,isolation_regression,pgtap_test}"
JE_CRON_DATABASE="${JE_CRON_DATABASE:-postgres}"
JE_LOG_DIR="${JE_LOG_DIR:-${TMPDIR:-/tmp}/job_engine-test-output-$(id -un)}"

je_log() { printf '==> %s\n' "$*"; }
je_warn() { printf 'WARNING: %s\n' "$*" >&2; }
je_die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

je_is_root() { [ "$(id -u)" -eq 0 ]; }

# ---- which PostgreSQL -----------------------------------------------------------

# The major version of the PostgreSQL a pg_config belongs to.
je_major_of() {
	"$1" --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p'
}

# apt's package lists, fetched first (as root) when there are none yet, as in
# a fresh container.
je_apt_lists() {
	command -v apt-cache >/dev/null 2>&1 || return 1
	if je_is_root && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		apt-get update -q >&2 || return 1
	fi
}

# The distribution's PostgreSQL major version: what postgresql-common calls
# supported, else what Debian's `postgresql` package depends on, else the
# version of the pg_config in PATH.
je_distribution_major() {
	local major=""
	if [ -x /usr/share/postgresql-common/supported-versions ]; then
		major="$(/usr/share/postgresql-common/supported-versions 2>/dev/null | tail -n 1)"
	fi
	if [ -z "$major" ] && je_apt_lists; then
		major="$(apt-cache show --no-all-versions postgresql 2>/dev/null |
			sed -n 's/^Depends:.*postgresql-\([0-9][0-9]*\).*/\1/p' | head -n 1)"
	fi
	if [ -z "$major" ] && command -v pg_config >/dev/null 2>&1; then
		major="$(je_major_of pg_config)"
	fi
	echo "$major"
}

# PG_CONFIG decides when it is given; PG_MAJOR, if given too, must agree.
# Otherwise PG_MAJOR (or the distribution's version) names Debian's layout.
if [ -n "${PG_CONFIG:-}" ]; then
	[ -x "$PG_CONFIG" ] || je_die "no pg_config at $PG_CONFIG (set PG_CONFIG)"
	JE_PG_CONFIG_MAJOR="$(je_major_of "$PG_CONFIG")"
	[ -n "$JE_PG_CONFIG_MAJOR" ] || je_die "$PG_CONFIG --version does not say which PostgreSQL it is"
	if [ -n "${PG_MAJOR:-}" ] && [ "$PG_MAJOR" != "$JE_PG_CONFIG_MAJOR" ]; then
		je_die "PG_MAJOR=$PG_MAJOR, but PG_CONFIG=$PG_CONFIG is PostgreSQL $JE_PG_CONFIG_MAJOR"
	fi
	PG_MAJOR="$JE_PG_CONFIG_MAJOR"
else
	PG_MAJOR="${PG_MAJOR:-$(je_distribution_major)}"
	[ -n "$PG_MAJOR" ] ||
		je_die "cannot tell which PostgreSQL to use: set PG_MAJOR (e.g. PG_MAJOR=17) or PG_CONFIG"
	PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
fi
[[ "$PG_MAJOR" =~ ^[0-9]+$ ]] || je_die "not a PostgreSQL major version: PG_MAJOR=$PG_MAJOR"

# Debian's PostgreSQL (and its pg_cron and pgTAP packages) is installed when
# it is the one to build against; another (PG_CONFIG elsewhere) is the
# caller's to provide.
JE_DEBIAN_PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
JE_PACKAGES=(
	build-essential
	perl
	libtap-parser-sourcehandler-pgtap-perl
	libipc-run-perl
)
if [ "$PG_CONFIG" = "$JE_DEBIAN_PG_CONFIG" ]; then
	JE_PACKAGES+=(
		"postgresql-$PG_MAJOR"
		"postgresql-server-dev-$PG_MAJOR"
		"postgresql-$PG_MAJOR-cron"
		"postgresql-$PG_MAJOR-pgtap"
	)
fi

# Does PostgreSQL $PG_MAJOR have to come from a chroot (scripts/chroot.sh)?
# Only when it is Debian's, not installed, and unknown to the host's apt.
je_needs_chroot() {
	[ -z "${JE_IN_CHROOT:-}" ] || return 1
	[ "$PG_CONFIG" = "$JE_DEBIAN_PG_CONFIG" ] || return 1
	[ ! -x "$PG_CONFIG" ] || return 1
	command -v dpkg-query >/dev/null 2>&1 || return 1
	je_apt_lists || return 1
	! apt-cache policy "postgresql-$PG_MAJOR" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

JE_TMP="${JE_TMP:-}"  # private temp directory: the caller's, else made by je_init
JE_TMP_MADE=0        # 1: je_init made the directory $JE_TMP (removed at exit)
JE_BINDIR=""         # bin directory of the temp install
JE_PGXS_DIR=""       # lib/pgxs of the temp install (pg_regress & co.)
JE_SOCKDIR=""        # socket directory of the running cluster
JE_DATADIR=""        # data directory of the running cluster
JE_SERVER_LOG=""     # server log of the running cluster
JE_CLUSTER_UP=0
JE_KEEP_CLUSTER=0    # set to 1 to leave the cluster running on exit
JE_RUN_FAILED=0      # set to 1 so that the exit trap keeps the logs
JE_CLEANED=0

# OS user that owns the servers, and the database superuser initdb creates.
if je_is_root; then
	JE_OS_USER=postgres
else
	JE_OS_USER="$(id -un)"
fi
JE_PGUSER="$JE_OS_USER"

# Run a command as the server's OS user (postgres when we are root).  The
# environment is passed on explicitly: runuser may reset PATH.
je_as_server_user() {
	if je_is_root; then
		(cd "$JE_TMP" && runuser -u "$JE_OS_USER" -- env "PATH=$PATH" "$@")
	else
		"$@"
	fi
}

# Logs kept by an earlier run are stale now (only a directory these scripts
# made is emptied).
je_clear_stale_logs() {
	if [ -f "$JE_LOG_DIR/.job_engine-logs" ]; then
		rm -rf "$JE_LOG_DIR" || je_warn "could not empty $JE_LOG_DIR"
	fi
}

# je_copy_tree DEST: copy the source tree, without git's data and the output
# of earlier test runs, to DEST.
je_copy_tree() {
	local dest="$1"
	mkdir -p "$dest"
	tar -C "$JE_ROOT" --exclude=./.git --exclude=./results --exclude=./log \
		--exclude='./tmp_check*' --exclude=./output_iso -cf - . | tar -C "$dest" -xf -
}

# Create the private temp directory, install the exit trap and drop libpq
# variables of the caller that would point the clients elsewhere.
je_init() {
	local var
	for var in PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD \
		PGPASSFILE PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT \
		PGDATA PGTZ PGDATESTYLE PGCLIENTENCODING PGAPPNAME; do
		unset "$var"
	done
	export LC_ALL=C.UTF-8 LANG=C.UTF-8
	unset LANGUAGE

	je_clear_stale_logs

	# The socket path must stay short (Unix sockets allow about 100 bytes).
	local parent="${TMPDIR:-/tmp}"
	if [ -n "$JE_TMP" ]; then
		# The caller's.  Only a new or empty one: its contents go at exit.
		case "$JE_TMP" in /*) ;; *) JE_TMP="$PWD/$JE_TMP" ;; esac
		[ "${#JE_TMP}" -le 78 ] ||
			je_die "JE_TMP=$JE_TMP is longer than 78 characters: the cluster's socket path in it would be too long"
		if [ ! -e "$JE_TMP" ]; then
			mkdir "$JE_TMP" || je_die "cannot create JE_TMP=$JE_TMP (its parent must exist)"
			JE_TMP_MADE=1
		elif [ ! -d "$JE_TMP" ] || [ -n "$(ls -A "$JE_TMP")" ]; then
			je_die "JE_TMP=$JE_TMP is not an empty directory (its contents are removed at exit): name a new or empty one"
		fi
	else
		[ "${#parent}" -le 60 ] || parent=/tmp
		JE_TMP="$(mktemp -d "$parent/job_engine.XXXXXX")"
		JE_TMP_MADE=1
	fi
	# A script this one runs makes its own, even if the caller exported it.
	export -n JE_TMP
	# The server user must be able to reach the temp install and its data.
	# (In a new chroot it does not exist yet: installing postgresql makes it.)
	chmod 755 "$JE_TMP"
	if je_is_root && id -u "$JE_OS_USER" >/dev/null 2>&1 &&
		! runuser -u "$JE_OS_USER" -- test -x "$JE_TMP"; then
		[ "$JE_TMP_MADE" -eq 0 ] || rmdir "$JE_TMP"
		je_die "JE_TMP=$JE_TMP: the OS user $JE_OS_USER cannot reach it (a directory above it is closed to it)"
	fi
	trap 'je_on_exit' EXIT
	trap 'je_on_signal 2' INT
	trap 'je_on_signal 15' TERM
}

# je_run_logged OUTFILE TIMEOUT CMD...: run CMD (0: no time limit) with its
# output to the terminal and to OUTFILE, and return its status (124: timed
# out).  CMD runs in the background and is waited for, so that an INT or TERM
# sent to the script stops CMD and cleans up at once.
JE_CHILD_PID=""
je_run_logged() {
	local out="$1" limit="$2" rc=0 fd tee_pid
	shift 2
	exec {fd}> >(tee "$out")
	tee_pid=$!
	timeout -k 10 "$limit" "$@" >&"$fd" 2>&1 &
	JE_CHILD_PID=$!
	wait "$JE_CHILD_PID" || rc=$?
	JE_CHILD_PID=""
	exec {fd}>&-
	wait "$tee_pid" || true
	if [ "$rc" -eq 124 ]; then
		printf '\nTIMEOUT: gave up after %ss: %s\n' "$limit" "$*" | tee -a "$out"
	fi
	return "$rc"
}

# Is a Debian package installed?
je_pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Install the Debian packages the build and the suites need.  As root, missing
# ones are installed (one apt-get update first); otherwise a missing package
# is an error that names it.
je_ensure_packages() {
	local pkg missing=()

	if ! command -v dpkg-query >/dev/null 2>&1; then
		# Not Debian: trust the caller, but check the essentials.
		[ -x "$PG_CONFIG" ] || je_die "no pg_config at $PG_CONFIG (set PG_CONFIG)"
		command -v pg_prove >/dev/null 2>&1 || je_warn "pg_prove not found: the pgTAP suites will fail"
		return 0
	fi
	for pkg in "${JE_PACKAGES[@]}"; do
		je_pkg_installed "$pkg" || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0

	if ! je_is_root; then
		je_die "missing Debian packages: ${missing[*]}
Install them with: sudo apt-get install -y ${missing[*]}"
	fi
	je_log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Build the extension (warnings are errors) and install it into a private
# copy of the PostgreSQL installation: $JE_TMP/install/usr/{lib,share}/postgresql/NN.
# PostgreSQL finds its share and lib directories relative to its binaries, so
# the copy runs on its own with pg_cron, pgTAP and job_engine in it.  The
# system installation is never changed: a PostgreSQL whose copy does not
# relocate (one built without relocatable paths) is refused.
je_build_and_install() {
	local pglib pgshare dest jobs
	[ -x "$PG_CONFIG" ] || { je_warn "no pg_config at $PG_CONFIG (set PG_CONFIG)"; return 1; }
	jobs="$(nproc 2>/dev/null || echo 2)"

	je_log "building job_engine for PostgreSQL $PG_MAJOR ($PG_CONFIG)"
	make -C "$JE_ROOT" -s -j"$jobs" PG_CONFIG="$PG_CONFIG" COPT="-Werror${JE_COPT:+ $JE_COPT}" all examples || return 1

	pglib="$("$PG_CONFIG" --pkglibdir)" || return 1   # /usr/lib/postgresql/NN/lib
	pglib="${pglib%/lib}"                              # /usr/lib/postgresql/NN
	pgshare="$("$PG_CONFIG" --sharedir)" || return 1   # /usr/share/postgresql/NN
	dest="$JE_TMP/install"

	je_log "installing into a private copy of PostgreSQL ($dest)"
	mkdir -p "$dest$(dirname "$pglib")" "$dest$(dirname "$pgshare")" || return 1
	cp -a "$pglib" "$dest$(dirname "$pglib")/" || return 1
	cp -a "$pgshare" "$dest$(dirname "$pgshare")/" || return 1

	if [ "$("$dest$pglib/bin/pg_config" --sharedir)" = "$dest$pgshare" ] &&
		[ "$("$dest$pglib/bin/pg_config" --pkglibdir)" = "$dest$pglib/lib" ]; then
		make -C "$JE_ROOT" -s PG_CONFIG="$PG_CONFIG" DESTDIR="$dest" install install-examples >/dev/null || return 1
		JE_BINDIR="$dest$pglib/bin"
		JE_PGXS_DIR="$dest$pglib/lib/pgxs"
	else
		je_warn "the PostgreSQL of $PG_CONFIG does not run from a copy (it was built without relocatable paths);
the scripts never install into the system: install job_engine there yourself (make install) and run make installcheck"
		return 1
	fi
	if [ ! -f "$("$JE_BINDIR/pg_config" --pkglibdir)/job_engine.so" ]; then
		je_warn "job_engine.so was not installed"
		return 1
	fi
	# Files created by root are 644/755 already; make sure of it anyway.
	if je_is_root && [ -d "$dest" ]; then
		chmod -R a+rX "$dest" || return 1
	fi
	export PATH="$JE_BINDIR:$PATH"
}

# Run psql (of the temp install) against the running cluster.
je_psql() {
	"$JE_BINDIR/psql" -X -h "$JE_SOCKDIR" -p "$JE_PORT" -U "$JE_PGUSER" "$@"
}

# je_start_cluster DATADIR PORT: initdb a throwaway cluster with job_engine
# and pg_cron preloaded, and start it.  Its socket directory is
# $JE_TMP/socket, its log $JE_TMP/log/server.log.
je_start_cluster() {
	local datadir="$1" port="$2"
	JE_DATADIR="$datadir"
	JE_PORT="$port"
	JE_SOCKDIR="$JE_TMP/socket"
	JE_SERVER_LOG="$JE_TMP/log/server.log"

	mkdir -p "$JE_SOCKDIR" "$JE_TMP/log" "$datadir" || return 1
	if je_is_root; then
		if ! id "$JE_OS_USER" >/dev/null 2>&1; then
			je_warn "OS user $JE_OS_USER does not exist (it comes with postgresql-$PG_MAJOR)"
			return 1
		fi
		chown "$JE_OS_USER:" "$JE_SOCKDIR" "$JE_TMP/log" "$datadir" || return 1
	fi
	chmod 700 "$datadir" || return 1

	je_log "initdb $datadir"
	if ! je_as_server_user "$JE_BINDIR/initdb" -D "$datadir" --auth=trust \
		--username="$JE_PGUSER" -E UTF8 --locale=C --no-sync \
		>"$JE_TMP/log/initdb.log" 2>&1; then
		cat "$JE_TMP/log/initdb.log" >&2
		je_warn "initdb failed"
		return 1
	fi

	je_as_server_user tee -a "$datadir/postgresql.conf" >/dev/null <<EOF || return 1

# throwaway cluster (scripts/lib.sh)
shared_preload_libraries = 'job_engine,pg_cron'
cron.database_name = '$JE_CRON_DATABASE'
# socket only: pg_cron runs schedules in background workers, not over TCP
cron.use_background_workers = on
job_engine.databases = '$JE_DATABASES'
listen_addresses = ''
unix_socket_directories = '$JE_SOCKDIR'
port = $port
max_worker_processes = 32
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%b@%d '
EOF

	je_log "starting PostgreSQL (socket directory $JE_SOCKDIR, port $port)"
	if ! je_as_server_user "$JE_BINDIR/pg_ctl" -D "$datadir" -l "$JE_SERVER_LOG" \
		-w -t 60 -s start; then
		JE_RUN_FAILED=1
		je_warn "the server did not start (log: $JE_SERVER_LOG)"
		return 1
	fi
	JE_CLUSTER_UP=1
}

# Stop the running cluster (fast shutdown).
je_stop_cluster() {
	[ "$JE_CLUSTER_UP" -eq 1 ] || return 0
	JE_CLUSTER_UP=0
	je_as_server_user "$JE_BINDIR/pg_ctl" -D "$JE_DATADIR" -m fast -w -t 60 -s stop ||
		je_warn "pg_ctl stop failed"
}

# Stop (immediate shutdown) every server whose data directory is below DIR:
# the temporary instances a suite stopped by a time limit or a signal leaves.
je_stop_servers_under() {
	local dir="$1" pidfile
	[ -d "$dir" ] || return 0
	while IFS= read -r pidfile; do
		je_as_server_user "$JE_BINDIR/pg_ctl" -D "$(dirname "$pidfile")" \
			-m immediate -w -t 60 -s stop >/dev/null 2>&1 || true
	done < <(find "$dir" -name postmaster.pid 2>/dev/null)
}

# Keep a file of a failed run in $JE_LOG_DIR and print its end.
je_keep_file() {
	local file="$1" name="${2:-$(basename "$1")}" lines="${3:-200}"
	[ -s "$file" ] || return 0
	mkdir -p "$JE_LOG_DIR"
	touch "$JE_LOG_DIR/.job_engine-logs"
	cp "$file" "$JE_LOG_DIR/$name"
	printf '\n----- %s (last %s lines; kept as %s) -----\n' "$name" "$lines" "$JE_LOG_DIR/$name"
	tail -n "$lines" "$file"
	printf -- '----- end of %s -----\n' "$name"
}

# Stop the cluster and remove the temp directory.  When the run failed, print
# and keep the server log first.  Safe to call more than once.
je_cleanup() {
	[ "$JE_CLEANED" -eq 0 ] || return 0
	JE_CLEANED=1
	if [ "$JE_KEEP_CLUSTER" -eq 1 ] && [ "$JE_CLUSTER_UP" -eq 1 ]; then
		return 0
	fi
	je_stop_cluster
	if [ -n "$JE_TMP" ] && [ -n "$JE_BINDIR" ]; then
		je_stop_servers_under "$JE_TMP"
	fi
	if [ "$JE_RUN_FAILED" -ne 0 ] && [ -n "$JE_SERVER_LOG" ]; then
		je_keep_file "$JE_SERVER_LOG" server.log
	fi
	if [ -n "$JE_TMP" ] && [ -d "$JE_TMP" ] && [ "${JE_KEEP_TMP:-0}" != 1 ]; then
		if [ "$JE_TMP_MADE" -eq 1 ]; then
			rm -rf "$JE_TMP"
		else
			# The caller's directory, empty when given: emptied again.
			find "$JE_TMP" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
		fi
	fi
}

je_on_signal() {
	if [ -n "$JE_CHILD_PID" ]; then
		kill -TERM "$JE_CHILD_PID" 2>/dev/null || true
		wait "$JE_CHILD_PID" 2>/dev/null || true
	fi
	echo "interrupted" >&2
	exit $((128 + $1))
}

je_on_exit() {
	local rc=$?
	[ "$rc" -eq 0 ] || JE_RUN_FAILED=1
	je_cleanup
	exit "$rc"
}

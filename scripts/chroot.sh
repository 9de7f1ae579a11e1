#!/usr/bin/env bash
#
# scripts/chroot.sh: run a command on a copy of this tree in a Debian chroot
# that has PostgreSQL MAJOR, for a version the host's Debian does not have.
#
#   scripts/chroot.sh MAJOR [CMD [ARG...]]     CMD defaults to scripts/test.sh
#
# `PG_MAJOR=18 scripts/test.sh` calls it when the host's apt knows no
# postgresql-18.  The chroot comes from the Debian suite that ships MAJOR
# (17: trixie, 18: sid, 15: bookworm), made with `mmdebstrap
# --variant=minbase` from the host's Debian mirror, and is kept for the next
# run in $JE_CHROOT_CACHE/SUITE.  CMD installs what it needs there itself
# (scripts/test.sh installs postgresql-MAJOR and the rest on its first run).
#
# Each run copies the tree to a fresh directory that is the chroot's /tmp,
# mounts /proc, /dev/pts and a tmpfs on /dev/shm (in a mount namespace of the
# run's own, so nothing stays mounted afterwards) and runs CMD there as root,
# with PG_MAJOR=MAJOR and JE_IN_CHROOT=1.  $JE_LOG_DIR is the host's: logs of
# a failed run are kept where a run on the host keeps them.
#
# Needs root.  Settings, from the environment:
#   JE_CHROOT_CACHE    where the chroots are kept (default
#                      $XDG_CACHE_HOME/job_engine-chroots when XDG_CACHE_HOME
#                      is set, else /var/cache/job_engine-chroots)
#   JE_CHROOT_SUITE    the Debian suite to use instead of MAJOR's
#   JE_DEBIAN_MIRROR   the Debian mirror (default: the host's, from
#                      /etc/apt/sources.list*, else http://deb.debian.org/debian)
#   JE_LOG_DIR, JE_PHASE_TIMEOUT, JE_FUZZ_SEED, PG_TEST_EXTRA,
#   PG_TEST_TIMEOUT_DEFAULT are passed on to CMD.
# Remove $JE_CHROOT_CACHE/SUITE to start again from nothing.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

[ "$#" -ge 1 ] || { sed -n '3,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
MAJOR="$1"
shift
[ "$#" -gt 0 ] || set -- scripts/test.sh
[[ "$MAJOR" =~ ^[0-9]+$ ]] || die "not a PostgreSQL major version: $MAJOR"
[ "$(id -u)" -eq 0 ] || die "PostgreSQL $MAJOR runs in a Debian chroot (scripts/chroot.sh) when it is not installed here, and that needs root (to make the chroot and mount in it).
Run as root, install postgresql-$MAJOR and postgresql-server-dev-$MAJOR (with its -cron and -pgtap packages), or set PG_CONFIG to the pg_config of a PostgreSQL $MAJOR installed some other way."

# The Debian suite whose PostgreSQL is MAJOR.  No Debian suite ships 16: it
# lived only in testing between two releases.
suite_for() {
	case "$1" in
		15) echo bookworm ;;
		17) echo trixie ;;
		18) echo sid ;;
		*) return 1 ;;
	esac
}

SUITE="${JE_CHROOT_SUITE:-}"
if [ -z "$SUITE" ] && ! SUITE="$(suite_for "$MAJOR")"; then
	die "no Debian suite ships PostgreSQL $MAJOR.
Install it on the host (e.g. from apt.postgresql.org) and run with
PG_CONFIG=/path/to/its/pg_config, or name a suite that has it in JE_CHROOT_SUITE."
fi

if [ -n "${JE_CHROOT_CACHE:-}" ]; then
	CACHE="$JE_CHROOT_CACHE"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
	CACHE="$XDG_CACHE_HOME/job_engine-chroots"
else
	CACHE=/var/cache/job_engine-chroots
fi
CHROOT="$CACHE/$SUITE"

# The host's Debian mirror: the URI of the apt source that serves the host's
# own suite (one-line sources.list or deb822 .sources files).
host_mirror() {
	local codename=""
	# shellcheck disable=SC1091
	codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
	[ -n "$codename" ] || return 0
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v s="$codename" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++
			if ($i ~ /\]$/) i++
			if ($(i + 1) == s) { print $i; exit }
		}'
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$codename" '
			function flush() { if (deb && uri != "" && (" " suites " ") ~ (" " s " ")) { print uri; exit } deb = 0; uri = ""; suites = "" }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { deb = ($0 ~ /[ \t]deb([ \t]|$)/) }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { $1 = ""; suites = $0 }
			END { flush() }' "$f"
	done
}
MIRROR="${JE_DEBIAN_MIRROR:-$(host_mirror | head -n 1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

# ---- the chroot ---------------------------------------------------------------

# Make the chroot of SUITE unless it exists.  It is made beside its final
# place and renamed when complete, so that an interrupted run leaves no
# half-made chroot behind.  Starting services is refused in it (a package's
# postinst would start a server on the host's network), and installing
# postgresql-NN creates no cluster.
make_chroot() {
	local new="$CHROOT.new" start
	[ -d "$CHROOT" ] && return 0
	if ! command -v mmdebstrap >/dev/null 2>&1; then
		log "installing mmdebstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap ||
			{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap; }
	fi
	start="$(date +%s)"
	log "making a $SUITE chroot in $CHROOT (from $MIRROR)"
	rm -rf --one-file-system "$new"
	# sid's Release file may be past its Valid-Until date on a mirror that
	# is a snapshot; the signature is still checked.
	mmdebstrap --variant=minbase --mode=root --format=directory \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		--aptopt='Acquire::Languages "none"' \
		"$SUITE" "$new" "$MIRROR"
	# (mmdebstrap removes a policy-rc.d made by a hook of its own.)
	printf '#!/bin/sh\n# scripts/chroot.sh: no services in this chroot\nexit 101\n' \
		>"$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	mkdir -p "$new/etc/postgresql-common/createcluster.d"
	echo 'create_main_cluster = false' >"$new/etc/postgresql-common/createcluster.d/job_engine.conf"
	mv "$new" "$CHROOT"
	log "made the $SUITE chroot in $(($(date +%s) - start)) s"
}

mkdir -p "$CACHE"
# One run makes the chroot; the others wait for it, then share it.  (CMD does
# not inherit the lock.)
exec {lock}>"$CACHE/$SUITE.lock"
flock -x "$lock"
make_chroot
flock -s "$lock"

# ---- the run ------------------------------------------------------------------

# lib.sh for JE_LOG_DIR and its helpers; PG_CONFIG names a host path, which
# means nothing in the chroot.
unset PG_CONFIG
# shellcheck disable=SC2034  # read by lib.sh
PG_MAJOR="$MAJOR"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
je_clear_stale_logs
mkdir -p "$JE_LOG_DIR"
JE_LOG_DIR="$(cd "$JE_LOG_DIR" && pwd)"

RUN="$(mktemp -d "${TMPDIR:-/tmp}/job_engine-chroot.XXXXXX")"
chmod 1777 "$RUN"
CHILD=""
# shellcheck disable=SC2317  # called by the traps
cleanup() {
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	[ "${JE_KEEP_TMP:-0}" = 1 ] || rm -rf --one-file-system "$RUN" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

je_copy_tree "$RUN/job_engine"
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true

# The variables CMD gets; nothing else of the caller's environment goes in.
ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	HOME=/root TERM="${TERM:-dumb}" PG_MAJOR="$MAJOR" JE_IN_CHROOT=1
	JE_LOG_DIR="$JE_LOG_DIR")
for var in JE_PHASE_TIMEOUT JE_FUZZ_SEED JE_KEEP_TMP PG_TEST_EXTRA PG_TEST_TIMEOUT_DEFAULT \
	http_proxy https_proxy no_proxy; do
	[ -z "${!var:-}" ] || ENV+=("$var=${!var}")
done

log "running $* in the $SUITE chroot (PostgreSQL $MAJOR)"
# In a mount namespace of its own: the mounts go away with the run.
# shellcheck disable=SC2016  # the script's variables are its own
unshare --mount --propagation private -- bash -euc '
	root="$1" run="$2" logdir="$3"
	shift 3
	mkdir -p "$root/proc" "$root/dev/pts" "$root/dev/shm" "$root/tmp"
	mount -t proc proc "$root/proc"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
	mount --bind "$run" "$root/tmp"
	mkdir -p "$root$logdir"
	mount --bind "$logdir" "$root$logdir"
	exec chroot "$root" /usr/bin/env -i "$@"
' - "$CHROOT" "$RUN" "$JE_LOG_DIR" "${ENV[@]}" \
	/bin/bash -c 'cd /tmp/job_engine && exec "$@"' - "$@" {lock}>&- &
CHILD=$!
rc=0
wait "$CHILD" || rc=$?
CHILD=""
exit "$rc"

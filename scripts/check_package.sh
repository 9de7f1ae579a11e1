#!/usr/bin/env bash
#
# scripts/check_package.sh: build the Debian package of job_engine for one
# PostgreSQL version and check that it works once installed.
#
#   scripts/check_package.sh        for PG_MAJOR (see scripts/lib.sh)
#
# 1. Builds postgresql-$PG_MAJOR-job-engine from debian/ in a copy of the
#    tree, as Debian builds extension packages: `pg_buildext updatecontrol`
#    for that one version (PG_SUPPORTED_VERSIONS), then `dpkg-buildpackage
#    -us -uc -b`.
# 2. In a throwaway root (an overlay on top of this system's root, its
#    changes in a tmpfs, seen only by a mount namespace of the script's own,
#    so nothing of it stays behind; inside scripts/chroot.sh that root is the
#    cached chroot, which stays as it is) installs the .deb with `dpkg -i`,
#    after removing any job_engine files found there, so that only the
#    package's files count.
# 3. There, with PostgreSQL's own binaries, makes a throwaway cluster that
#    preloads job_engine (and nothing else), runs CREATE EXTENSION
#    job_engine, checks that extversion is the control file's
#    default_version, registers a handler, submits a job as a non-superuser
#    role and waits (bounded) for it to succeed.
#
# Needs root (apt-get for the build dependencies, mount and chroot).  Without
# root it does nothing and exits 77 after saying why; scripts/test.sh
# reports the phase as skipped.  Exits 1 when the package does not build,
# does not install, or the job does not succeed.

set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SKIP=77
PKG="postgresql-$PG_MAJOR-job-engine"
BUILD_TOOLS=(dpkg-dev debhelper postgresql-server-dev-all)

skip() { printf 'SKIP: %s\n' "$*"; exit "$SKIP"; }

# ---- inside the throwaway root's mount namespace -----------------------------

# fresh_root DEB: (run by unshare, as root) lay the overlay, install DEB
# into it and run a job there.
fresh_root() {
	local deb="$1" root="$JE_TMP/root" layers="$JE_TMP/layers" rc=0
	mkdir -p "$root" "$layers"
	mount -t tmpfs -o mode=755 job_engine_layers "$layers"
	mkdir -p "$layers/upper" "$layers/work"
	mount -t overlay -o "lowerdir=/,upperdir=$layers/upper,workdir=$layers/work" \
		job_engine_root "$root"
	mount -t tmpfs -o mode=1777,nosuid,nodev job_engine_tmp "$root/tmp"
	mount --rbind /dev "$root/dev"
	mount -t proc proc "$root/proc"

	mkdir -p "$root/tmp/package"
	cp "$deb" "$root/tmp/package/"
	cp "$JE_ROOT/test/package/smoke.sql" "$root/tmp/package/"
	# The throwaway root is this system: job_engine files left here by a
	# `make install` would hide files missing from the package.
	chroot "$root" /bin/sh -ec "
		if dpkg-query -W -f='\${Status}' '$PKG' 2>/dev/null | grep -q 'ok installed'; then
			echo '$PKG is installed here already; purging it in the throwaway root'
			dpkg --purge '$PKG'
		fi
		for f in \$(/usr/lib/postgresql/$PG_MAJOR/bin/pg_config --pkglibdir)/job_engine.so \
			\$(/usr/lib/postgresql/$PG_MAJOR/bin/pg_config --pkglibdir)/bitcode/job_engine* \
			\$(/usr/lib/postgresql/$PG_MAJOR/bin/pg_config --sharedir)/extension/job_engine*; do
			[ -e \"\$f\" ] || continue
			echo \"removing \$f (not from the package) in the throwaway root\"
			rm -rf \"\$f\"
		done"

	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LC_ALL=C.UTF-8 LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
		/bin/bash -s "$PG_MAJOR" "$(basename "$deb")" "$PKG" <<'EOF' || rc=$?
set -euo pipefail
major="$1" deb="$2" pkg="$3"
bin="/usr/lib/postgresql/$major/bin"
data=/tmp/package/data sock=/tmp/package/socket log=/tmp/package/server.log
cd /tmp/package

stop() {
	if [ -f "$data/postmaster.pid" ]; then
		runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m immediate -w -s stop || true
	fi
}
failed() {
	local rc=$?
	stop
	if [ "$rc" -ne 0 ] && [ -s "$log" ]; then
		echo "----- server log -----"
		tail -n 100 "$log"
		echo "----- end of server log -----"
	fi
	exit "$rc"
}
trap failed EXIT

echo "==> dpkg -i $deb"
dpkg -i "/tmp/package/$deb"
dpkg-query -W -f='${Package} ${Version} ${Status}\n' "$pkg"

mkdir -p "$data" "$sock"
chown postgres: "$data" "$sock"
chmod 700 "$data"
chmod 777 /tmp/package
echo "==> initdb, with job_engine preloaded"
runuser -u postgres -- "$bin/initdb" -D "$data" --auth=trust -U postgres \
	-E UTF8 --locale=C --no-sync >/tmp/package/initdb.log 2>&1 ||
	{ cat /tmp/package/initdb.log; exit 1; }
cat >>"$data/postgresql.conf" <<CONF
shared_preload_libraries = 'job_engine'
job_engine.databases = 'postgres'
listen_addresses = ''
unix_socket_directories = '$sock'
fsync = off
CONF
runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start

echo "==> CREATE EXTENSION job_engine; a job as a non-superuser"
version="$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" \
	"$("$bin/pg_config" --sharedir)/extension/job_engine.control")"
runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -d postgres \
	-v version="$version" -f /tmp/package/smoke.sql
stop
EOF
	return "$rc"
}

if [ "${1:-}" = --fresh-root ]; then
	JE_TMP="$2"
	fresh_root "$3"
	exit
fi

# ---- preconditions ------------------------------------------------------------

command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian system (no dpkg)"
[ "$PG_CONFIG" = "$JE_DEBIAN_PG_CONFIG" ] ||
	skip "PG_CONFIG=$PG_CONFIG is not Debian's PostgreSQL $PG_MAJOR, which the package is built for"
if ! je_is_root; then
	missing=()
	for pkg in "${BUILD_TOOLS[@]}" "postgresql-$PG_MAJOR"; do
		je_pkg_installed "$pkg" || missing+=("$pkg")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		skip "building the package needs ${missing[*]}, which only root may install;" \
			"installing it needs root too (mount, chroot, dpkg -i)"
	fi
	skip "installing the package into a throwaway root needs root (mount, chroot, dpkg -i)"
fi

# ---- build --------------------------------------------------------------------

# The system's tools and PostgreSQL, as for any package build: not the
# private copy of PostgreSQL that scripts/test.sh puts first in PATH.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
je_init
# shellcheck disable=SC2034  # read by je_ensure_packages
JE_PACKAGES=("${BUILD_TOOLS[@]}" "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR")
je_ensure_packages

src="$JE_TMP/build/job-engine"
je_copy_tree "$src"
# For this version only: a debian/control with its package alone, and
# pg_buildext builds only it.
export PG_SUPPORTED_VERSIONS="$PG_MAJOR"
je_log "pg_buildext updatecontrol (PostgreSQL $PG_MAJOR)"
(cd "$src" && pg_buildext updatecontrol)
grep -q "^Package: $PKG\$" "$src/debian/control" ||
	je_die "debian/control names no package $PKG after pg_buildext updatecontrol"

je_log "dpkg-buildpackage -us -uc -b"
start=$SECONDS
if ! (cd "$src" && DEB_BUILD_OPTIONS="noautodbgsym parallel=$(nproc 2>/dev/null || echo 2)" \
	dpkg-buildpackage -us -uc -b) >"$JE_TMP/build.log" 2>&1; then
	je_keep_file "$JE_TMP/build.log" package-build.log 60
	je_die "dpkg-buildpackage failed (log: $JE_LOG_DIR/package-build.log)"
fi
je_log "built in $((SECONDS - start)) s"
debs=("$JE_TMP/build/${PKG}_"*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ ! -f "${debs[0]}" ]; then
	ls -l "$JE_TMP/build" >&2
	je_die "expected one ${PKG}_*.deb"
fi
dpkg-deb --info "${debs[0]}" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'

# ---- install and run ------------------------------------------------------------

je_log "installing ${debs[0]##*/} into a throwaway root"
start=$SECONDS
# The mounts stay in a namespace of their own: its mounts are made private
# (none propagates back).  In scripts/chroot.sh's chroot, whose root is no
# mount point, they are already private in the namespace that chroot.sh made.
propagation=private
[ -z "${JE_IN_CHROOT:-}" ] || propagation=unchanged
unshare --mount --propagation "$propagation" -- \
	env PG_MAJOR="$PG_MAJOR" "$0" --fresh-root "$JE_TMP" "${debs[0]}"
je_log "package ok: dpkg -i, CREATE EXTENSION and a job in $((SECONDS - start)) s"

#!/usr/bin/env bash
#
# scripts/test.sh: build job_engine, install it into a private copy of
# PostgreSQL and run every test suite against throwaway clusters.
#
#   scripts/test.sh                    every phase, on the distribution's
#                                      PostgreSQL (15 on Debian 12)
#   PG_MAJOR=18 scripts/test.sh        on PostgreSQL 18; a version that the
#                                      host's Debian lacks is tested in a
#                                      Debian chroot (scripts/chroot.sh)
#   scripts/test.sh regress pgtap      only these phases
#   scripts/test.sh pgtap:submit       only test/pgtap/040_submit.sql (likewise
#                                      regress:NAME, isolation:NAME, tap:NAME;
#                                      NAME may leave out the NNN_ prefix,
#                                      or be the number alone: tap:150)
#   scripts/test.sh --quick            regress, pgtap and isolation only
#
# Phases, in order (a phase without files is skipped); regress, pgtap,
# isolation and tap are targets of the Makefile, each run against a temporary
# instance of its own:
#   layering   src/*.c                              scripts/check_layering.sh
#   release    META.json, job_engine.control,       scripts/check_release.sh
#              debian/changelog: one version
#   scripts    scripts/lib.sh: what it promises      scripts/check_scripts.sh
#              about the environment (JE_TMP)
#   regress    sql/*.sql + expected/*.out           make installcheck-regress
#   pgtap      test/pgtap/*.sql                     make installcheck-pgtap
#   isolation  test/specs/*.spec + test/expected/   make installcheck-isolation
#   tap        test/t/*.pl                          make installcheck-tap
#   demo       scripts/demo.sh --short
#   package    debian/: build the .deb, dpkg -i it  scripts/check_package.sh
#              into a throwaway root, run a job there
#              (root only: skipped, saying why, for
#              another user)
#
# The targets run in a copy of the source tree ($JE_TMP/src), against the
# private copy of PostgreSQL, as the server's OS user.  Every phase runs even
# when an earlier one failed; the exit status is non-zero if any failed.  The
# last line printed is "N passed, N failed", counting test files (suites).
# Logs and diffs of a failed run are printed and kept in $JE_LOG_DIR.
#
# Environment: see scripts/lib.sh (PG_MAJOR, PG_CONFIG, JE_LOG_DIR, ...) and
# scripts/chroot.sh (JE_CHROOT_CACHE, ...); also JE_PHASE_TIMEOUT (seconds per phase,
# default 1200), PG_TEST_EXTRA / PG_TEST_TIMEOUT_DEFAULT for TAP tests and
# JE_FUZZ_SEED for test/t/090_fuzz.pl.

set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_PHASES=(layering release scripts regress pgtap isolation tap demo package)
JE_PHASE_TIMEOUT="${JE_PHASE_TIMEOUT:-1200}"

usage() {
	sed -n '3,/^$/s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

# ---- arguments --------------------------------------------------------------

declare -A WANT=()      # phase -> 1
declare -A ONLY=()      # phase -> space separated names (empty: all files)
for arg in "$@"; do
	case "$arg" in
		-h | --help) usage 0 ;;
		--quick) WANT[regress]=1 WANT[pgtap]=1 WANT[isolation]=1 ;;
		*:*)
			phase="${arg%%:*}" name="${arg#*:}"
			case " ${ALL_PHASES[*]} " in *" $phase "*) ;; *) usage 2 >&2 ;; esac
			WANT[$phase]=1
			ONLY[$phase]="${ONLY[$phase]:-} $name"
			;;
		*)
			case " ${ALL_PHASES[*]} " in *" $arg "*) ;; *) echo "unknown phase: $arg" >&2; usage 2 >&2 ;; esac
			WANT[$arg]=1
			;;
	esac
done
if [ "${#WANT[@]}" -eq 0 ]; then
	for phase in "${ALL_PHASES[@]}"; do WANT[$phase]=1; done
fi

# A version of PostgreSQL that the host's Debian does not have is tested in a
# Debian chroot that has it.
if je_needs_chroot; then
	exec "$JE_ROOT/scripts/chroot.sh" "$PG_MAJOR" scripts/test.sh "$@"
fi

cd "$JE_ROOT"

# ---- bookkeeping ------------------------------------------------------------

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

# record PHASE PASSED FAILED [NOTE]
record() {
	local phase="$1" passed="$2" failed="$3" note="${4:-}"
	TOTAL_PASSED=$((TOTAL_PASSED + passed))
	TOTAL_FAILED=$((TOTAL_FAILED + failed))
	if [ "$failed" -gt 0 ]; then
		JE_RUN_FAILED=1
		SUMMARY+=("$(printf '  %-10s FAIL  ok %d, not ok %d %s' "$phase" "$passed" "$failed" "$note")")
	else
		SUMMARY+=("$(printf '  %-10s ok    ok %d, not ok %d %s' "$phase" "$passed" "$failed" "$note")")
	fi
}

skip() {
	SUMMARY+=("$(printf '  %-10s skip  %s' "$1" "$2")")
}

# files PHASE GLOB...: the existing files of a phase, sorted, restricted to
# the names given on the command line as PHASE:NAME.  NAME is a file's name
# without its extension, with or without its number: pgtap:submit and
# pgtap:040_submit both name test/pgtap/040_submit.sql.
# names_file NAME FILE: whether PHASE:NAME picks FILE: NAME is the file's
# name without its extension, without its NNN_ prefix too, or that number.
names_file() {
	local name="$1" base
	base="$(basename "$2")"
	base="${base%.*}"
	[ "$name" = "$base" ] && return 0
	[[ "$base" =~ ^([0-9][0-9][0-9])_(.*)$ ]] || return 1
	[ "$name" = "${BASH_REMATCH[1]}" ] || [ "$name" = "${BASH_REMATCH[2]}" ]
}

files() {
	local phase="$1" f name picked
	shift
	for f in "$@"; do
		[ -e "$f" ] || continue
		if [ -n "${ONLY[$phase]:-}" ]; then
			picked=0
			for name in ${ONLY[$phase]}; do
				if names_file "$name" "$f"; then picked=1; fi
			done
			[ "$picked" = 1 ] || continue
		fi
		printf '%s\n' "$f"
	done | LC_ALL=C sort
}

# A PHASE:NAME that names no file is a typing error, not an empty phase.
for phase in regress pgtap isolation tap; do
	for name in ${ONLY[$phase]:-}; do
		case "$phase" in
			regress) list=(sql/*.sql) ;;
			pgtap) list=(test/pgtap/*.sql) ;;
			isolation) list=(test/specs/*.spec) ;;
			tap) list=(test/t/*.pl) ;;
		esac
		found=0
		for f in "${list[@]}"; do
			if names_file "$name" "$f"; then found=1; fi
		done
		[ "$found" = 1 ] || je_die "$phase:$name names no file (give the file's name without its extension, without its NNN_ prefix too, or that number alone)"
	done
done

# Run a command with the phase time limit, its output to the terminal and to
# a file.  Returns the command's status.
run_logged() {
	local out="$1"
	shift
	je_run_logged "$out" "$JE_PHASE_TIMEOUT" "$@"
}

# keep_results PHASE OUTDIR EXPECTEDDIR NAME...: after a failed pg_regress
# style run, print the diffs and the end of the server log, keep results/ in
# $JE_LOG_DIR and say which expected files are missing.
keep_results() {
	local phase="$1" out="$2" expected="$3" name
	shift 3
	je_keep_file "$out/regression.diffs" "$phase.regression.diffs" 400
	je_keep_file "$out/log/postmaster.log" "$phase.server.log"
	if [ -d "$out/results" ]; then
		mkdir -p "$JE_LOG_DIR/$phase-results"
		cp -a "$out/results/." "$JE_LOG_DIR/$phase-results/"
	fi
	for name in "$@"; do
		if [ ! -f "$expected/$name.out" ] && [ -f "$out/results/$name.out" ]; then
			echo "$phase: no expected output $expected/$name.out; the output was:"
			sed 's/^/    /' "$out/results/$name.out"
			echo "    (kept as $JE_LOG_DIR/$phase-results/$name.out)"
		fi
	done
}

# count_harness OUTPUT NFILES RC: "passed failed" from a TAP::Harness run (prove,
# pg_prove): a file passed when its line says "ok" or "skipped".
count_harness() {
	local out="$1" n="$2" rc="$3" passed failed
	passed="$(grep -cE '^[^ ]+ \.+ (ok|skipped)' "$out" || true)"
	[ "$passed" -le "$n" ] || passed="$n"
	failed=$((n - passed))
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
	echo "$passed $failed"
}

# count_regress OUTPUT NFILES RC: "passed failed" from the output of
# pg_regress or pg_isolation_regress.  Up to PostgreSQL 15 a test's line ends
# in "... ok" or "... FAILED"; from 16 on it is a TAP line, "ok 1 - name" or
# "not ok 1 - name" ("+" instead of "-" in a parallel group).
count_regress() {
	local out="$1" n="$2" rc="$3" passed failed
	passed="$(grep -cE '\.\.\. +(ok|failed \(ignored\))( |$)|^ok [0-9]+ +[-+] ' "$out" || true)"
	failed="$(grep -cE '\.\.\. +FAILED|^not ok [0-9]+ +[-+] ' "$out" || true)"
	if [ $((passed + failed)) -lt "$n" ] && [ "$rc" -ne 0 ]; then
		failed=$((n - passed))
	fi
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
	echo "$passed $failed"
}

# ---- build ------------------------------------------------------------------

je_init
je_ensure_packages
if ! je_build_and_install; then
	JE_RUN_FAILED=1
	echo
	echo "build FAILED (PostgreSQL $PG_MAJOR)"
	echo "0 passed, 1 failed"
	exit 1
fi
PG_VERSION_TESTED="$("$JE_BINDIR/pg_config" --version)"


mapfile -t REGRESS_FILES < <(files regress sql/*.sql)
mapfile -t PGTAP_FILES < <(files pgtap test/pgtap/*.sql)
mapfile -t SPEC_FILES < <(files isolation test/specs/*.spec)
mapfile -t TAP_FILES < <(files tap test/t/*.pl)


# The Makefile's targets write results, diffs and temporary instances where
# they run: in a copy of the source tree that the server's OS user owns.
SRC="$JE_TMP/src"
je_copy_tree "$SRC"
if je_is_root; then chown -R "$JE_OS_USER:" "$SRC"; fi

# `runuser_or_exec CMD...` runs CMD as the server's OS user (servers refuse
# to run as root).  It is a program, so that the phase time limit applies.
mkdir -p "$JE_TMP/bin"
if je_is_root; then
	cat >"$JE_TMP/bin/runuser_or_exec" <<EOF
#!/bin/sh
exec runuser -u '$JE_OS_USER' -- "\$@"
EOF
else
	printf '#!/bin/sh\nexec "$@"\n' >"$JE_TMP/bin/runuser_or_exec"
fi
chmod 755 "$JE_TMP/bin/runuser_or_exec"

# run_target LOG TARGET VAR=VALUE...: `make TARGET` in the copy, against the
# private copy of PostgreSQL, as the server's OS user.  Returns its status.
run_target() {
	local log="$1" target="$2"
	shift 2
	run_logged "$log" "$JE_TMP/bin/runuser_or_exec" env \
		"PATH=$JE_BINDIR:$PATH" \
		"PG_TEST_EXTRA=${PG_TEST_EXTRA:-}" \
		${PG_TEST_TIMEOUT_DEFAULT:+"PG_TEST_TIMEOUT_DEFAULT=$PG_TEST_TIMEOUT_DEFAULT"} \
		${JE_FUZZ_SEED:+"JE_FUZZ_SEED=$JE_FUZZ_SEED"} \
		make -C "$SRC" --no-print-directory PG_CONFIG="$JE_BINDIR/pg_config" \
		"$target" "$@"
}

# names SUFFIX FILE...: the files' names without directory and SUFFIX.
names() {
	local suffix="$1" f
	shift
	for f in "$@"; do basename "$f" "$suffix"; done
}

# ---- regress ----------------------------------------------------------------

phase_regress() {
	local names rc=0 counts
	mapfile -t names < <(names .sql "${REGRESS_FILES[@]}")
	je_log "regress: make installcheck-regress REGRESS='${names[*]}'"
	run_target "$JE_TMP/regress.log" installcheck-regress "REGRESS=${names[*]}" || rc=$?
	counts="$(count_regress "$JE_TMP/regress.log" "${#names[@]}" "$rc")"
	# shellcheck disable=SC2086
	record regress $counts
	if [ "$rc" -ne 0 ]; then
		keep_results regress "$SRC" "$JE_ROOT/expected" "${names[@]}"
	fi
}

# ---- pgtap ------------------------------------------------------------------

phase_pgtap() {
	local rc=0 counts
	je_log "pgtap: make installcheck-pgtap PGTAP_TESTS='${PGTAP_FILES[*]}'"
	run_target "$JE_TMP/pgtap.log" installcheck-pgtap "PGTAP_TESTS=${PGTAP_FILES[*]}" || rc=$?
	counts="$(count_harness "$JE_TMP/pgtap.log" "${#PGTAP_FILES[@]}" "$rc")"
	# shellcheck disable=SC2086
	record pgtap $counts
	if [ "$rc" -ne 0 ]; then
		je_keep_file "$SRC/tmp_check_pgtap/log/postmaster.log" pgtap.server.log
	fi
}

# ---- isolation --------------------------------------------------------------

phase_isolation() {
	local names rc=0 counts
	mapfile -t names < <(names .spec "${SPEC_FILES[@]}")
	je_log "isolation: make installcheck-isolation ISOLATION='${names[*]}'"
	run_target "$JE_TMP/isolation.log" installcheck-isolation "ISOLATION=${names[*]}" || rc=$?
	counts="$(count_regress "$JE_TMP/isolation.log" "${#names[@]}" "$rc")"
	# shellcheck disable=SC2086
	record isolation $counts
	if [ "$rc" -ne 0 ]; then
		keep_results isolation "$SRC/output_iso" "$JE_ROOT/test/expected" "${names[@]}"
	fi
}

# ---- tap --------------------------------------------------------------------

# PostgreSQL::Test::Cluster starts each test's nodes with the binaries first
# in PATH (those of the private copy); their logs are in tmp_check/log.
phase_tap() {
	local logdir="$SRC/tmp_check/log" rc=0 counts f name log
	je_log "tap: make installcheck-tap PROVE_TESTS='${TAP_FILES[*]}'"
	run_target "$JE_TMP/tap.log" installcheck-tap "PROVE_TESTS=${TAP_FILES[*]}" || rc=$?
	counts="$(count_harness "$JE_TMP/tap.log" "${#TAP_FILES[@]}" "$rc")"
	# shellcheck disable=SC2086
	record tap $counts
	if [ "$rc" -ne 0 ] && [ -d "$logdir" ]; then
		# Keep every log; print those of the failed tests.
		mkdir -p "$JE_LOG_DIR/tap"
		touch "$JE_LOG_DIR/.job_engine-logs"
		cp -a "$logdir/." "$JE_LOG_DIR/tap/"
		for f in "${TAP_FILES[@]}"; do
			grep -qE "^$f \.+ (ok|skipped)" "$JE_TMP/tap.log" && continue
			name="$(basename "$f" .pl)"
			for log in "$logdir/regress_log_$name" "$logdir/${name}"_*.log; do
				[ -f "$log" ] && je_keep_file "$log" "tap/$(basename "$log")" 100
			done
		done
	fi
	return 0
}

# check_phase PHASE SCRIPT: a phase that is one check script of the tree,
# passed or failed as a whole.
check_phase() {
	local phase="$1" script="$2" rc=0
	je_log "$phase: $script"
	run_logged "$JE_TMP/$phase.log" "$JE_ROOT/$script" || rc=$?
	if [ "$rc" -eq 0 ]; then record "$phase" 1 0; else record "$phase" 0 1; fi
}

# ---- layering ---------------------------------------------------------------

# The C modules call one way: no cycle in their #include graph, and each
# header declares only what its own .c file defines.
phase_layering() { check_phase layering scripts/check_layering.sh; }

# ---- release ----------------------------------------------------------------

# The files that name job_engine's version name the same one.
phase_release() { check_phase release scripts/check_release.sh; }

# ---- scripts ----------------------------------------------------------------

# scripts/lib.sh keeps its promises about the environment (JE_TMP).
phase_scripts() { check_phase scripts scripts/check_scripts.sh; }

# ---- demo -------------------------------------------------------------------

phase_demo() {
	local rc=0
	je_log "demo: scripts/demo.sh --short"
	run_logged "$JE_TMP/demo.log" env JE_LOG_DIR="$JE_LOG_DIR/demo" \
		"$JE_ROOT/scripts/demo.sh" --short || rc=$?
	if [ "$rc" -eq 0 ]; then record demo 1 0; else record demo 0 1; fi
}

# ---- package ----------------------------------------------------------------

# The Debian package of this version of PostgreSQL, built and installed into
# a throwaway root.  scripts/check_package.sh exits 77 (and says why) where
# it cannot run: not root, not Debian.
phase_package() {
	local rc=0
	je_log "package: scripts/check_package.sh"
	run_logged "$JE_TMP/package.log" env JE_LOG_DIR="$JE_LOG_DIR/package" PG_MAJOR="$PG_MAJOR" \
		"$JE_ROOT/scripts/check_package.sh" || rc=$?
	case "$rc" in
		0) record package 1 0 ;;
		77) skip package "$(sed -n 's/^SKIP: //p' "$JE_TMP/package.log" | tail -n 1)" ;;
		*) record package 0 1 ;;
	esac
}

# ---- run --------------------------------------------------------------------

run_phase() {
	local phase="$1" count="$2" what="$3"
	[ -n "${WANT[$phase]:-}" ] || return 0
	if [ "$count" -eq 0 ]; then
		skip "$phase" "(no $what)"
		return 0
	fi
	"phase_$phase" || record "$phase" 0 1 "(harness error)"
	# A suite stopped by the time limit may leave its instance running.
	je_stop_servers_under "$SRC"
}

run_phase layering 1 "src/*.c"
release_count=0
[ -f META.json ] && release_count=1
run_phase release "$release_count" "META.json"
run_phase scripts 1 "scripts/lib.sh"
run_phase regress "${#REGRESS_FILES[@]}" "sql/*.sql"
run_phase pgtap "${#PGTAP_FILES[@]}" "test/pgtap/*.sql"
run_phase isolation "${#SPEC_FILES[@]}" "test/specs/*.spec"
run_phase tap "${#TAP_FILES[@]}" "test/t/*.pl"
demo_count=0
[ -x "$JE_ROOT/scripts/demo.sh" ] && demo_count=1
run_phase demo "$demo_count" "scripts/demo.sh"
package_count=0
[ -f debian/control.in ] && package_count=1
run_phase package "$package_count" "debian/control.in"

# Clean up now, so that the summary is the last thing printed.
je_cleanup

echo
echo "summary ($PG_VERSION_TESTED):"
printf '%s\n' "${SUMMARY[@]}"
if [ "$TOTAL_FAILED" -ne 0 ] && [ -d "$JE_LOG_DIR" ]; then
	echo "  logs and diffs of failures: $JE_LOG_DIR"
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]

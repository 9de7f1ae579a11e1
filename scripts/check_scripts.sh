#!/usr/bin/env bash
#
# scripts/check_scripts.sh: check what scripts/lib.sh promises the callers
# of scripts/test.sh and scripts/demo.sh about their environment.
#
#   scripts/check_scripts.sh        exits non-zero and names each broken
#                                   promise
#
# JE_TMP (see lib.sh's header): a caller's JE_TMP is the temp directory
# je_init() uses, never replaced by one of its own: a new one is made and
# removed at exit, an empty one is used and emptied at exit, a non-empty
# one or a path too long for the cluster's socket is refused and left as it
# was; a script it runs does not inherit it; without JE_TMP a new
# directory is made under TMPDIR and removed at exit.
#
# Each case sources lib.sh in a bash of its own and calls je_init(), as the
# scripts do, with JE_LOG_DIR and TMPDIR in a scratch directory.  Needs bash
# and coreutils; as root, runuser (the server's OS user must reach JE_TMP).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

errors=0
fail() { printf 'check_scripts: %s\n' "$*" >&2; errors=$((errors + 1)); }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/je-check-scripts.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# As root, je_init checks that the server's OS user reaches JE_TMP.
chmod 755 "$scratch"
mkdir "$scratch/tmpdir"

# init ENV...: runs je_init() with the environment ENV (env's arguments) and
# prints the JE_TMP it chose, whether that exists then, and what a script it
# runs sees of JE_TMP.  Exits as je_init's script does.
init() {
	# shellcheck disable=SC2016  # the inner script's variables are its own
	env "$@" JE_LOG_DIR="$scratch/logs" TMPDIR="$scratch/tmpdir" bash -c '
		set -euo pipefail
		. "$1/scripts/lib.sh"
		je_init
		echo "tmp=$JE_TMP"
		[ -d "$JE_TMP" ] && echo "exists"
		bash -c "echo \"child=\${JE_TMP:-}\""
	' - "$ROOT" 2>"$scratch/stderr"
}

# A new directory: used, and removed at exit.
given="$scratch/new"
out="$(init JE_TMP="$given")" || fail "a new JE_TMP was refused: $(cat "$scratch/stderr")"
[ "$out" = "tmp=$given"$'\n'"exists"$'\n'"child=" ] ||
	fail "JE_TMP=$given (new): je_init printed [$out], not tmp=$given, exists, child= (nothing)"
[ ! -e "$given" ] || fail "JE_TMP=$given (new) is left after exit"

# An empty directory, exported: used, not passed on, emptied at exit.
given="$scratch/empty"
mkdir "$given"
out="$(export JE_TMP="$given" && init)" || fail "an empty JE_TMP was refused: $(cat "$scratch/stderr")"
[ "$out" = "tmp=$given"$'\n'"exists"$'\n'"child=" ] ||
	fail "JE_TMP=$given (empty, exported): je_init printed [$out], not tmp=$given, exists, child= (nothing)"
if [ ! -d "$given" ] || [ -n "$(ls -A "$given")" ]; then
	fail "JE_TMP=$given (empty) is not left empty after exit"
fi

# A directory with something in it: refused, untouched.
given="$scratch/full"
mkdir "$given"
touch "$given/keep"
if out="$(init JE_TMP="$given")"; then
	fail "JE_TMP=$given (not empty) was accepted: [$out]"
fi
grep -q 'not an empty directory' "$scratch/stderr" ||
	fail "JE_TMP=$given (not empty): no error saying so: $(cat "$scratch/stderr")"
[ -e "$given/keep" ] || fail "JE_TMP=$given (not empty) lost its file"

# Too long for the socket: refused.
given="$scratch/$(printf 'x%.0s' {1..80})"
if out="$(init JE_TMP="$given")"; then
	fail "JE_TMP=$given (too long) was accepted: [$out]"
fi
[ ! -e "$given" ] || fail "JE_TMP=$given (too long) was created"

# No JE_TMP: a new directory under TMPDIR, removed at exit.
out="$(init -u JE_TMP)" || fail "je_init without JE_TMP failed: $(cat "$scratch/stderr")"
case "$out" in
	"tmp=$scratch/tmpdir/job_engine."*$'\n'"exists"$'\n'"child=") ;;
	*) fail "without JE_TMP: je_init printed [$out], not a new directory under TMPDIR" ;;
esac
[ -z "$(ls -A "$scratch/tmpdir")" ] || fail "without JE_TMP: the temp directory is left after exit"

if [ "$errors" -ne 0 ]; then
	exit 1
fi
echo "check_scripts: JE_TMP is used as given, refused when unsafe, and made when not given"

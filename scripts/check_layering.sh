#!/usr/bin/env bash
#
# scripts/check_layering.sh: check that the C modules of src/ call each other
# one way only.
#
#   scripts/check_layering.sh          print the modules in call order, top first
#
# The module dependency graph is read from the `#include "x.h"` lines of
# src/*.c: foo.c including bar.h (bar.h being in src/) is an edge foo -> bar.
# tsort (coreutils) orders the graph and fails on a cycle, printing the
# modules that form it.  Also checks that every function a module's header
# declares with `extern` is defined in that module's .c file (foo.h <->
# foo.c), so that no header hides another module's functions (job_engine.h,
# the public API for native handlers, declares the handlers' functions and is
# left out of that check).
#
# Exits non-zero on a cycle or a misplaced declaration.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../src"

status=0

# -- the graph: "from to" pairs for tsort ------------------------------------
edges() {
	for c in *.c; do
		mod="${c%.c}"
		# Every module is a node, even one that includes nothing of ours.
		printf '%s %s\n' "$mod" "$mod"
		sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$c" | while read -r dep; do
			[ -f "$dep.h" ] && printf '%s %s\n' "$mod" "$dep"
		done
	done
}

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
if ! order="$(edges | tsort 2>"$errors")"; then
	echo "check_layering: the modules of src/ include each other in a circle:" >&2
	grep -v 'input contains a loop:$' "$errors" | sed 's/^tsort: /  /' >&2
	status=1
fi

# -- each function declared in its own module's header ------------------------
for h in *.h; do
	mod="${h%.h}"
	[ "$h" != job_engine.h ] || continue
	# extern declarations of functions: the name before the first '('.
	for fn in $(sed -n 's/^extern[^(]*[ *]\([a-zA-Z_][a-zA-Z0-9_]*\)(.*/\1/p' "$h"); do
		if ! grep -qs "^$fn(" "$mod.c"; then
			echo "check_layering: $h declares $fn(), which $mod.c does not define" >&2
			status=1
		fi
	done
done

if [ "$status" -eq 0 ]; then
	echo "check_layering: no circle; modules in call order (callers first):"
	echo "$order" | tr '\n' ' ' | sed 's/ $/\n/'
fi
exit "$status"

#!/usr/bin/env bash
# The man pages (made at build time by help2man) name every option the
# programs' --help lists, and have the hand-written sections.
# Usage: man_check.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
status=0
for program in fib_server fib_perf; do
  page="$build/man/$program.1"
  if [ ! -s "$page" ]; then
    echo "man_check: $page was not made (help2man missing? bash scripts/setup.sh installs it)" >&2
    exit 1
  fi
  text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")  # roff's escaped dashes and fonts, as they read
  for option in $("$build/bin/$program" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -qF -- "$option" <<<"$text" || { echo "man_check: $program(1) lacks $option" >&2; status=1; }
  done
  for section in NAME SYNOPSIS OPTIONS PROTOCOL SIGNALS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
    grep -qE "^\.SH \"?$section\"?$" "$page" || { echo "man_check: $program(1) lacks $section" >&2; status=1; }
  done
done
[ "$status" -eq 0 ] && echo "man_check: PASS"
exit "$status"

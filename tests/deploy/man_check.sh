#!/usr/bin/env bash
# The man pages (made at build time by help2man) name every option the
# programs' --help lists, have the hand-written sections, and record nothing
# of the machine that built them: made again on one CPU they are the same.
# Usage: man_check.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
  # The defaults that count the CPUs this process may use say 1 under
  # `taskset -c 0`: a page that kept the count would differ (its date aside).
  if ! taskset -c 0 true 2>/dev/null || ! command -v help2man >/dev/null; then
    echo "man_check: taskset or help2man unusable here: $program(1) not made again on one CPU"
  else
    taskset -c 0 bash "$source_dir/man/make_page.sh" help2man "$build/bin/$program" "$source_dir/man/$program.h2m" \
      "$work/$program.1"
    if ! diff <(grep -v '^\.TH ' "$page") <(grep -v '^\.TH ' "$work/$program.1") >"$work/diff"; then
      echo "man_check: $program(1) depends on the CPUs of the machine that made it (man/make_page.sh):" >&2
      cat "$work/diff" >&2
      status=1
    fi
  fi
done
[ "$(nproc)" -gt 1 ] || echo "man_check: one CPU here, so the page made on one CPU proves nothing"
[ "$status" -eq 0 ] && echo "man_check: PASS"
exit "$status"

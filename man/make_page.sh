#!/usr/bin/env bash
# Makes a program's man page with help2man from its --help and --version,
# with the hand-written sections of man/PROGRAM.h2m. A page describes the
# program wherever it is installed, so nothing of the machine that built it
# may stay in it: the defaults that --help gives as the CPUs this process
# may use ("the CPUs this process may use, 2") lose the build machine's
# count. tests/deploy/man_check.sh makes the page again on one CPU and finds
# it the same.
# Usage: make_page.sh HELP2MAN PROGRAM H2M OUTPUT
set -euo pipefail
help2man=$1 program=$2 include=$3 output=$4
"$help2man" --no-info --include "$include" --output "$output.tmp" "$program"
sed -e 's/\(the CPUs this process may use\), [0-9][0-9]*/\1/g' "$output.tmp" >"$output"
rm -f "$output.tmp"

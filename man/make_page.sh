#!/usr/bin/env bash
# Makes a program's man page with help2man from its --help and --version,
# with the hand-written sections of man/PROGRAM.h2m: the one recipe CMake
# and tests/deploy/man_check.sh both use. A page describes the program
# wherever it is installed, so --help says nothing of the machine it runs on
# (the CPUs it may use are named, not counted); man_check makes the page
# again on one CPU and finds it the same.
# Usage: make_page.sh HELP2MAN PROGRAM H2M OUTPUT
set -euo pipefail
help2man=$1 program=$2 include=$3 output=$4
"$help2man" --no-info --include "$include" --output "$output" "$program"

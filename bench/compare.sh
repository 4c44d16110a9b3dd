#!/usr/bin/env bash
# The whole comparison in one command: fib_server in each mode against Go's
# goroutines, Python's threads (CPython and PyPy), Python's coroutines with
# a process pool, the thread-per-connection floor and the two io_uring floors
# (bench/peers/), the same client for all (and a second one, bench/min_client,
# for the floor section's closed loops), servers alternating round by round.
# fib_server's uring mode is measured once fib_server has it. Installs what it
# needs from Debian, builds, measures (bench/compare.py) and writes
# bench/results/: results.md, results.json, sweep_*.png. About 28 minutes on
# two cores; QUICK=1 takes about 90 seconds.
#
# Usage: bash bench/compare.sh
#   environment: QUICK=1, ROUNDS (3), RUN_SECONDS (3), IDLE (10000),
#   SECTIONS (a subset of table,sweep,floor,connections,demo,client),
#   OUT (bench/results for a full run, which also updates the README and docs/performance.md;
#   build/compare otherwise), BIN (build/bin; when set, nothing is built),
#   BASELINE (another fib_server binary, measured beside the thread mode),
#   CPU_SOURCE (auto; clock or stat: no cgroup, see bench/compare.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install_packages.sh python3 golang-go pypy3 gnuplot-nox gcc libc6-dev liburing-dev
if [ -z "${BIN:-}" ]; then
  bash scripts/setup.sh >/dev/null
fi
exec python3 bench/compare.py

#!/usr/bin/env bash
# Installs what the build needs from Debian's packages (only what is
# missing), and nc for trying the server by hand, then configures once and
# builds into build/. With "test", also what the test suite runs: haproxy,
# systemd-analyze, prometheus, what builds and checks the Debian package
# (dpkg-shlibdeps, file, lintian, man), and the other servers of
# bench/compare.sh (python3, go, pypy3, gnuplot). Safe to run again: with
# everything in place it only runs an incremental build. Says what it is
# doing, step by step, with the time taken so far.
# Usage: bash scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# prometheus-cpp-dev serves --metrics; liburing-dev, --mode uring; help2man makes the man pages;
# netcat-openbsd: the README's first example after the Quick start is `nc -N`.
packages=(g++ make cmake libc6-dev libfmt-dev libspdlog-dev libcli11-dev libasio-dev prometheus-cpp-dev liburing-dev
  libgtest-dev libbenchmark-dev help2man netcat-openbsd)
[ "${1:-}" = test ] && packages+=(haproxy systemd prometheus dpkg-dev file lintian man-db python3 golang-go pypy3
  gnuplot-nox)
started=$SECONDS
step() { echo "== setup.sh: $* ($((SECONDS - started)) s so far)" >&2; }

step "1/3 Debian packages (only the missing ones are installed)"
bash scripts/install_packages.sh "${packages[@]}"

# A build directory copied along with the sources belongs to another tree.
if [ -f build/CMakeCache.txt ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" build/CMakeCache.txt; then
  rm -rf build
fi
if [ ! -f build/CMakeCache.txt ]; then
  step "configuring build/"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
# The programs first, so that the server can start as soon as they are
# built; the tests and micro-benchmarks only for "test".
step "2/3 building fib_server and fib_perf"
cmake --build build -j "$(nproc)" --target fib_server fib_perf
if [ "${1:-}" = test ]; then
  step "3/3 building the tests, man pages and benchmark tools"
  cmake --build build -j "$(nproc)"
fi
step "done"

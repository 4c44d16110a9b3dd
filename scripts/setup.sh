#!/usr/bin/env bash
# Installs what the build needs from Debian's packages (only what is
# missing), and nc for trying the server by hand, then configures once and
# builds into build/. With "test", also what the test suite runs: haproxy,
# systemd-analyze, prometheus, what builds and checks the Debian package
# (dpkg-shlibdeps, file, lintian, man), and the other servers of
# bench/compare.sh (python3, go, pypy3, gnuplot). Safe to run again: with
# everything in place it only runs an incremental build.
# Usage: bash scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# prometheus-cpp-dev serves --metrics; help2man makes the man pages;
# netcat-openbsd: the README's first example after the Quick start is `nc -N`.
packages=(g++ make cmake libc6-dev libfmt-dev libspdlog-dev libcli11-dev libasio-dev prometheus-cpp-dev
  libgtest-dev libbenchmark-dev help2man netcat-openbsd)
[ "${1:-}" = test ] && packages+=(haproxy systemd prometheus dpkg-dev file lintian man-db python3 golang-go pypy3
  gnuplot-nox)
bash scripts/install_packages.sh "${packages[@]}"

# A build directory copied along with the sources belongs to another tree.
if [ -f build/CMakeCache.txt ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" build/CMakeCache.txt; then
  rm -rf build
fi
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"

#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the programs in bin/ and the
# example service and load-balancer files in share/fib_server/, the unit
# starts the binary installed there, and the installed server runs.
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for file in bin/fib_server bin/fib_perf share/fib_server/fib_server.service share/fib_server/haproxy.cfg \
            share/doc/fib_server/README.md share/doc/fib_server/LICENSE share/man/man1/fib_server.1 \
            share/man/man1/fib_perf.1; do
  [ -e "$prefix/$file" ] || { echo "install_check: missing $file" >&2; exit 1; }
done
[ -x "$prefix/bin/fib_server" ] && [ -x "$prefix/bin/fib_perf" ]
grep -qxF "ExecStart=$prefix/bin/fib_server 127.0.0.1:25000" "$prefix/share/fib_server/fib_server.service" || {
  echo "install_check: the unit does not start $prefix/bin/fib_server:" >&2
  grep -n "ExecStart" "$prefix/share/fib_server/fib_server.service" >&2
  exit 1
}
"$prefix/bin/fib_server" --version | grep -q '^fib_server '
"$prefix/bin/fib_perf" --version | grep -q '^fib_perf '
echo "install_check: PASS ($(cd "$prefix" && find . -type f | sort | tr '\n' ' '))"

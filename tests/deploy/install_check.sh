#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the programs in bin/, the
# man pages in share/man/man1/, the README, licence, changelog and the
# examples (systemd unit, HAProxy, Prometheus) in share/doc/fib-server/; the
# unit starts the binary installed there, nothing is written outside the
# prefix (the package's own files, such as its unit in /lib, are not
# installed), and the installed server runs.
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
doc=share/doc/fib-server
for file in bin/fib_server bin/fib_perf share/man/man1/fib_server.1.gz share/man/man1/fib_perf.1.gz \
            $doc/README.md $doc/docs/server.md $doc/docs/operations.md $doc/LICENSE $doc/CHANGELOG.md $doc/examples/fib_server.service $doc/examples/haproxy.cfg \
            $doc/examples/prometheus.yml $doc/examples/fib_server.rules.yml; do
  [ -e "$prefix/$file" ] || { echo "install_check: missing $file" >&2; exit 1; }
done
[ -x "$prefix/bin/fib_server" ] && [ -x "$prefix/bin/fib_perf" ]
outside=$(grep -v "^$prefix/" "$build/install_manifest.txt" || true)
[ -z "$outside" ] || { echo "install_check: installed outside the prefix: $outside" >&2; exit 1; }
grep -qxF "ExecStart=$prefix/bin/fib_server 127.0.0.1:25000" "$prefix/$doc/examples/fib_server.service" || {
  echo "install_check: the unit does not start $prefix/bin/fib_server:" >&2
  grep -n "ExecStart" "$prefix/$doc/examples/fib_server.service" >&2
  exit 1
}
"$prefix/bin/fib_server" --version | grep -q '^fib_server '
"$prefix/bin/fib_perf" --version | grep -q '^fib_perf '
echo "install_check: PASS ($(cd "$prefix" && find . -type f | sort | tr '\n' ' '))"

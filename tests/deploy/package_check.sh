#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` builds fib-server_VERSION_ARCH.deb, it
# installs with apt-get on this machine, the installed programs and man
# pages work, lintian finds no errors (its warnings are printed), and it
# removes cleanly. Installs and removes a package: needs root, and exits 77
# (skipped) without it, or when an earlier fib-server package is installed
# (it would be replaced, then removed).
# Usage: package_check.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
say() { echo "package_check: $*"; }
fail() { echo "package_check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { say "not root: cannot install a package, skipped"; exit 77; }
if [ "$(dpkg-query -W -f='${db:Status-Status}' fib-server 2>/dev/null)" = installed ]; then
  say "a fib-server package is installed already; not touching it, skipped"
  exit 77
fi
for tool in dpkg-shlibdeps lintian man; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash scripts/setup.sh test installs it)"
done

out=$(mktemp -d)
installed=0
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  if [ "$installed" = 1 ]; then apt-get purge -y -qq fib-server >/dev/null 2>&1 || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log" >&2; fail "cpack failed"; }
debs=("$out"/fib-server_*_*.deb)
[ "${#debs[@]}" = 1 ] && [ -f "${debs[0]}" ] || fail "expected one fib-server_*.deb in $out: ${debs[*]}"
deb=${debs[0]}
say "built $(basename "$deb")"
dpkg-deb -f "$deb" Depends | grep -q "libprometheus-cpp-pull" || fail "Depends lacks what dpkg-shlibdeps finds"

# What is inside, where Debian wants it.
listing=$(dpkg -c "$deb" | awk '{print $6}')
for path in ./usr/bin/fib_server ./usr/bin/fib_perf ./lib/systemd/system/fib_server.service \
            ./usr/share/man/man1/fib_server.1.gz ./usr/share/man/man1/fib_perf.1.gz \
            ./usr/share/doc/fib-server/copyright ./usr/share/doc/fib-server/changelog.Debian.gz \
            ./usr/share/doc/fib-server/README.md ./usr/share/doc/fib-server/examples/haproxy.cfg \
            ./usr/share/doc/fib-server/examples/prometheus.yml ./usr/share/doc/fib-server/examples/fib_server.rules.yml; do
  grep -qxF "$path" <<<"$listing" || fail "the package lacks $path"
done
if grep -q "^./usr/local" <<<"$listing"; then fail "the package has files in /usr/local"; fi

# lintian: no errors; the warnings and notes are shown.
lintian_out=$(lintian "$deb" 2>&1 | grep -v "running with root privileges" || true)
[ -z "$lintian_out" ] || echo "$lintian_out"
if grep -q "^E:" <<<"$lintian_out"; then fail "lintian reports errors"; fi

# Installed with apt, it works.
installed=1
apt-get install -y -qq "$deb" >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; fail "apt-get install failed"; }
/usr/bin/fib_server --version | grep -qx "fib_server [0-9.]*" || fail "fib_server --version: $(/usr/bin/fib_server --version)"
/usr/bin/fib_perf --version | grep -qx "fib_perf [0-9.]*" || fail "fib_perf --version"
page=$(man -w fib_server) || fail "man -w fib_server finds no page"
[ "$page" = /usr/share/man/man1/fib_server.1.gz ] || fail "man -w fib_server: $page"
man -w fib_perf >/dev/null || fail "man -w fib_perf finds no page"
grep -qx "ExecStart=/usr/bin/fib_server 127.0.0.1:25000" /lib/systemd/system/fib_server.service ||
  fail "the installed unit does not start /usr/bin/fib_server"
# The installed server answers.
log="$out/server.log"
/usr/bin/fib_server 127.0.0.1:0 2>"$log" &
server=$!
for _ in $(seq 50); do grep -q "listening on" "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
[ -n "$port" ] || fail "the installed fib_server did not start: $(cat "$log")"
/usr/bin/fib_perf "127.0.0.1:$port" -n 10 --requests 100 >/dev/null || fail "fib_perf against it failed"
kill -TERM "$server"
wait "$server" || fail "the installed fib_server did not stop cleanly"
server=
say "installed: $(/usr/bin/fib_server --version), $(/usr/bin/fib_perf --version), $page"

# Removed (and purged), nothing of it is left.
apt-get purge -y -qq fib-server >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; fail "apt-get purge failed"; }
installed=0
for path in /usr/bin/fib_server /usr/bin/fib_perf /lib/systemd/system/fib_server.service /usr/share/doc/fib-server \
            /usr/share/man/man1/fib_server.1.gz; do
  [ ! -e "$path" ] || fail "$path is left after purge"
done
if dpkg-query -W fib-server >/dev/null 2>&1; then fail "dpkg still knows fib-server after purge"; fi
say "PASS: built, linted, installed, ran and removed $(basename "$deb")"

#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` builds fib-server_VERSION_ARCH.deb;
# lintian finds neither errors nor warnings; its maintainer scripts do what
# dh_installsystemd's would, with systemd running and without (run with
# stand-ins for deb-systemd-helper, deb-systemd-invoke and systemctl, in a
# mount namespace of their own); it installs with apt-get on this machine
# and the unit is then neither enabled nor running; the installed programs
# and man pages work; enabled (`systemctl enable`), removed, then purged, it
# leaves nothing: no files, no multi-user.target.wants link, no
# deb-systemd-helper state. Installs and removes a package: needs root, and
# exits 77 (skipped) without it, or when a fib-server package or a
# fib_server unit of another origin is there already (it would be replaced,
# then removed).
# Usage: package_check.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
say() { echo "package_check: $*"; }
fail() { echo "package_check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { say "not root: cannot install a package, skipped"; exit 77; }
if [ -n "$(dpkg-query -W -f='${db:Status-Status}' fib-server 2>/dev/null)" ]; then
  say "a fib-server package is installed (or its configuration kept) already; not touching it, skipped"
  exit 77
fi
unit=fib_server.service
wants=/etc/systemd/system/multi-user.target.wants/$unit
state=/var/lib/systemd/deb-systemd-helper-enabled
for path in "/etc/systemd/system/$unit" "$wants" "$state/$unit.dsh-also" "$state/multi-user.target.wants/$unit"; do
  if [ -e "$path" ] || [ -L "$path" ]; then say "$path exists already; not touching it, skipped"; exit 77; fi
done
for tool in dpkg-shlibdeps lintian man; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash scripts/setup.sh test installs it)"
done
systemd_running=no
[ -d /run/systemd/system ] && systemd_running=yes

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
            ./usr/share/lintian/overrides/fib-server \
            ./usr/share/doc/fib-server/copyright ./usr/share/doc/fib-server/changelog.Debian.gz \
            ./usr/share/doc/fib-server/README.md ./usr/share/doc/fib-server/examples/haproxy.cfg \
            ./usr/share/doc/fib-server/examples/prometheus.yml ./usr/share/doc/fib-server/examples/fib_server.rules.yml; do
  grep -qxF "$path" <<<"$listing" || fail "the package lacks $path"
done
if grep -q "^./usr/local" <<<"$listing"; then fail "the package has files in /usr/local"; fi

# lintian: no errors, no warnings (what it prints is shown; the tags the
# package overrides are in packaging/lintian-overrides, each with its reason).
lintian_out=$(lintian "$deb" 2>&1 | grep -v "running with root privileges" || true)
[ -z "$lintian_out" ] || echo "$lintian_out"
if grep -q "^[EW]:" <<<"$lintian_out"; then fail "lintian reports errors or warnings"; fi
say "lintian: no errors, no warnings"

# The maintainer scripts, as dh_installsystemd --no-enable --no-start writes
# them: each run with stand-ins that log their calls, with systemd running
# (/run/systemd/system exists) and without, in a mount namespace whose /run
# is empty; "enabled" is what the stand-in deb-systemd-helper answers to
# debian-installed and was-enabled.
dpkg-deb -e "$deb" "$out/control"
for script in postinst prerm postrm; do
  [ -x "$out/control/$script" ] || fail "the package has no executable $script"
done
mkdir "$out/stubs"
for stub in deb-systemd-helper deb-systemd-invoke systemctl; do
  cat >"$out/stubs/$stub" <<'STUB'
#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
case "$*" in *debian-installed* | *was-enabled*) [ "$STUB_ENABLED" = 1 ] ;; esac
STUB
  chmod +x "$out/stubs/$stub"
done
# expect SYSTEMD(yes|no) ENABLED(0|1) "SCRIPT ARGS" "CALLS; ..."
simulated=0
expect() {
  local log="$out/calls" calls
  : >"$log"
  # shellcheck disable=SC2086,SC2016 # the script's arguments are words; $1 is the inner shell's
  STUB_LOG=$log STUB_ENABLED=$2 DPKG_MAINTSCRIPT_PACKAGE=fib-server PATH="$out/stubs:$PATH" \
    unshare --mount sh -c 'mount -t tmpfs tmpfs /run && { [ "$1" = no ] || mkdir -p /run/systemd/system; } &&
      shift && exec "$@"' sh "$1" "$out/control/"$3 ||
    fail "$3 failed (systemd running: $1, enabled: $2)"
  calls=$(sed 's/$/; /' "$log" | tr -d '\n')
  calls=${calls%; }
  [ "$calls" = "$4" ] ||
    fail "$3 (systemd running: $1, enabled: $2) calls: ${calls:-nothing}; expected: ${4:-nothing}"
  simulated=$((simulated + 1))
}
if ! unshare --mount sh -c 'mount -t tmpfs tmpfs /run' 2>/dev/null; then
  say "no mount namespace here (unshare): the maintainer scripts are only run for real, by apt-get, below"
else
  u=$unit h=deb-systemd-helper reload="systemctl --system daemon-reload"
  for running in yes no; do
    # First install: the state is recorded, nothing enabled or started.
    r=; [ $running = no ] || r="; $reload"
    expect $running 0 "postinst configure" "$h debian-installed $u; $h update-state $u$r"
    # Upgrade of a unit the administrator enabled: enabled still, restarted if running.
    r=; [ $running = no ] || r="; $reload; deb-systemd-invoke try-restart $u"
    expect $running 1 "postinst configure 0.1.0-1" \
      "$h debian-installed $u; $h unmask $u; $h --quiet was-enabled $u; $h enable $u; $h update-state $u$r"
    # ... and one that was left disabled stays disabled.
    r=; [ $running = no ] || r="; $reload; deb-systemd-invoke try-restart $u"
    expect $running 0 "postinst configure 0.1.0-1" "$h debian-installed $u; $h update-state $u$r"
    # Remove stops it; an upgrade does not (the postinst restarts it).
    r=; [ $running = no ] || r="deb-systemd-invoke stop $u"
    expect $running 1 "prerm remove" "$r"
    expect $running 1 "prerm upgrade 0.1.0-1" ""
    r=; [ $running = no ] || r="$reload"
    expect $running 1 "postrm remove" "$r"
    # Purge: the links and the state go, whatever systemd is doing.
    expect $running 1 "postrm purge" "$h purge $u; $h unmask $u"
    expect $running 1 "postrm upgrade 0.1.0-1" ""
  done
  say "maintainer scripts: $simulated cases, with systemd running and without, call what they should"
fi

# Installed with apt, it works.
installed=1
apt-get install -y -qq "$deb" >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; fail "apt-get install failed"; }
/usr/bin/fib_server --version | grep -qx "fib_server [0-9.]*" || fail "fib_server --version: $(/usr/bin/fib_server --version)"
/usr/bin/fib_perf --version | grep -qx "fib_perf [0-9.]*" || fail "fib_perf --version"
# Not enabled, not started: deb-systemd-helper only recorded the unit's links, for the purge.
if [ -e "$wants" ] || [ -L "$wants" ]; then fail "installing enabled the unit: $wants"; fi
grep -qxF "$wants" "$state/$unit.dsh-also" || fail "deb-systemd-helper recorded no state for $unit"
if [ "$systemd_running" = yes ] && systemctl is-active --quiet fib_server; then
  fail "installing started fib_server"
fi
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

# Enabled by the administrator: `systemctl enable` works without a running
# systemd too (it only makes the links); deb-systemd-helper where systemctl
# is missing (its own test for systemctl: then it makes the links itself).
if [ -x /bin/systemctl ] || [ -x /usr/bin/systemctl ]; then
  systemctl enable fib_server >"$out/enable.log" 2>&1 || { cat "$out/enable.log" >&2; fail "systemctl enable failed"; }
  how="systemctl enable"
else
  DPKG_MAINTSCRIPT_PACKAGE=fib-server deb-systemd-helper enable "$unit" || fail "deb-systemd-helper enable failed"
  how="deb-systemd-helper enable"
fi
[ "$(readlink "$wants")" = "/lib/systemd/system/$unit" ] || fail "$how made no $wants"
say "enabled with $how (systemd running: $systemd_running): $wants"

# Removed: the files go; the enablement is configuration, kept until purge
# (installing again would restore it), as for any Debian service.
files=$(dpkg -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')
apt-get remove -y -qq fib-server >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; fail "apt-get remove failed"; }
while read -r path; do
  [ ! -e "$path" ] || fail "$path is left after remove"
done <<<"$files"
[ "$(dpkg-query -W -f='${db:Status-Status}' fib-server)" = config-files ] || fail "not in config-files state after remove"
[ -L "$wants" ] || fail "remove dropped the enablement ($wants) before a purge"
if [ "$systemd_running" = yes ] && systemctl is-active --quiet fib_server; then fail "fib_server runs after remove"; fi
say "removed: no files left; the enablement kept until purge"

# Purged: nothing of it is left, the links and deb-systemd-helper's state included.
apt-get purge -y -qq fib-server >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; fail "apt-get purge failed"; }
installed=0
for path in $files /usr/share/doc/fib-server "$wants" "$state/$unit.dsh-also" "$state/multi-user.target.wants/$unit" \
            "/var/lib/systemd/deb-systemd-helper-masked/$unit" "/etc/systemd/system/$unit"; do
  if [ -e "$path" ] || [ -L "$path" ]; then fail "$path is left after purge"; fi
done
left=$(find /etc/systemd /var/lib/systemd -name 'fib_server*' 2>/dev/null || true)
[ -z "$left" ] || fail "left after purge: $left"
if dpkg-query -W fib-server >/dev/null 2>&1; then fail "dpkg still knows fib-server after purge"; fi
say "PASS: built, linted, installed, ran, enabled, removed and purged $(basename "$deb")"

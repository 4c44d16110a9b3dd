#!/usr/bin/env bash
# scripts/install_packages.sh, asked for a missing package by a user who is
# not root and has no sudo, says what to do (run as root, or install sudo)
# and exits 1, instead of "sudo: command not found" and 127. For a user
# with sudo, apt-get runs with DEBIAN_FRONTEND=noninteractive although sudo
# resets the environment (stand-ins for sudo, which clears it as Debian's
# env_reset does, and for apt-get, which says what it got). Runs as the user
# nobody when started as root; the PATH holds what the script needs and,
# at first, no sudo.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/fib_install_check.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
for tool in bash dpkg-query grep id; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done
cp "$root/scripts/install_packages.sh" "$work/"
chmod -R a+rX "$work"
run=(env -i PATH="$work/bin" bash "$work/install_packages.sh" fib-server-no-such-package)
[ "$(id -u)" -ne 0 ] || run=(setpriv --reuid=65534 --regid=65534 --clear-groups "${run[@]}")
set +e
message=$("${run[@]}" 2>&1)
status=$?
set -e
echo "$message"
[ "$status" -eq 1 ] || { echo "FAIL: exit status $status, expected 1" >&2; exit 1; }
grep -q "installing packages needs root, and sudo is not installed: run this as root" <<<"$message" ||
  { echo "FAIL: the message does not say to run as root or install sudo" >&2; exit 1; }

# With sudo: the stand-ins are sudo (-n, then the command in an empty
# environment but for PATH) and apt-get (prints its first argument and
# DEBIAN_FRONTEND).
for tool in env true; do ln -s "$(type -P "$tool")" "$work/bin/$tool"; done
printf '#!%s\n[ "$1" = -n ] && shift\nexec %s -i PATH=%s "$@"\n' "$(command -v bash)" "$(command -v env)" \
  "$work/bin" >"$work/bin/sudo"
printf '#!%s\necho "apt-get $1: DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-unset}"\n' "$(command -v bash)" >"$work/bin/apt-get"
chmod a+rx "$work/bin/sudo" "$work/bin/apt-get"
set +e
message=$("${run[@]}" 2>&1)
status=$?
set -e
echo "$message"
[ "$status" -eq 0 ] || { echo "FAIL: with sudo, exit status $status, expected 0" >&2; exit 1; }
for command in update install; do
  grep -qx "apt-get $command: DEBIAN_FRONTEND=noninteractive" <<<"$message" ||
    { echo "FAIL: with sudo, apt-get $command did not get DEBIAN_FRONTEND=noninteractive" >&2; exit 1; }
done
echo "PASS"

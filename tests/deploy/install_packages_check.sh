#!/usr/bin/env bash
# scripts/install_packages.sh, asked for a missing package by a user who is
# not root and has no sudo, says what to do (run as root, or install sudo)
# and exits 1, instead of "sudo: command not found" and 127. Runs as the
# user nobody when started as root; the PATH holds what the script needs
# and no sudo.
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
echo "PASS"

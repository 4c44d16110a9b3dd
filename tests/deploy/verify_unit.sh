#!/usr/bin/env bash
# Checks deploy/fib_server.service with `systemd-analyze verify`, and its
# hardening with `systemd-analyze security --offline`.
#
#   tests/deploy/verify_unit.sh [BUILD_DIR]      (default: build)
#
# Exits non-zero if systemd-analyze prints any warning or error for the unit;
# exits 77 (skipped) if systemd-analyze is not installed: tests install
# nothing (`bash scripts/setup.sh test` does). Needs no running systemd:
# verify works on unit files offline.
#
# Why a copy: verify fails when ExecStart's binary does not exist, and the
# unit names the installed path /usr/local/bin/fib_server. Rather than install
# into the system (a side effect on the host), the check verifies a temporary
# copy in which only that path is replaced by the freshly built binary's
# absolute path; it first checks that the copy differs from the unit in that
# one line and nothing else, so everything else is verified exactly as shipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
unit="$source_dir/deploy/fib_server.service"
build_dir=${1:-build}
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"
binary="$build_dir/bin/fib_server"
installed_path=/usr/local/bin/fib_server

fail() { echo "verify_unit: FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null || { echo "skipped: systemd-analyze not installed"; exit 77; }

[[ -f "$unit" ]] || fail "$unit not found"
[[ -x "$binary" ]] || fail "$binary not found; build first (cmake --build $build_dir)"
grep -qx "ExecStart=$installed_path 127.0.0.1:25000" "$unit" \
  || fail "the unit's ExecStart should be '$installed_path 127.0.0.1:25000' (the default install path)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy="$work/fib_server.service"   # same name: verify derives the unit name from it
escaped=$(printf '%s' "$binary" | sed 's/[&|\\]/\\&/g')
sed "s|^ExecStart=$installed_path |ExecStart=$escaped |" "$unit" > "$copy"

# The copy must differ in the ExecStart path only.
changed=$(diff "$unit" "$copy" | grep -c '^[<>]' || true)
[[ "$changed" -eq 2 ]] || fail "copy differs from the unit in more than ExecStart:
$(diff "$unit" "$copy" || true)"

echo "verify_unit: systemd $(systemd-analyze --version | head -n1 | awk '{print $2}')"
echo "verify_unit: systemd-analyze verify (ExecStart -> $binary)"
# verify also opens each man: page of Documentation= with man(1): here the
# page just built (help2man), found through MANPATH as man1/fib_server.1.
page="$build_dir/man/fib_server.1"
[[ -s "$page" ]] || fail "$page was not made (help2man missing? bash scripts/setup.sh installs it)"
mkdir "$work/man" "$work/man/man1"
ln -s "$page" "$work/man/man1/fib_server.1"
# verify prints its findings on stderr and does not always set its exit status
# for them (an unknown key is only a warning), so any output counts as failure.
set +e
out=$(MANPATH="$work/man" systemd-analyze verify "$copy" 2>&1)
status=$?
set -e
if [[ -n "$out" || $status -ne 0 ]]; then
  printf '%s\n' "$out" >&2
  fail "systemd-analyze verify reported problems (exit status $status)"
fi
echo "verify_unit: verify: no warnings, no errors"

# The hardening score, computed from the file alone (no running systemd
# needed). 0 is fully locked down, 10 is unprotected; a unit with the
# hardening above scores 1.6. Fails if hardening lines go missing and the
# score rises above 3.0 (--threshold counts in tenths: 30).
set +e
security=$(systemd-analyze security --offline=true --threshold=30 "$copy" 2>&1)
status=$?
set -e
printf '%s\n' "$security" | grep 'Overall exposure level' || true
if [[ $status -ne 0 ]]; then
  printf '%s\n' "$security" >&2
  fail "systemd-analyze security: exposure above 3 (exit status $status)"
fi
echo "verify_unit: PASS"

#!/usr/bin/env bash
# The quick comparison with no cgroup to read the servers' CPU from, as a
# user who is not root or a container with no cgroup file system runs it:
# the run must pass on the fallback (bench/compare.py's docstring: the
# processes' CPU-time clocks), and its results must say the CPU came from
# there. In ctest (label bench) as bench_compare_quick_no_cgroup (clock) and
# bench_compare_quick_unprivileged (user).
#
# Usage: bash bench/compare_no_cgroup.sh clock|user BIN OUT
#   clock: CPU_SOURCE=clock (no cgroup, whoever runs it)
#   user:  CPU_SOURCE left to choose, as a user who is not root. Run as
#          root, the comparison runs as nobody (setpriv, with an empty
#          environment but for what it is given, PATH=/usr/bin:/bin) from
#          a copy of all it needs in a fresh directory under /tmp: the
#          checkout and BIN may be where nobody cannot read (a clone in
#          /root), and the copy does not refer back to them. Exits 77
#          (skipped) only when root cannot become another user at all.
#   environment: SECTIONS (table,floor: the fixed-rate CPU figures, those a
#   quick run measures over the fewest requests)
set -euo pipefail
mode=${1:-} bin=${2:-} out=${3:-}
[[ $mode =~ ^(clock|user)$ && -n $bin && -n $out ]] || { echo "usage: $0 clock|user BIN OUT" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "$bin" && pwd)
sections=${SECTIONS:-table,floor}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# What bench/compare.sh installs; here first, as root, so that the run as
# nobody finds it all and installs nothing.
packages=(python3 golang-go pypy3 gnuplot-nox gcc libc6-dev liburing-dev)

if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then
  # nobody, or its usual ids where there is no such user: any id but 0
  # will do, setpriv takes numbers, and a user with no entry in the
  # password file is as unprivileged as nobody.
  uid=$(id -u nobody 2>/dev/null || echo 65534)
  gid=$(id -g nobody 2>/dev/null || echo 65534)
  as_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups)
  # Root can become any user unless the kernel will not have it: a user
  # namespace that maps no id but 0 (some rootless containers), or no
  # setpriv. Then there is no way to run this test, and it is skipped
  # (77) rather than failed: it is no fault of the project, a skip names
  # the test in ctest's summary, and .ci/run fails any skip in the normal
  # build, so CI cannot pass over it. Anything else that stops the run
  # below (a copy nobody cannot read, a tool missing) is a failure.
  if ! "${as_user[@]}" true 2>/dev/null; then
    echo "compare_no_cgroup: root cannot become user $uid (setpriv --reuid=$uid failed): skipped" >&2
    exit 77
  fi
  bash "$repo/scripts/install_packages.sh" "${packages[@]}"
  # The tools compare.py and compare.sh run, found on PATH: the system's,
  # not root's (a pyenv shim, /usr/local) that nobody may not be able to run.
  for tool in python3 go pypy3 gcc gnuplot dpkg-query; do
    [ -x "/usr/bin/$tool" ] || { echo "compare_no_cgroup: no /usr/bin/$tool" >&2; exit 1; }
  done

  # The copy: under /tmp, not TMPDIR, which may be a directory of root's.
  stage=$(mktemp -d /tmp/fib_compare_unprivileged.XXXXXX)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/tree/bench/peers" "$stage/tree/scripts" "$stage/bin" "$stage/out" "$stage/home"
  cp "$repo"/bench/{compare.sh,compare.py,report.py} "$stage/tree/bench/"
  cp "$repo"/bench/peers/* "$stage/tree/bench/peers/"
  cp "$repo/scripts/install_packages.sh" "$stage/tree/scripts/"
  # The programs compare.py runs from BIN.
  for program in fib_server fib_perf churn hold_connections min_client; do
    cp "$bin/$program" "$stage/bin/"
  done
  chmod -R u=rwX,go=rX "$stage"
  chmod 755 "$stage" "$stage"/bin/*
  chown "$uid:$gid" "$stage/out" "$stage/home"
  if ! "${as_user[@]}" test -r "$stage/tree/bench/compare.py" -a -x "$stage/bin/fib_perf" -a -w "$stage/out"; then
    ls -ld /tmp "$stage" >&2
    echo "compare_no_cgroup: user $uid cannot read $stage or write $stage/out" >&2
    exit 1
  fi
  run=("${as_user[@]}" env -i PATH=/usr/bin:/bin HOME="$stage/home" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
       QUICK=1 BIN="$stage/bin" OUT="$stage/out" SECTIONS="$sections")
  echo "compare_no_cgroup: ${run[*]} bash $stage/tree/bench/compare.sh" >&2
  status=0
  "${run[@]}" bash "$stage/tree/bench/compare.sh" || status=$?
  cp -R "$stage/out/." "$out/"  # whatever it wrote, for a look after a failure too
  ((status == 0)) || exit "$status"
else
  # clock, or user run by a user who is not root: as it is.
  run=(env QUICK=1 BIN="$bin" OUT="$out" SECTIONS="$sections")
  [ "$mode" = user ] || run+=(CPU_SOURCE=clock)
  echo "compare_no_cgroup: ${run[*]} bash $repo/bench/compare.sh" >&2
  "${run[@]}" bash "$repo/bench/compare.sh"
fi

# The run passed its own check; it must also have read no cgroup.
python3 - "$out/results.json" <<'EOF'
import json
import sys

settings = json.load(open(sys.argv[1]))["settings"]
source = settings.get("cpu_source", "not recorded")
print(f"compare_no_cgroup: server CPU from {source}, resolution {settings.get('cpu_resolution_us')} us")
sys.exit(0 if source == "the processes' CPU-time clocks" else "compare_no_cgroup: expected the CPU-time clocks")
EOF

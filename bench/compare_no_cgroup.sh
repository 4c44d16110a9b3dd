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
#   user:  CPU_SOURCE left to choose, as a user who is not root: run as
#          root, as nobody (setpriv, with a fresh environment); exits 77
#          (skipped) when nobody cannot read BIN or this checkout, or
#          write OUT
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

run=(env QUICK=1 BIN="$bin" OUT="$out" SECTIONS="$sections")
if [ "$mode" = clock ]; then
  run+=(CPU_SOURCE=clock)
elif [ "$(id -u)" -eq 0 ]; then
  as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
  chown nobody:nogroup "$out"
  if ! "${as_nobody[@]}" test -x "$bin/fib_perf" -a -r "$repo/bench/compare.py" -a -w "$out"; then
    echo "compare_no_cgroup: nobody cannot read $bin or $repo, or write $out: skipped" >&2
    exit 77
  fi
  run=("${as_nobody[@]}" "${run[@]}")
fi
echo "compare_no_cgroup: ${run[*]} bash $repo/bench/compare.sh" >&2
"${run[@]}" bash "$repo/bench/compare.sh"

# The run passed its own check; it must also have read no cgroup.
python3 - "$out/results.json" <<'EOF'
import json
import sys

settings = json.load(open(sys.argv[1]))["settings"]
source = settings.get("cpu_source", "not recorded")
print(f"compare_no_cgroup: server CPU from {source}, resolution {settings.get('cpu_resolution_us')} us")
sys.exit(0 if source == "the processes' CPU-time clocks" else "compare_no_cgroup: expected the CPU-time clocks")
EOF

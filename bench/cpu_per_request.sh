#!/usr/bin/env bash
# Server CPU time per request at a fixed offered rate, for one or more
# fib_server binaries side by side (for instance two builds of different
# commits), alternating binaries round by round. CPU per request at a fixed
# rate does not depend on which process wins the race for the cores, unlike
# throughput on a small shared machine. Prints each round and the median and
# spread per binary.
#
# Usage: bash bench/cpu_per_request.sh BINARY... 
#   environment: RATE (20000 req/s), CONNECTIONS (4), RUN_SECONDS (4), ROUNDS (5),
#   N (1: the fib index asked), PERF (build/bin/fib_perf), SERVER_ARGS (extra
#   fib_server options, for instance "--log-level off")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE=${RATE:-20000} CONNECTIONS=${CONNECTIONS:-4} SECONDS_PER_RUN=${RUN_SECONDS:-4} ROUNDS=${ROUNDS:-5} N=${N:-1}
PERF=${PERF:-build/bin/fib_perf} SERVER_ARGS=${SERVER_ARGS:-}
(($#)) || { echo "usage: $0 BINARY..." >&2; exit 2; }
ticks=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# cpu_ticks PID: user + system time of the process so far, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
  for index in $(seq $#); do
    binary=${!index}
    # shellcheck disable=SC2086
    "$binary" 127.0.0.1:0 $SERVER_ARGS 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 100); do grep -q 'listening on' "$work/server.log" && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log" | head -n1)
    before=$(cpu_ticks "$pid")
    "$PERF" "127.0.0.1:$port" -c "$CONNECTIONS" -n "$N" --rate "$RATE" -d "$SECONDS_PER_RUN" --json \
      >"$work/perf.json" 2>/dev/null || true
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    requests=$(sed -n 's/.*"requests": *\([0-9]*\).*/\1/p' "$work/perf.json" | head -n1)
    us=$(awk -v t=$((after - before)) -v hz="$ticks" -v r="${requests:-0}" 'BEGIN { printf "%.2f", (r > 0 ? t / hz * 1e6 / r : 0) }')
    echo "round $round  $binary  $requests requests  ${us} us CPU per request"
    echo "$us" >>"$work/cpu.$index"
  done
done
echo "medians over $ROUNDS rounds at $RATE req/s, $CONNECTIONS connections, fib($N):"
for index in $(seq $#); do
  sort -n "$work/cpu.$index" | awk -v name="${!index}" '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "  %-40s median %.2f us (min %.2f, max %.2f)\n", name, m, v[1], v[NR] }'
done

#!/usr/bin/env bash
# Server CPU time per request at a fixed offered rate, for one or more
# fib_server command lines side by side (for instance two builds of different
# commits, or one binary with and without --metrics), alternating them round
# by round. CPU per request at a fixed
# rate does not depend on which process wins the race for the cores, unlike
# throughput on a small shared machine. Prints each round and the median and
# spread per command line. A server started with --metrics is scraped
# every SCRAPE_SECONDS meanwhile, as Prometheus would.
#
# Usage: bash bench/cpu_per_request.sh SERVER...
#   SERVER: a fib_server binary, optionally with options in the same word
#   ("build/bin/fib_server --metrics 127.0.0.1:0")
#   environment: RATE (20000 req/s), CONNECTIONS (4), RUN_SECONDS (4), ROUNDS (5),
#   N (1: the fib index asked), PERF (build/bin/fib_perf), SERVER_ARGS (extra
#   fib_server options, for instance "--log-level off"), SCRAPE_SECONDS (1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE=${RATE:-20000} CONNECTIONS=${CONNECTIONS:-4} SECONDS_PER_RUN=${RUN_SECONDS:-4} ROUNDS=${ROUNDS:-5} N=${N:-1}
PERF=${PERF:-build/bin/fib_perf} SERVER_ARGS=${SERVER_ARGS:-} SCRAPE_SECONDS=${SCRAPE_SECONDS:-1}
(($#)) || { echo "usage: $0 SERVER..." >&2; exit 2; }
ticks=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# cpu_ticks PID: user + system time of the process so far, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# scrape_every PORT: GET /metrics every SCRAPE_SECONDS until killed.
scrape_every() {
  while sleep "$SCRAPE_SECONDS"; do
    { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null; } 2>/dev/null || true
    exec 3>&-
  done
}

for round in $(seq "$ROUNDS"); do
  for index in $(seq $#); do
    binary=${!index}
    # shellcheck disable=SC2086
    $binary 127.0.0.1:0 $SERVER_ARGS 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 100); do grep -q 'listening on' "$work/server.log" && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log" | head -n1)
    metrics_port=$(sed -n 's|.*metrics on http://[0-9.]*:\([0-9]*\)/metrics.*|\1|p' "$work/server.log" | head -n1)
    scraper=
    if [ -n "$metrics_port" ]; then
      scrape_every "$metrics_port" &
      scraper=$!
    fi
    before=$(cpu_ticks "$pid")
    "$PERF" "127.0.0.1:$port" -c "$CONNECTIONS" -n "$N" --rate "$RATE" -d "$SECONDS_PER_RUN" --json \
      >"$work/perf.json" 2>/dev/null || true
    after=$(cpu_ticks "$pid")
    if [ -n "$scraper" ]; then kill "$scraper"; wait "$scraper" 2>/dev/null || true; fi
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

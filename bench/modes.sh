#!/usr/bin/env bash
# The three kinds of concurrent server side by side: fib_server --mode
# coroutine, the default thread mode, and the Go goroutine server
# (bench/peers/fib_go.go, built when go is installed). Same client
# (fib_perf), servers alternating round by round; medians with min-max of
# ROUNDS runs, printed as Markdown:
#   1. closed loop fib(1) over 1 to 256 connections: req/s, p99, server CPU
#      per request (from /proc/PID/stat over the run);
#   2. server CPU per request at a fixed 20,000 req/s over 3 and 64 connections;
#   3. fib(30) latency on one connection;
#   4. the talk's demo: a fib(1) client at 1,000 req/s, its p99 alone and
#      while two connections pipeline fib(40);
#   5. new connections per second (bench/churn, 2 threads) and server CPU
#      per connection;
#   6. resident memory per idle connection (IDLE connections, each served once);
#   7. CROWD connections open at once (each served once): an active client's
#      p99 beside them against alone (fib_server's modes).
#
# Usage: bash bench/modes.sh
#   environment: ROUNDS (3), RUN_SECONDS (3), SWEEP ("1 2 4 8 16 32 64 128 256"),
#   IDLE (10000), CROWD (19000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-3}
SWEEP=${SWEEP:-"1 2 4 8 16 32 64 128 256"}
IDLE=${IDLE:-10000}
CROWD=${CROWD:-19000}

bash scripts/setup.sh >/dev/null
ulimit -n "$(ulimit -Hn)"
bin=build/bin
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

names=("coroutine" "thread")
declare -A command=(
  [coroutine]="$bin/fib_server 127.0.0.1:PORT --mode coroutine --log-level off"
  [thread]="$bin/fib_server 127.0.0.1:PORT --log-level off"
)
if command -v go >/dev/null; then
  GOCACHE=$work/gocache go build -o "$work/fib_go" bench/peers/fib_go.go
  names+=("go")
  command[go]="$work/fib_go 127.0.0.1:PORT"
fi

port=26400
pid=
start() {  # name: starts it on a fresh port; sets pid and port
  port=$((port + 1))
  # shellcheck disable=SC2086
  ${command[$1]//PORT/$port} >"$work/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "modes: $1 did not start" >&2
  exit 1
}
stop() { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -n1; }
# fib_perf ARGS...: prints "rps p50 p99 cpu_us_per_request" against $pid/$port
perf() {
  local before after json
  before=$(ticks "$pid")
  json=$("$bin/fib_perf" "127.0.0.1:$port" --json "$@" 2>/dev/null || true)
  after=$(ticks "$pid")
  local rps p50 p99 requests
  rps=$(field rps <<<"$json") p50=$(field p50 <<<"$json") p99=$(field p99 <<<"$json")
  requests=$(field requests <<<"$json")
  awk -v r="${rps:-0}" -v a="${p50:-0}" -v b="${p99:-0}" -v n="${requests:-0}" -v t=$((after - before)) \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f %.1f %.1f %.2f\n", r, a, b, (n > 0 ? t / hz * 1e6 / n : 0) }'
}
# median FILE COLUMN: "median (min-max)"
median() {
  awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%g (%g-%g)", m, v[1], v[NR] }'
}
header() {  # title columns...
  echo
  echo "$1"
  echo
  shift
  local line="|" rule="|"
  for column in "$@"; do line+=" $column |" rule+=" --- |"; done
  echo "$line"
  echo "$rule"
}

echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); medians (min-max) of $ROUNDS alternating runs of $RUN_SECONDS s; client fib_perf."

# 1. The sweep, and 2. CPU per request at a fixed rate: long-running servers.
header "Closed loop, fib(1): req/s, p99 (us), server CPU per request (us)" connections "${names[@]}"
for connections in $SWEEP; do
  for round in $(seq "$ROUNDS"); do
    for name in "${names[@]}"; do
      start "$name"
      perf -c "$connections" -d "$RUN_SECONDS" >>"$work/sweep.$connections.$name"
      stop
    done
  done
  row="| $connections |"
  for name in "${names[@]}"; do
    file=$work/sweep.$connections.$name
    row+=" $(median "$file" 1) req/s, p99 $(median "$file" 3), CPU $(median "$file" 4) |"
  done
  echo "$row"
done

header "Server CPU per request (us) at a fixed 20,000 req/s, fib(1)" connections "${names[@]}"
for connections in 3 64; do
  for round in $(seq "$ROUNDS"); do
    for name in "${names[@]}"; do
      start "$name"
      perf -c "$connections" --rate 20000 -d "$RUN_SECONDS" >>"$work/fixed.$connections.$name"
      stop
    done
  done
  row="| $connections |"
  for name in "${names[@]}"; do row+=" $(median "$work/fixed.$connections.$name" 4) |"; done
  echo "$row"
done

# 3. fib(30) on one connection, and 4. the demo.
header "One connection: fib(30) latency; a fib(1) client at 1,000 req/s, alone and beside two connections pipelining fib(40)" \
  server "fib(30) p50 (us)" "fib(1) p99 alone (us)" "fib(1) p99 beside fib(40) (us)"
for round in $(seq "$ROUNDS"); do
  for name in "${names[@]}"; do
    start "$name"
    perf -c 1 -n 30 -d "$RUN_SECONDS" >>"$work/fib30.$name"
    perf -c 1 --rate 1000 -d "$RUN_SECONDS" >>"$work/alone.$name"
    "$bin/fib_perf" "127.0.0.1:$port" -c 2 -n 40 --pipeline 4 -d $((RUN_SECONDS + 2)) >/dev/null 2>&1 &
    load=$!
    sleep 0.5
    perf -c 1 --rate 1000 -d "$RUN_SECONDS" >>"$work/beside.$name"
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    stop
  done
done
for name in "${names[@]}"; do
  echo "| $name | $(median "$work/fib30.$name" 2) | $(median "$work/alone.$name" 3) | $(median "$work/beside.$name" 3) |"
done

# 5. Churn.
header "New connections per second (connect, fib(1), close; 2 client threads)" server "connections/s" "server CPU per connection (us)"
for round in $(seq "$ROUNDS"); do
  for name in "${names[@]}"; do
    start "$name"
    before=$(ticks "$pid")
    rate=$("$bin/churn" "127.0.0.1:$port" -t 2 -d "$RUN_SECONDS" 2>&1 | sed -n 's/^\([0-9.]*\) connections\/s.*/\1/p' | head -n1)
    after=$(ticks "$pid")
    awk -v r="${rate:-0}" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$RUN_SECONDS" \
      'BEGIN { printf "%.0f %.1f\n", r, (r > 0 ? t / hz * 1e6 / (r * s) : 0) }' >>"$work/churn.$name"
    stop
  done
done
for name in "${names[@]}"; do echo "| $name | $(median "$work/churn.$name" 1) | $(median "$work/churn.$name" 2) |"; done

# 6. Memory per idle connection: fresh servers, one run each.
header "Resident memory per idle connection, $IDLE open (each served once)" server "KiB per connection"
for name in "${names[@]}"; do
  start "$name"
  perf -c 1 --requests 1000 >/dev/null
  before=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
  "$bin/hold_connections" "127.0.0.1:$port" -c "$IDLE" -d 600 --ask >/dev/null 2>&1 &
  holder=$!
  for _ in $(seq 600); do
    [ "$(ls "/proc/$holder/fd" 2>/dev/null | wc -l)" -gt "$IDLE" ] && break
    sleep 0.1
  done
  sleep 1
  after=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
  kill "$holder"
  wait "$holder" 2>/dev/null || true
  stop
  awk -v b="$before" -v a="$after" -v n="$IDLE" -v name="$name" 'BEGIN { printf "| %s | %.2f |\n", name, (a - b) / n }'
done

# 7. A crowd of connections open at once: fib_server's modes.
header "$CROWD connections open at once (each served once): a fib(1) client's p99 (us), closed loop" server alone "beside the crowd"
for name in coroutine thread; do
  start "$name"
  alone=$(perf -c 1 -d "$RUN_SECONDS" | awk '{ print $3 }')
  "$bin/hold_connections" "127.0.0.1:$port" -c "$CROWD" -d 600 --ask >"$work/crowd.log" 2>&1 &
  holder=$!
  for _ in $(seq 900); do
    [ "$(ls "/proc/$holder/fd" 2>/dev/null | wc -l)" -gt "$CROWD" ] && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  open=$(($(ls "/proc/$holder/fd" 2>/dev/null | wc -l) - 3))
  beside=$(perf -c 1 -d "$RUN_SECONDS" | awk '{ print $3 }')
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  stop
  echo "| $name | $alone | $beside (with $open open) |"
done

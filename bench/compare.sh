#!/usr/bin/env bash
# Side-by-side benchmark, as the seed's comparison table: fib_server in thread
# and sequential mode, the Go goroutine server and the thread-per-connection
# floor (both from ../shared/peers, when there and when go / gcc are
# installed), all driven by the same client, alternating servers round by
# round; medians printed as Markdown. Then a sweep of req/s and p99 against
# connections, drawn as a PNG when gnuplot is installed.
#
# Usage: bash bench/compare.sh            (environment: ROUNDS=3 RUN_SECONDS=3 PEERS=../shared/peers OUT=bench/results)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-3}
PEERS=$(realpath -m "${PEERS:-../shared/peers}")
OUT=${OUT:-bench/results}
IDLE=${IDLE:-5000}
CROWD=${CROWD:-10000}

bash scripts/setup.sh >/dev/null
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

bin=build/bin
declare -A address server_pid
names=()
start() {  # name port command...
  local name=$1 port=$2
  shift 2
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  server_pid[$name]=$!
  address[$name]=127.0.0.1:$port
  names+=("$name")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "compare: $name did not start" >&2
  exit 1
}

start "fib_server" 26100 "$bin/fib_server" 127.0.0.1:26100
start "fib_server --log-level off" 26104 "$bin/fib_server" 127.0.0.1:26104 --log-level off
start "fib_server --mode sequential" 26101 "$bin/fib_server" 127.0.0.1:26101 --mode sequential
if command -v go >/dev/null && [ -f "$PEERS/fibgo.go" ]; then
  (cd "$work" && cp "$PEERS/fibgo.go" . && GOCACHE=$work/gocache go build -o fibgo fibgo.go)
  start "Go (fibgo.go)" 26102 "$work/fibgo" 127.0.0.1:26102
fi
if command -v gcc >/dev/null && [ -f "$PEERS/limit.c" ]; then
  gcc -O2 -pthread -o "$work/limit" "$PEERS/limit.c"
  start "floor (limit.c)" 26103 "$work/limit" 26103
fi

json() { sed -n "s/.*\"$2\":{[^}]*\"$3\":\([0-9.]*\).*/\1/p" <<<"$1"; }
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
perf() { "$bin/fib_perf" "$@" --json 2>/dev/null || true; }

# The RSS of a server process, in KiB.
rss() { awk '/VmRSS/ {print $2}' "/proc/${server_pid[$1]}/status"; }

declare -A results
measure() {  # name
  local name=$1 addr=${address[$1]} out
  out=$(perf "$addr" -c 1 -d "$RUN_SECONDS")
  echo "$(field "$out" rps)" >>"$work/rps1.$name"
  out=$(perf "$addr" -c 3 -d "$RUN_SECONDS")
  echo "$(field "$out" rps)" >>"$work/rps3.$name"
  if [[ $name != floor* ]]; then
    out=$(perf "$addr" -c 1 -n 30 -d "$RUN_SECONDS")
    echo "$(json "$out" latency_us p50)" >>"$work/fib30.$name"
  fi
  "$bin/churn" "$addr" -t 2 -d "$RUN_SECONDS" | awk '{print $1}' >>"$work/churn.$name"
}

echo "compare: $ROUNDS rounds of ${RUN_SECONDS} s runs over: ${names[*]}" >&2
for round in $(seq "$ROUNDS"); do
  for name in "${names[@]}"; do
    echo "compare: round $round: $name" >&2
    measure "$name"
  done
done

# Memory: idle connections held open, resident memory before and after.
for name in "${names[@]}"; do
  [[ $name == *sequential* || $name == *off ]] && continue  # one at a time; and the same server as above
  before=$(rss "$name")
  "$bin/hold_connections" "${address[$name]}" -c "$IDLE" -d 4 >/dev/null &
  holder=$!
  sleep 3
  after=$(rss "$name")
  wait "$holder" || true
  awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.1f\n", (a - b) / n}' >"$work/rss.$name"
  sleep 2
done

# A crowd: an active client's p99 alone, then with CROWD idle connections open.
crowd_line=""
if [ "$CROWD" -gt 0 ]; then
  alone=$(json "$(perf "${address[fib_server]}" -c 1 -d "$RUN_SECONDS")" latency_us p99)
  "$bin/hold_connections" "${address[fib_server]}" -c "$CROWD" -d $((RUN_SECONDS + 8)) --ask >"$work/crowd.log" &
  holder=$!
  for _ in $(seq 100); do grep -q holding "$work/crowd.log" 2>/dev/null && break; sleep 0.1; done
  crowded=$(json "$(perf "${address[fib_server]}" -c 1 -d "$RUN_SECONDS")" latency_us p99)
  wait "$holder" || true
  crowd_line="fib_server with $CROWD connections open (all served once): active client p99 ${crowded} us, alone ${alone} us"
fi

# The client itself: fib_perf against the minimal blocking client, on the floor.
client_line=""
if [ -n "${address[floor (limit.c)]:-}" ]; then
  for round in $(seq "$ROUNDS"); do
    for c in 1 3; do
      "$bin/min_client" "${address[floor (limit.c)]}" -c "$c" -d "$RUN_SECONDS" | awk '{print $1}' >>"$work/min.$c"
      field "$(perf "${address[floor (limit.c)]}" -c "$c" -d "$RUN_SECONDS")" rps >>"$work/perf.$c"
    done
  done
  client_line="fib_perf against the minimal blocking client (bench/min_client) on the floor:"
  for c in 1 3; do
    client_line="$client_line $c connection(s) $(median <"$work/perf.$c") vs $(median <"$work/min.$c") req/s;"
  done
fi

cell() { [ -f "$work/$1.$2" ] && median <"$work/$1.$2" || echo "n/a"; }
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); medians of $ROUNDS alternating ${RUN_SECONDS} s runs, client fib_perf (closed loop), churn from bench/churn with 2 threads."
  echo
  echo "| server | 1 client fib(1) req/s | 3 clients fib(1) req/s | fib(30) p50 latency (us) | RSS per idle connection ($IDLE open, KiB) | new connections/s |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for name in "${names[@]}"; do
    echo "| $name | $(cell rps1 "$name") | $(cell rps3 "$name") | $(cell fib30 "$name") | $(cell rss "$name") | $(cell churn "$name") |"
  done
  [ -n "$crowd_line" ] && echo && echo "$crowd_line"
  [ -n "$client_line" ] && echo && echo "$client_line"
} | tee "$OUT/table.md"

# The sweep: req/s and p99 against connections.
sweep_servers=("fib_server")
[ -n "${address[Go (fibgo.go)]:-}" ] && sweep_servers+=("Go (fibgo.go)")
: >"$OUT/sweep.dat"
for c in 1 2 4 8 16 32 64; do
  row="$c"
  for name in "${sweep_servers[@]}"; do
    out=$(perf "${address[$name]}" -c "$c" -d "$RUN_SECONDS")
    row="$row $(field "$out" rps) $(json "$out" latency_us p99)"
  done
  echo "$row" >>"$OUT/sweep.dat"
done
{
  echo
  header="| connections |"
  rule="| --- |"
  for name in "${sweep_servers[@]}"; do
    header="$header $name req/s | $name p99 (us) |"
    rule="$rule --- | --- |"
  done
  echo "$header"
  echo "$rule"
  while read -r line; do echo "| ${line// / | } |"; done <"$OUT/sweep.dat"
} | tee -a "$OUT/table.md"

if command -v gnuplot >/dev/null; then
  {
    echo "set terminal png size 900,500; set output '$OUT/sweep.png'"
    echo "set logscale x 2; set xlabel 'connections'; set ylabel 'req/s'; set y2label 'p99 latency (us)'"
    echo "set y2tics; set ytics nomirror; set key top left"
    plot="plot"
    i=2
    for name in "${sweep_servers[@]}"; do
      plot="$plot '$OUT/sweep.dat' using 1:$i with linespoints title '$name req/s',"
      plot="$plot '$OUT/sweep.dat' using 1:$((i + 1)) axes x1y2 with linespoints dashtype 2 title '$name p99',"
      i=$((i + 2))
    done
    echo "${plot%,}"
  } | gnuplot && echo "compare: wrote $OUT/sweep.png" >&2
else
  echo "compare: gnuplot not installed: no $OUT/sweep.png (apt-get install gnuplot-nox)" >&2
fi

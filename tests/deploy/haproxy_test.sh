#!/usr/bin/env bash
# Runs deploy/haproxy.cfg for real: three fib_server instances behind HAProxy
# on loopback, fib_perf through HAProxy (every answer checked), the same load
# against one server directly for comparison, then a failover: one backend is
# stopped (SIGTERM) in the middle of a run, and the load must move to the other
# two with errors only inside the health-check window.
#
#   tests/deploy/haproxy_test.sh [BUILD_DIR [BASE_PORT]]
#
# BUILD_DIR (default build) holds bin/fib_server and bin/fib_perf. With
# BASE_PORT, HAProxy listens on BASE_PORT and the servers on BASE_PORT+1..+3;
# without it, the servers take free ports (port 0) and HAProxy a free random
# port. Its admin socket is a file in a private temporary directory. Needs
# haproxy and OpenBSD netcat (nc -U, for the admin socket); installs nothing
# (`bash scripts/setup.sh test` does): without them, exit status 77 (skipped).
# Exit status 0 when every check passes. Takes about 25 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
config="$source_dir/deploy/haproxy.cfg"
build_dir=${1:-build}
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"
base_port=${2:-}
server_bin="$build_dir/bin/fib_server"
perf_bin="$build_dir/bin/fib_perf"

CONNECTIONS=6       # fib_perf connections in every run
MEASURE_SECONDS=3   # the throughput runs (through HAProxy, then direct)
FAILOVER_SECONDS=7  # the failover run
KILL_AT=2.5         # seconds into it when a backend is stopped: mid-second, so
                    # fib_perf's per-second lines tell before from after

say() { echo "haproxy_test: $*"; }
failed=0
fail() { echo "haproxy_test: FAIL: $*" >&2; failed=1; exit 1; }
now() { date +%s.%N; }
# Floating-point arithmetic and comparisons: calc 'EXPR' prints the value.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
is_true() { awk "BEGIN { exit !($1) }"; }

# --- Prerequisites ----------------------------------------------------------
[[ -x "$server_bin" && -x "$perf_bin" ]] \
  || fail "$server_bin or $perf_bin missing; build first (cmake --build $build_dir)"
[[ -f "$config" ]] || fail "$config not found"
# haproxy lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
# A missing tool skips the test (77, ctest's SKIP_RETURN_CODE); tests never install.
command -v haproxy >/dev/null || { echo "skipped: haproxy not installed"; exit 77; }
# The admin socket is a Unix socket: OpenBSD netcat (nc -U) talks to it.
if ! command -v nc >/dev/null || ! nc -h 2>&1 | grep -q -- '-U'; then
  echo "skipped: nc with -U (netcat-openbsd) not installed"
  exit 77
fi
say "$(haproxy -v | head -n1)"

# --- Process bookkeeping and cleanup ------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/haproxy_test.XXXXXX")
pids=()
cleanup() {
  local status=$? pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 || $failed -ne 0 ]]; then
    local log
    for log in "$work"/*.log; do
      [[ -f "$log" ]] || continue
      echo "---- last lines of $(basename "$log") ----" >&2
      tail -n 15 "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS COMMAND...: polls COMMAND every 0.05 s, fails after SECONDS.
wait_until() {
  local limit=$1; shift
  local deadline; deadline=$(calc "$(now) + $limit")
  until "$@"; do
    is_true "$(now) < $deadline" || return 1
    sleep 0.05
  done
}

# --- Three fib_server instances ---------------------------------------------
server_pids=()
server_ports=()
start_server() {  # start_server INDEX PORT (0: a free port)
  local index=$1 port=$2 log="$work/fib_server$1.log"
  "$server_bin" "127.0.0.1:$port" --log-level info 2>"$log" &
  local pid=$!
  pids+=("$pid")
  server_pids[index]=$pid
  wait_until 5 grep -q 'listening on ' "$log" || fail "fib_server $index did not start: $(cat "$log")"
  server_ports[index]=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" | head -n1 | sed 's/.*://')
}
for i in 1 2 3; do
  if [[ -n "$base_port" ]]; then start_server "$i" $((base_port + i)); else start_server "$i" 0; fi
done
say "fib_server instances on 127.0.0.1:${server_ports[1]}, :${server_ports[2]}, :${server_ports[3]}"

# --- HAProxy -------------------------------------------------------------------
# The test's copy of deploy/haproxy.cfg differs only in the frontend and
# server ports and the admin socket path (and, when not root, without the
# chroot/user/group lines, which need root); checked below.
sock="$work/admin.sock"
make_config() {  # make_config FRONTEND_PORT
  local drop='^    (chroot|user|group) '
  [[ $(id -u) -ne 0 ]] || drop='^\b$'  # root: drop nothing
  sed -e "s|^    bind 127\.0\.0\.1:25000\$|    bind 127.0.0.1:$1|" \
      -e "s|^    server fib1 127\.0\.0\.1:25001\$|    server fib1 127.0.0.1:${server_ports[1]}|" \
      -e "s|^    server fib2 127\.0\.0\.1:25002\$|    server fib2 127.0.0.1:${server_ports[2]}|" \
      -e "s|^    server fib3 127\.0\.0\.1:25003\$|    server fib3 127.0.0.1:${server_ports[3]}|" \
      -e "s|^    stats socket /run/haproxy/admin\.sock |    stats socket $sock |" \
      "$config" | grep -Ev "$drop" > "$work/haproxy.cfg"
  local changed; changed=$(diff "$config" "$work/haproxy.cfg" | grep -c '^<' || true)
  local expected=5; [[ $(id -u) -eq 0 ]] || expected=8
  [[ "$changed" -eq "$expected" ]] || fail "the test's copy of haproxy.cfg differs in $changed lines, not $expected:
$(diff "$config" "$work/haproxy.cfg" || true)"
}

# The shipped file itself must be valid as it is.
haproxy -c -q -f "$config" >"$work/haproxy_check.log" 2>&1 \
  || fail "haproxy -c rejects deploy/haproxy.cfg: $(cat "$work/haproxy_check.log")"

stat_csv() { echo "show stat" | nc -U -w 2 "$sock" 2>/dev/null; }
# server_field SERVER FIELD: one field of the backend's server line in "show stat".
server_field() {
  stat_csv | awk -F, -v sv="$1" -v field="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "fib_servers" && $2 == sv { print $col[field] }'
}
server_states() {  # "fib1 UP fib2 UP fib3 UP"
  local sv; for sv in fib1 fib2 fib3; do printf '%s %s ' "$sv" "$(server_field "$sv" status)"; done
}
all_up() { [[ "$(server_states)" == "fib1 UP fib2 UP fib3 UP " ]]; }

# haproxy_ready: the admin socket is there and HAProxy's own process holds
# the frontend's listening socket. Being alive is not enough: the admin
# socket appears before the frontend's bind can fail, and the port may be
# another process's.
haproxy_ready() {
  local inode
  test -S "$sock" || return 1
  inode=$(awk -v port=":$(printf '%04X' "$front_port")" '$2 ~ port "$" && $4 == "0A" { print $10; exit }' \
    /proc/net/tcp)
  [[ -n "$inode" ]] && ls -l "/proc/$haproxy_pid/fd" 2>/dev/null | grep -q "socket:\[$inode\]"
}

haproxy_pid=
front_port=
for _ in 1 2 3 4 5 6 7 8; do
  if [[ -n "$base_port" ]]; then
    front_port=$base_port
  else
    front_port=$((20000 + RANDOM % 30000))
    if command -v ss >/dev/null && ss -Htln "sport = :$front_port" | grep -q .; then continue; fi
  fi
  make_config "$front_port"
  rm -f "$sock"
  haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  haproxy_pid=$!
  pids+=("$haproxy_pid")
  if wait_until 5 haproxy_ready; then break; fi
  kill -TERM "$haproxy_pid" 2>/dev/null || true
  wait "$haproxy_pid" 2>/dev/null || true
  haproxy_pid=
  [[ -z "$base_port" ]] && grep -qi 'cannot bind\|address already in use' "$work/haproxy.log" && continue
  fail "haproxy did not start: $(cat "$work/haproxy.log")"
done
[[ -n "$haproxy_pid" ]] || fail "haproxy could not bind a free port"
wait_until 5 all_up || fail "the three servers are not all UP in HAProxy: $(server_states)"
front="127.0.0.1:$front_port"
say "HAProxy (pid $haproxy_pid) on $front, all three servers UP"

json_num() {  # json_num KEY FILE: a top-level number from fib_perf's --json
  grep -o "\"$1\":[0-9.]*" "$2" | head -n1 | cut -d: -f2
}

# --- 1. Every answer right, through HAProxy ------------------------------------
say "fib_perf through HAProxy: -c $CONNECTIONS -d $MEASURE_SECONDS"
status=0
timeout 30 "$perf_bin" "$front" -c "$CONNECTIONS" -d "$MEASURE_SECONDS" --timeout 2 --json \
  >"$work/perf_haproxy.json" 2>"$work/perf_haproxy.log" || status=$?
[[ $status -eq 0 ]] || fail "fib_perf through HAProxy exited with $status: $(cat "$work/perf_haproxy.json" "$work/perf_haproxy.log")"
[[ "$(json_num errors "$work/perf_haproxy.json")" == 0 && "$(json_num wrong_answers "$work/perf_haproxy.json")" == 0 ]] \
  || fail "errors through HAProxy: $(cat "$work/perf_haproxy.json")"
rps_haproxy=$(json_num rps "$work/perf_haproxy.json")
requests_haproxy=$(json_num requests "$work/perf_haproxy.json")
# All three servers must have carried part of it.
for sv in fib1 fib2 fib3; do
  [[ "$(server_field "$sv" stot)" -gt 0 ]] || fail "$sv got no connection through HAProxy"
done

# --- 2. The same load against one server directly -------------------------------
say "fib_perf directly against fib_server 1: -c $CONNECTIONS -d $MEASURE_SECONDS"
status=0
timeout 30 "$perf_bin" "127.0.0.1:${server_ports[1]}" -c "$CONNECTIONS" -d "$MEASURE_SECONDS" --timeout 2 --json \
  >"$work/perf_direct.json" 2>"$work/perf_direct.log" || status=$?
[[ $status -eq 0 && "$(json_num errors "$work/perf_direct.json")" == 0 ]] \
  || fail "fib_perf direct exited with $status: $(cat "$work/perf_direct.json")"
rps_direct=$(json_num rps "$work/perf_direct.json")

# --- 3. Failover: stop fib_server 1 in the middle of a run ------------------------
# Per server: from HAProxy's admin socket scur (connections open), stot
# (connections so far) and status; from /proc, the CPU time the fib_server
# process used (its share of the work: HAProxy's byte counters for a TCP
# connection are only brought up to date now and then, not per answer).
clock_ticks=$(getconf CLK_TCK)
cpu_ticks() {  # cpu_ticks PID: user + system time in ticks, empty once it exited
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || true
}
declare -A snap
snapshot() {  # snapshot NAME: records time, and scur, stot, status and CPU of each server
  local name=$1 csv sv i=0
  csv=$(stat_csv)
  snap[$name.t]=$(now)
  for sv in fib1 fib2 fib3; do
    i=$((i + 1))
    read -r scur stot st < <(printf '%s\n' "$csv" | awk -F, -v sv="$sv" '
      NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
      $1 == "fib_servers" && $2 == sv { print $col["scur"], $col["stot"], $col["status"] }')
    snap[$name.$sv.scur]=$scur; snap[$name.$sv.stot]=$stot; snap[$name.$sv.status]=$st
    snap[$name.$sv.cpu]=$(cpu_ticks "${server_pids[$i]}")
  done
}
cpu_percent() {  # cpu_percent FROM TO SERVER: the server's CPU use between two snapshots, 0 if gone
  if [[ -z "${snap[$1.$3.cpu]}" || -z "${snap[$2.$3.cpu]}" ]]; then echo 0; return; fi
  calc "100 * (${snap[$2.$3.cpu]} - ${snap[$1.$3.cpu]}) / $clock_ticks / (${snap[$2.t]} - ${snap[$1.t]})"
}

say "failover: fib_perf through HAProxy for ${FAILOVER_SECONDS} s, fib_server 1 stopped at ${KILL_AT} s"
perf_start=$(now)
timeout 30 "$perf_bin" "$front" -c "$CONNECTIONS" -d "$FAILOVER_SECONDS" --timeout 2 --json \
  >"$work/perf_failover.json" 2>"$work/perf_failover.log" &
perf_pid=$!
pids+=("$perf_pid")
sleep 1.2
snapshot before0
sleep 1
snapshot before1
time_reached() { is_true "$(now) >= $1"; }
wait_until 3 time_reached "$(calc "$perf_start + $KILL_AT")" || true
kill_at=$(now)
kill -TERM "${server_pids[1]}"
server_down() { [[ "$(server_field fib1 status)" == DOWN* ]]; }
wait_until 3 server_down || fail "HAProxy did not mark fib1 DOWN within 3 s of its stop"
down_at=$(now)
# The stopped server must exit by itself (graceful stop).
server_exited() { ! kill -0 "${server_pids[1]}" 2>/dev/null; }
wait_until 12 server_exited || fail "fib_server 1 did not exit within 12 s of SIGTERM"
wait "${server_pids[1]}" && server1_status=0 || server1_status=$?
# After the window: two snapshots one second apart near the end of the run.
wait_until 10 time_reached "$(calc "$perf_start + $FAILOVER_SECONDS - 1.6")" || true
snapshot after0
sleep 1
snapshot after1
perf_status=0
wait "$perf_pid" || perf_status=$?

kill_rel=$(calc "$kill_at - $perf_start")
down_rel=$(calc "$down_at - $perf_start")
detect=$(calc "$down_at - $kill_at")

# --- Checks ------------------------------------------------------------------------
problems=()
[[ $server1_status -eq 0 ]] || problems+=("fib_server 1 exited with $server1_status after SIGTERM, not 0")
[[ $perf_status -eq 0 || $perf_status -eq 1 ]] || problems+=("fib_perf exited with $perf_status")
[[ "$(json_num wrong_answers "$work/perf_failover.json")" == 0 ]] || problems+=("wrong answers during failover")

# (a) the load moved: before the stop every server holds connections and
# works; after it fib1 is DOWN with none, and fib2 and fib3 hold all of them
# (each took new ones: the reconnected clients) and do all the work.
for sv in fib1 fib2 fib3; do
  [[ "${snap[before1.$sv.scur]}" -gt 0 ]] || problems+=("$sv had no connection before the stop")
  is_true "$(cpu_percent before0 before1 $sv) > 1" || problems+=("$sv did no work before the stop")
done
[[ "${snap[after1.fib1.status]}" == DOWN* ]] || problems+=("fib1 not DOWN after the stop (${snap[after1.fib1.status]})")
[[ "${snap[after1.fib1.scur]}" -eq 0 ]] || problems+=("fib1 still has ${snap[after1.fib1.scur]} connections")
open_after=$(( ${snap[after1.fib2.scur]} + ${snap[after1.fib3.scur]} ))
[[ $open_after -eq $CONNECTIONS ]] || problems+=("fib2 + fib3 hold $open_after connections after the stop, not $CONNECTIONS")
for sv in fib2 fib3; do
  [[ "${snap[after1.$sv.status]}" == UP* ]] || problems+=("$sv not UP after the stop")
  [[ "${snap[after1.$sv.stot]}" -gt "${snap[before1.$sv.stot]}" ]] \
    || problems+=("$sv took no new connection after the stop")
  is_true "$(cpu_percent after0 after1 $sv) > 1" || problems+=("$sv did no work after the stop")
done

# (b) errors only inside the health-check window. fib_perf's live line k
# covers the run's second k, [k-1, k] from its start (a few ms after
# perf_start); an error is counted in the line for the second it happened in.
# Errors are allowed only in lines that overlap [stop, marked DOWN + 0.5 s];
# the last two lines must be clean, and so must the final second, which
# fib_perf reports only in its summary (its total = the sum of the lines).
mapfile -t lines < <(grep 'reqs/s' "$work/perf_failover.log")
[[ ${#lines[@]} -ge $((FAILOVER_SECONDS - 1)) ]] || problems+=("only ${#lines[@]} live lines from fib_perf")
line_errors=0
for ((k = 1; k <= ${#lines[@]}; k++)); do
  line=${lines[k - 1]}
  errors=$(sed -n 's/.*errors \([0-9]*\).*/\1/p' <<<"$line")
  reqs=$(awk '{print $1}' <<<"$line")
  line_errors=$((line_errors + errors))
  if [[ "$errors" -gt 0 ]]; then
    if ! is_true "$k > $kill_rel && $k - 1 < $down_rel + 0.5"; then
      problems+=("errors outside the health-check window, second $k: $line")
    fi
  fi
  if (( k > ${#lines[@]} - 2 )); then
    [[ "$errors" -eq 0 && "$reqs" -gt 0 ]] || problems+=("second $k (the end of the run) not clean: $line")
  fi
done
total_errors=$(json_num errors "$work/perf_failover.json")
[[ "$total_errors" -eq "$line_errors" ]] \
  || problems+=("$((total_errors - line_errors)) errors in the final second (fib_perf total $total_errors)")

# --- Report ---------------------------------------------------------------------------
ratio=$(calc "$rps_haproxy / $rps_direct")
echo
echo "== fib_server behind HAProxy ($(haproxy -v | head -n1 | awk '{print $3}')), $(nproc) cores, loopback, fib(1), $CONNECTIONS connections =="
printf '  through HAProxy (3 servers)   %10.0f req/s  (%s requests in %s s, errors 0)\n' "$rps_haproxy" "$requests_haproxy" "$MEASURE_SECONDS"
printf '  one fib_server directly       %10.0f req/s\n' "$rps_direct"
printf '  ratio HAProxy / direct        %10s\n' "$ratio"
echo "failover: fib_server 1 stopped (SIGTERM) at ${kill_rel} s, marked DOWN by HAProxy ${detect} s later, exited with status $server1_status"
printf '  %-6s %-26s %-30s\n' server "before the stop" "end of the run"
for sv in fib1 fib2 fib3; do
  printf '  %-6s %-26s %-30s\n' "$sv" \
    "$(printf '%s conns, CPU %3.0f%%, %s' "${snap[before1.$sv.scur]}" "$(cpu_percent before0 before1 $sv)" "${snap[before1.$sv.status]%% *}")" \
    "$(printf '%s conns, CPU %3.0f%%, %s' "${snap[after1.$sv.scur]}" "$(cpu_percent after0 after1 $sv)" "${snap[after1.$sv.status]%% *}") (connections so far: ${snap[before1.$sv.stot]} -> ${snap[after1.$sv.stot]})"
done
echo "  fib_perf live lines (second: line):"
for ((k = 1; k <= ${#lines[@]}; k++)); do echo "    $k: ${lines[k - 1]}"; done
echo "  errors: $total_errors in total ($(json_num reset_or_eof "$work/perf_failover.json") reset or EOF, $(json_num timeout "$work/perf_failover.json") timeout, $(json_num connect "$work/perf_failover.json") connect, $(json_num wrong_answer "$work/perf_failover.json") wrong); allowed only in seconds overlapping ${kill_rel} .. $(calc "$down_rel + 0.5") s"
echo

if [[ ${#problems[@]} -gt 0 ]]; then
  for p in "${problems[@]}"; do echo "haproxy_test: FAIL: $p" >&2; done
  failed=1
  exit 1
fi
say "PASS"

"""The whole comparison, driven by bench/compare.sh (which installs and builds
what it needs first): fib_server in each mode against the other servers of
the story (bench/peers/), all loaded by the same client, fib_perf, with the
servers alternating round by round. The floor section's closed loops are
run again with a second client, bench/min_client. fib_server's uring mode
is measured when its --help names that mode. Where the kernel refuses
io_uring_setup(2) (a container's seccomp profile, the
kernel.io_uring_disabled sysctl), it and the io_uring floors
(bench/peers/uring_floor.c, with and without multishot receives) are left out, and the results say why. Server CPU over each measured interval
covers every thread and process of the server (the asyncio server's pool
included), read from the first of these that works (CPU_SOURCE below):
- a cgroup of the server's own (cpuacct.usage under cgroup v1, cpu.stat's
  usage_usec under v2): the kernel's count for every process that was ever
  in it, ended ones included. Needs root and a cgroup file system.
- the CPU-time clock of each of the server's processes (clock_getcpuclockid(3)
  and clock_gettime): nanoseconds, every thread the process has had
  included, ended ones too; any user may read it, and it needs no /sys. A
  process of the server that ends between two readings takes its time with
  it (the asyncio pool's workers live as long as the server). Per-thread
  /proc/PID/task/TID/schedstat counts the same nanoseconds but only for the
  threads alive at the reading: the thread mode's connection threads end
  with their connections, so their time would be lost.
- /proc/PID/stat's utime + stime: the same count cut to clock ticks
  (1/SC_CLK_TCK s, 10 ms), where the clocks cannot be read. A short run may
  use less than a tick: results.json gives the source's resolution
  (settings.cpu_resolution_us) and the check takes a 0 from a source this
  coarse as below its resolution, says so, and does not fail for it.
Writes results.json, results.md and sweep_*.png
into OUT, and fails when a server answered wrongly or a figure is missing.
A full run (no QUICK, no SECTIONS) writes to bench/results by default and
replaces the README's headline and docs/performance.md's copy of the tables; a quick or partial one writes to
build/compare unless OUT says otherwise, and leaves both alone.

Usage: python3 bench/compare.py            measure (environment below)
       python3 bench/compare.py --check DIR check DIR/results.json (SECTIONS too)
Environment: BIN (build/bin), OUT (bench/results), QUICK=1 (short runs),
ROUNDS, RUN_SECONDS, IDLE (open idle connections), SECTIONS (a comma-separated
subset of table,sweep,floor,connections,demo,client), BASELINE (another
fib_server binary, measured beside the thread mode as "baseline"),
CPU_SOURCE (auto: as above; clock: no cgroup, the processes' CPU-time
clocks; stat: no cgroup, /proc/PID/stat's clock ticks)."""
import ctypes
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import report  # bench/report.py: the rows, Markdown, plots and the check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.environ.get("QUICK") == "1"
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(REPO, "build", "bin")))
RESULTS = os.path.join(REPO, "bench", "results")
ROUNDS = int(os.environ.get("ROUNDS", "1" if QUICK else "3"))
SECONDS = float(os.environ.get("RUN_SECONDS", "0.5" if QUICK else "3"))
IDLE = int(os.environ.get("IDLE", "1000" if QUICK else "10000"))
SWEEP = [1, 4, 16, 64, 256] if QUICK else [1, 2, 3, 4, 8, 16, 32, 64, 128, 256]
BASELINE = os.environ.get("BASELINE", "")
ALL_SECTIONS = ["table", "sweep", "floor", "connections", "demo", "client"]
SECTIONS = [name for name in os.environ.get("SECTIONS", ",".join(ALL_SECTIONS)).split(",") if name]
FULL = not QUICK and SECTIONS == ALL_SECTIONS
OUT = os.path.abspath(os.environ.get("OUT", RESULTS if FULL else os.path.join(REPO, "build", "compare")))
HZ = os.sysconf("SC_CLK_TCK")
CPU_SOURCE = os.environ.get("CPU_SOURCE", "auto")
CPU_SOURCES = ["auto", "clock", "stat"]
# Where a server's CPU time was read: name in the results, resolution in us.
SOURCES = {
    "cgroup v1": ("cgroup cpuacct.usage", 0.001),
    "cgroup v2": ("cgroup cpu.stat usage_usec", 1),
    "clock": ("the processes' CPU-time clocks", 0.001),
    "stat": ("/proc/PID/stat clock ticks", 1e6 / HZ),
}
DEMO_RATE = 1000      # the talk's demo: a fib(1) client at this many requests per second
FLOOR_RATE = 20000    # the thread mode against the floor: server CPU per request at this rate
FLOOR_CLOSED = [64, 256]  # and closed loops at saturation over these many connections, with both clients
FLOOR_CLIENTS = ["fib_perf", "min_client"]
OPS_CONNECTIONS = 64  # the io_uring floors' ring operations per request are counted over these closed loops
FIB30_REQUESTS = 20   # perf1-style: at most this many fib(30) requests per run
FIB_PERF_TAIL = 2000  # bytes of fib_perf's stderr shown when it printed no summary

# The servers: key, name in the tables, command (PORT is replaced).
FIB_SERVER = [
    ("thread", "fib_server --mode thread", [f"{BIN}/fib_server", "127.0.0.1:PORT"]),
    ("coroutine", "fib_server --mode coroutine", [f"{BIN}/fib_server", "127.0.0.1:PORT", "--mode", "coroutine"]),
    # Only where fib_server has the mode (uring_mode below).
    ("uring", "fib_server --mode uring", [f"{BIN}/fib_server", "127.0.0.1:PORT", "--mode", "uring"]),
    ("sequential", "fib_server --mode sequential", [f"{BIN}/fib_server", "127.0.0.1:PORT", "--mode", "sequential"]),
]
PEERS = [
    ("go", "Go, a goroutine per connection", ["WORK/fib_go", "127.0.0.1:PORT"]),
    ("cpython", "CPython threads", ["python3", f"{REPO}/bench/peers/fib_threads.py", "127.0.0.1:PORT"]),
    ("pypy", "PyPy threads", ["pypy3", f"{REPO}/bench/peers/fib_threads.py", "127.0.0.1:PORT"]),
    ("asyncio", "CPython asyncio + process pool", ["python3", f"{REPO}/bench/peers/fib_asyncio.py", "127.0.0.1:PORT"]),
    ("floor", "the floor (C, a thread per connection answering 1)", ["WORK/floor", "127.0.0.1:PORT"]),
    ("uring_floor", "the io_uring floor (C, a ring per CPU answering 1)", ["WORK/uring_floor", "127.0.0.1:PORT"]),
    ("uring_multishot_floor", "the io_uring multishot floor (C, a ring per CPU, multishot receives on provided "
     "buffers, answering 1)", ["WORK/uring_floor", "127.0.0.1:PORT", "multishot"]),
]
IO_URING = ["uring", "uring_floor", "uring_multishot_floor"]  # left out where the kernel gives no io_uring
ANSWER_ONE = ["floor", "uring_floor", "uring_multishot_floor"]  # answer 1 to every read, whatever it was
RING_OPS = ["uring_floor", "uring_multishot_floor"]  # count their ring operations (SIGUSR1: an "ops:" line)
# Which servers each section measures: report.py's rows (TABLE, SWEPT,
# FLOOR, IDLE, DEMO), of those this run has.


def log(message):
    print(f"compare: {message}", file=sys.stderr, flush=True)


def stat(values):
    """Median, min and max of the runs, or None when there were none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values,
            "n": len(values)}


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


try:
    _clock_getcpuclockid = ctypes.CDLL(None, use_errno=True).clock_getcpuclockid
except (OSError, AttributeError):  # no C library with it: /proc/PID/stat only
    _clock_getcpuclockid = None


def process_cpu_ns(pid):
    """The CPU time process pid has used so far, all its threads included
    (ended ones too), in nanoseconds, from its CPU-time clock; None when the
    process has ended or the clock cannot be read."""
    if _clock_getcpuclockid is None:
        return None
    clock = ctypes.c_int()  # clockid_t
    if _clock_getcpuclockid(pid, ctypes.byref(clock)):  # returns an error number
        return None
    try:
        return time.clock_gettime_ns(clock.value)
    except OSError:
        return None


def uring_mode():
    """Whether fib_server has the uring mode: its --help names it (a word of
    its own, not "during" or "io_uring")."""
    done = subprocess.run([f"{BIN}/fib_server", "--help"], capture_output=True, text=True)
    return re.search(r"\buring\b", done.stdout) is not None


def io_uring_refused():
    """Why the kernel gives this process no io_uring (io_uring_setup(2)
    failed: a seccomp profile, kernel.io_uring_disabled), or None when it
    made a ring."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(425, 1, params)  # io_uring_setup: 425 on every architecture since Linux 5.1
    if fd >= 0:
        os.close(fd)
        return None
    return f"io_uring_setup(2) failed: {os.strerror(ctypes.get_errno())}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_cgroup(name):
    """A cgroup of its own for a server, how to read the CPU its processes
    have used (ended ones included), in seconds, and its key in SOURCES; or
    (None, None, None) where the machine gives none (not root, or no cgroup
    file system) or CPU_SOURCE asks for none."""
    if CPU_SOURCE != "auto":
        return None, None, None
    if os.path.exists("/sys/fs/cgroup/cpuacct/cpuacct.usage"):  # cgroup v1
        path, source = f"/sys/fs/cgroup/cpuacct/{name}", "cgroup v1"

        def used():
            with open(os.path.join(path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
    elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2
        path, source = f"/sys/fs/cgroup/{name}", "cgroup v2"

        def used():
            with open(os.path.join(path, "cpu.stat")) as f:
                return next(int(line.split()[1]) for line in f if line.startswith("usage_usec ")) / 1e6
    else:
        return None, None, None
    try:
        os.makedirs(path, exist_ok=True)
        used()
    except (OSError, StopIteration, ValueError):
        return None, None, None
    return path, used, source


cpu_sources_used = set()  # the keys of SOURCES the servers' CPU was read from


class Server:
    """One server process (and its children) in a session of its own and,
    where the machine allows, a cgroup of its own: the kernel's count of the
    CPU every thread and process of the server used, those that ended
    included. Elsewhere, the CPU-time clocks of the processes alive at each
    reading, or failing those their clock ticks in /proc/PID/stat (the
    module's docstring says why these)."""

    def __init__(self, key, name, command, work):
        self.key, self.name, self.work = key, name, work
        self.template = [part.replace("WORK", work) for part in command]
        self.proc, self.port = None, None
        self.cgroup, self.cgroup_cpu, self.source = cpu_cgroup(f"fib_compare_{os.getpid()}_{key}")
        self.cgroup_dir = self.cgroup  # removed at the end even if joining it failed

    def command(self):
        return " ".join(part.replace(self.work + "/", "").replace(REPO + "/", "") for part in self.template)

    def start(self):
        self.port = free_port()
        argv = [part.replace("PORT", str(self.port)) for part in self.template]
        logfile = open(os.path.join(self.work, f"{self.key}.log"), "ab")
        procs = os.path.join(self.cgroup, "cgroup.procs") if self.cgroup else None

        def join_cgroup():
            if procs:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))

        self.proc = subprocess.Popen(argv, stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=join_cgroup)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.cgroup and str(self.proc.pid) not in self.cgroup_pids():
                    log(f"{self.key}: could not join {self.cgroup}")
                    self.cgroup = None
                if not self.cgroup:
                    clock = CPU_SOURCE != "stat" and process_cpu_ns(self.proc.pid) is not None
                    self.source = "clock" if clock else "stat"
                cpu_sources_used.add(self.source)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        with open(os.path.join(self.work, f"{self.key}.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{self.name} did not start; its output:\n{tail}")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def cgroup_pids(self):
        with open(os.path.join(self.cgroup, "cgroup.procs")) as f:
            return f.read().split()

    def pids(self):
        """The server's processes: its cgroup's, or everything in its session."""
        if self.cgroup:
            return [int(pid) for pid in self.cgroup_pids()]
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = proc_stat(entry)
                if fields and int(fields[3]) == self.proc.pid:  # the session id
                    found.append(int(entry))
        return found

    def cpu_seconds(self):
        if self.cgroup:
            return self.cgroup_cpu()
        if self.source == "clock":
            return sum(process_cpu_ns(pid) or 0 for pid in self.pids()) / 1e9
        total = 0
        for pid in self.pids():
            fields = proc_stat(pid)
            if fields:
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / HZ

    def rss_kib(self):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            except OSError:
                pass
        return total

    def stop(self):
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 2), (signal.SIGTERM, 1), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                pass
        try:  # the session's other processes (a pool's children)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None

    def remove_cgroup(self):
        """Once its last process has gone (a pool's children may take a moment)."""
        path = self.cgroup_dir
        if not path:
            return
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except OSError:
                time.sleep(0.1)
        log(f"could not remove {path}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()


def exchange(address, payload, answers, timeout=60):
    """Sends payload on a new connection and reads until `answers` lines came back."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"\n") < answers:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").splitlines()


def probe(server):
    """Checks the answers themselves: lines, a bare number as the talk's
    clients send it, and a refusal. The floors answer 1 to everything."""
    if server.key in ANSWER_ONE:
        got = exchange(server.address, b"1\n", 1)
        return got == ["1"], got
    lines = exchange(server.address, b"0\n1\n2\n10\n25\n", 5)
    bare = exchange(server.address, b"30", 1)
    bad = exchange(server.address, b"x\n", 1)
    ok = lines == ["0", "1", "1", "55", "75025"] and bare == ["832040"] and bad[:1] and bad[0].startswith("error: ")
    return bool(ok), lines + bare + bad


runs_checked = []  # every fib_perf run: (server, arguments, requests, wrong answers, error replies)


def fib_perf(server, *args, background=False, sample=None):
    """Runs fib_perf against the server; returns its JSON summary with the
    server's CPU microseconds per request over the run added. sample() is
    called every 50 ms while it runs."""
    argv = [f"{BIN}/fib_perf", server.address, "--json", *map(str, args)]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = server.cpu_seconds()
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+b") as errors:
        run = subprocess.Popen(argv, stdout=output, stderr=errors, text=True)
        while run.poll() is None:
            if sample:
                sample()
            time.sleep(0.05)
        used = server.cpu_seconds() - before
        output.seek(0)
        text = output.read()
        try:
            summary = json.loads(text)
        except json.JSONDecodeError:
            # The end of what fib_perf said on stderr (its header, and any
            # error), so that a run that failed once can be understood.
            size = errors.seek(0, os.SEEK_END)
            errors.seek(max(0, size - FIB_PERF_TAIL))
            said = errors.read().decode(errors="replace")
            raise RuntimeError(f"fib_perf {' '.join(argv[1:])} printed no summary (exit {run.returncode}); "
                               f"its stderr{' (the end)' if size > FIB_PERF_TAIL else ''}:\n"
                               f"{said if said.strip() else '(nothing)'}") from None
    requests = summary["requests"]
    summary["server_cpu_us"] = used * 1e6 / requests if requests else None
    runs_checked.append((server.key, " ".join(argv[2:]), requests, summary["wrong_answers"], summary["error_replies"]))
    return summary


def min_client(server, connections):
    """bench/min_client's closed loop: req/s, and the server's CPU
    microseconds per request over the client's run (its connecting and
    closing included, as over fib_perf's). It checks no answer."""
    before = server.cpu_seconds()
    done = subprocess.run([f"{BIN}/min_client", server.address, "-c", str(connections), "-d", str(SECONDS)],
                          capture_output=True, text=True)
    used = server.cpu_seconds() - before
    words = done.stdout.split()  # "N req/s"
    if done.returncode or words[1:2] != ["req/s"]:
        raise RuntimeError(f"min_client against {server.name} printed no rate (exit {done.returncode}): "
                           f"{done.stdout}{done.stderr[-FIB_PERF_TAIL:]}")
    rps = float(words[0])
    return {"rps": rps, "server_cpu_us": used * 1e6 / (rps * SECONDS) if rps else None}


def ring_ops(server):
    """The floor's counts so far, (requests, submissions, completions): SIGUSR1 has it print them to its log."""
    path = os.path.join(server.work, f"{server.key}.log")

    def lines():
        with open(path, errors="replace") as f:
            return [line.split() for line in f if line.startswith("ops:")]

    before = len(lines())
    os.kill(server.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = lines()
        if len(found) > before:
            words = found[-1]  # "ops: requests R submissions S completions C"
            return int(words[2]), int(words[4]), int(words[6])
        time.sleep(0.01)
    raise RuntimeError(f"{server.name} printed no ring operations")


def per_request(before, after):
    """Submissions and completions per request between two ring_ops() readings."""
    requests = after[0] - before[0]
    return {"submissions": (after[1] - before[1]) / requests if requests else None,
            "completions": (after[2] - before[2]) / requests if requests else None}


def latency(summary, which):
    return summary["latency_us"][which] if summary["requests"] else None


def held(summary):
    """An open-loop run kept its schedule (fib_perf's own verdict) and got answers."""
    return summary["requests"] > 0 and summary.get("rate_held", False)


def time_wait():
    """TIME_WAIT sockets on the machine: they make new connections dearer."""
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                count += sum(1 for line in f if line.split()[3:4] == ["06"])
        except OSError:
            pass
    return count


def churn(server):
    """New connections per second, the server's CPU per connection, the
    TIME_WAIT sockets present before, and the connections that failed."""
    before, waiting = server.cpu_seconds(), time_wait()
    done = subprocess.run([f"{BIN}/churn", server.address, "-t", "2", "-d", str(SECONDS)],
                          capture_output=True, text=True)
    used = server.cpu_seconds() - before
    words = done.stdout.split()  # "N connections/s (F failed)"
    if words[1:2] != ["connections/s"]:
        raise RuntimeError(f"churn against {server.name} printed no rate: {done.stdout}{done.stderr}")
    rate, failed = float(words[0]), int(words[2].lstrip("("))
    return rate, (used * 1e6 / (rate * SECONDS) if rate else None), waiting, failed


def idle_memory(server):
    """Resident memory per idle connection: IDLE connections, each served once, held open."""
    fib_perf(server, "-c", 1, "--requests", 1000)
    before = server.rss_kib()
    holder = subprocess.Popen([f"{BIN}/hold_connections", server.address, "-c", str(IDLE), "-d", "900", "--ask"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = holder.stdout.readline()  # "holding N connections ..." once all are open and served
        time.sleep(1)
        after = server.rss_kib()
        opened = int(line.split()[1]) if line.startswith("holding") else 0
    finally:
        holder.kill()
        holder.wait()
    return ((after - before) / opened if opened else None), opened


class Bench:
    def __init__(self, work):
        self.work = work
        # The io_uring servers: the uring mode once fib_server has it, both
        # only where the kernel gives io_uring. Why one is left out goes
        # into the results.
        refused = io_uring_refused()
        self.left_out = {key: refused for key in IO_URING} if refused else {}
        if not refused and not uring_mode():
            self.left_out["uring"] = "fib_server --help names no uring mode"
        for key, why in self.left_out.items():
            log(f"{key}: left out: {why}")
        servers = [entry for entry in FIB_SERVER + PEERS if entry[0] not in self.left_out]
        if BASELINE:
            servers.append(("baseline", f"baseline ({BASELINE}, thread mode)",
                            [os.path.abspath(BASELINE), "127.0.0.1:PORT"]))
        self.servers = {key: Server(key, name, command, work) for key, name, command in servers}
        self.floor_set = [key for key in report.FLOOR[:1] + (["baseline"] if BASELINE else []) + report.FLOOR[1:]
                          if key in self.servers]
        self.results = {}

    def present(self, keys):
        """Those of keys that this run measures (the io_uring ones may not be)."""
        return [key for key in keys if key in self.servers]

    def each_round(self, keys, measure):
        """Runs measure for every server in keys, round by round,
        each on a freshly started server: measure(server)."""
        keys = list(keys)
        for round_number in range(ROUNDS):
            turn = round_number % len(keys)  # each round starts one server later: no server always goes first
            for key in keys[turn:] + keys[:turn]:
                log(f"round {round_number + 1}/{ROUNDS}: {key}")
                with self.servers[key] as server:
                    measure(server)

    def table(self):
        """The write-up's table, one row per server."""
        raw = {key: {k: [] for k in ("one", "fib30", "three", "three_min", "rss", "cpu", "held")}
               for key in report.TABLE}

        def measure(server):
            row = raw[server.key]
            row["one"].append(fib_perf(server, "-c", 1, "-d", SECONDS)["rps"])
            if server.key != "floor":
                summary = fib_perf(server, "-c", 1, "-n", 30, "-d", max(SECONDS, 1), "--requests", FIB30_REQUESTS)
                row["fib30"].append(latency(summary, "p50"))
            peak = [0]
            summary = fib_perf(server, "-c", 3, "-d", SECONDS, sample=lambda: peak.append(server.rss_kib()))
            row["rss"].append(max(peak) / 1024)
            row["three"].append(summary["rps"] / 3)
            row["three_min"].append(summary["per_connection_rps"]["min"])

        self.each_round(report.TABLE, measure)
        # CPU per request at a fixed rate every server holds: half the slowest
        # one-connection rate, rounded down to 1, 2 or 5 times a power of ten.
        slowest = min(statistics.median(raw[key]["one"]) for key in raw)
        rate = max(1, nice_floor(slowest / 2))

        def fixed(server):
            summary = fib_perf(server, "-c", 1, "--rate", rate, "-d", SECONDS)
            raw[server.key]["cpu"].append(summary["server_cpu_us"])
            raw[server.key]["held"].append(held(summary))

        self.each_round(report.TABLE, fixed)
        self.results["table"] = {
            "fixed_rate": rate,
            "rows": {key: {"one_client_rps": stat(r["one"]), "fib30_ms": stat([v / 1000 for v in r["fib30"] if v]),
                           "three_clients_rps_per_client": stat(r["three"]),
                           "three_clients_slowest_connection_rps": stat(r["three_min"]),
                           "rss_mib": stat(r["rss"]), "cpu_us_per_request": stat(r["cpu"]),
                           "rate_held": all(r["held"])} for key, r in raw.items()}}

    def sweep(self):
        raw = {key: {c: [] for c in SWEEP} for key in self.present(report.SWEPT)}
        for connections in SWEEP:
            def measure(server):
                raw[server.key][connections].append(fib_perf(server, "-c", connections, "-d", SECONDS))
            self.each_round(raw, measure)
        self.results["sweep"] = {key: {str(c): {"rps": stat([s["rps"] for s in runs]),
                                                "p99_us": stat([latency(s, "p99") for s in runs]),
                                                "cpu_us_per_request": stat([s["server_cpu_us"] for s in runs])}
                                       for c, runs in per.items()} for key, per in raw.items()}

    def floor(self):
        """The thread mode and the uring mode against the two floors and Go:
        server CPU per request at a fixed rate; req/s and server CPU per
        request in closed loops at saturation, with fib_perf and again with
        bench/min_client, a second client with none of fib_perf's load loop."""
        raw = {key: {"cpu3": [], "cpu64": [], "held3": [], "held64": [],
                     **{(tool, c): [] for tool in FLOOR_CLIENTS for c in FLOOR_CLOSED},
                     **{("ops", tool): [] for tool in FLOOR_CLIENTS}} for key in self.floor_set}

        def measure(server):
            row = raw[server.key]
            for connections, name in ((3, "cpu3"), (64, "cpu64")):
                summary = fib_perf(server, "-c", connections, "--rate", FLOOR_RATE, "-d", SECONDS)
                row[name].append(summary["server_cpu_us"])
                row[f"held{connections}"].append(held(summary))
            for c in FLOOR_CLOSED:
                for tool in FLOOR_CLIENTS:
                    counted = server.key in RING_OPS and c == OPS_CONNECTIONS
                    before = ring_ops(server) if counted else None
                    row[tool, c].append(fib_perf(server, "-c", c, "-d", SECONDS) if tool == "fib_perf"
                                        else min_client(server, c))
                    if counted:
                        row["ops", tool].append(per_request(before, ring_ops(server)))

        self.each_round(self.floor_set, measure)
        self.results["floor"] = {"rate": FLOOR_RATE, "closed_loop_connections": FLOOR_CLOSED, "rows": {
            key: {"cpu_us_per_request_3": stat(r["cpu3"]), "cpu_us_per_request_64": stat(r["cpu64"]),
                  "rate_held_3": all(r["held3"]), "rate_held_64": all(r["held64"]),
                  "closed_loop": {tool: {str(c): {"rps": stat([s["rps"] for s in r[tool, c]]),
                                                  "cpu_us_per_request": stat([s["server_cpu_us"] for s in r[tool, c]])}
                                         for c in FLOOR_CLOSED} for tool in FLOOR_CLIENTS},
                  **({"ring_ops_per_request": {tool: {what: stat([s[what] for s in r["ops", tool]])
                                                      for what in ("submissions", "completions")}
                                               for tool in FLOOR_CLIENTS}} if key in RING_OPS else {})}
            for key, r in raw.items()}, "ring_ops_connections": OPS_CONNECTIONS}

    def connections(self):
        """New connections per second, and memory per idle connection."""
        raw = {key: {"rate": [], "cpu": [], "time_wait": [], "failed": []}
               for key in self.present(report.CHURN) + (["baseline"] if BASELINE else [])}

        def measure(server):
            rate, cpu, waiting, failed = churn(server)
            raw[server.key]["rate"].append(rate)
            raw[server.key]["cpu"].append(cpu)
            raw[server.key]["time_wait"].append(waiting)
            raw[server.key]["failed"].append(failed)

        self.each_round(list(raw), measure)
        self.results["churn"] = {key: {"connections_per_s": stat(r["rate"]), "cpu_us_per_connection": stat(r["cpu"]),
                                       "time_wait_before": r["time_wait"], "failed": r["failed"]}
                                 for key, r in raw.items()}
        memory = {}
        for key in self.present(report.IDLE) + (["baseline"] if BASELINE else []):
            log(f"idle memory: {key}")
            with self.servers[key] as server:
                per, opened = idle_memory(server)
            memory[key] = {"kib_per_connection": per, "open": opened}
        self.results["idle_memory"] = {"connections": IDLE, "rows": memory}

    def demo(self):
        """The talk's demo: a fib(1) client alone, then beside two connections pipelining fib(40)."""
        raw = {key: {k: [] for k in ("p99", "p99_beside", "rps", "rps_beside", "held", "held_beside")}
               for key in self.present(report.DEMO)}

        def measure(server):
            row = raw[server.key]
            for suffix in ("", "_beside"):
                load = fib_perf(server, "-c", 2, "-n", 40, "--pipeline", 4, "-d", 3 * SECONDS + 10,
                                background=True) if suffix else None
                if load:
                    time.sleep(0.3)
                summary = fib_perf(server, "-c", 1, "--rate", DEMO_RATE, "-d", SECONDS, "--timeout", SECONDS + 1)
                row["p99" + suffix].append(latency(summary, "p99"))
                row["held" + suffix].append(held(summary))
                row["rps" + suffix].append(
                    fib_perf(server, "-c", 1, "-d", SECONDS, "--timeout", SECONDS + 1)["rps"])
                if load:
                    load.kill()
                    load.wait()

        self.each_round(list(raw), measure)
        self.results["demo"] = {"rate": DEMO_RATE, "rows": {
            key: {"p99_us_alone": stat(r["p99"]), "p99_us_beside": stat(r["p99_beside"]),
                  "rps_alone": stat(r["rps"]), "rps_beside": stat(r["rps_beside"]),
                  "rate_held_alone": all(r["held"]), "rate_held_beside": all(r["held_beside"])}
            for key, r in raw.items()}}

    def client(self):
        """fib_perf's own cost: its CPU per request against bench/min_client's
        (a blocking C++ loop that checks and times nothing) and, with one
        connection, against the talk's perf2 client in CPython
        (bench/peers/perf2.py), all three against the floor."""
        runs = [("fib_perf", 1), ("min_client", 1), ("perf2.py", 1), ("fib_perf", 3), ("min_client", 3)]
        raw = {run: {"rps": [], "cpu": []} for run in runs}

        def children_cpu():
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime

        def measure(server):
            for tool, c in runs:
                before = children_cpu()
                if tool == "fib_perf":
                    rps = fib_perf(server, "-c", c, "-d", SECONDS)["rps"]
                elif tool == "min_client":
                    rps = min_client(server, c)["rps"]
                else:
                    done = subprocess.run(["python3", f"{REPO}/bench/peers/perf2.py", server.address, str(SECONDS)],
                                          capture_output=True, text=True, check=True)
                    rps = float(done.stdout.split()[0])
                raw[tool, c]["rps"].append(rps)
                raw[tool, c]["cpu"].append((children_cpu() - before) * 1e6 / (rps * SECONDS) if rps else None)

        self.each_round(["floor"], measure)
        self.results["client"] = {f"{tool} {c}": {"rps": stat(r["rps"]), "cpu_us_per_request": stat(r["cpu"])}
                                  for (tool, c), r in raw.items()}

    def probes(self):
        rows = {}
        for key, server in self.servers.items():
            with server:
                ok, got = probe(server)
            rows[key] = {"name": server.name, "command": server.command(), "answers_correct": ok, "probe": got}
            log(f"{key}: answers {'correct' if ok else 'WRONG: ' + repr(got)}")
        self.results["servers"] = rows

    def run(self):
        self.results.update(machine=machine(), settings={
            "quick": QUICK, "rounds": ROUNDS, "run_seconds": SECONDS, "idle_connections": IDLE, "sweep": SWEEP,
            "sections": SECTIONS, "left_out": self.left_out})
        started = time.monotonic()
        self.probes()
        for name in ALL_SECTIONS:
            if name in SECTIONS:
                getattr(self, name)()
        # Where the servers' CPU was read, and the coarsest step among those
        # sources: report.check takes a CPU figure of 0 for what it is when
        # the step is a clock tick.
        used = sorted(cpu_sources_used, key=list(SOURCES).index)
        self.results["settings"].update(cpu_source=" and ".join(SOURCES[key][0] for key in used),
                                        cpu_resolution_us=max(SOURCES[key][1] for key in used))
        self.results["checked_runs"] = {
            "runs": len(runs_checked),
            "with_wrong_answers": [r for r in runs_checked if r[3] or r[4]]}
        self.results["elapsed_s"] = round(time.monotonic() - started)


def nice_floor(value):
    """The largest 1, 2 or 5 times a power of ten not above value."""
    scale = 1
    while scale * 10 <= value:
        scale *= 10
    return max(m * scale for m in (1, 2, 5) if m * scale <= value) if value >= 1 else 0


def machine():
    def git(*args):
        try:
            return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {"cpu": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            # Changes to what is built or run, not to documents or results.
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "apps", "src", "include",
                              "bench/peers", "bench/*.cpp", "bench/*.py", "CMakeLists.txt", "cmake"))}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        sys.exit(report.check(sys.argv[2], SECTIONS))
    unknown = set(SECTIONS) - set(ALL_SECTIONS)
    if unknown:
        sys.exit(f"compare: SECTIONS: unknown {', '.join(sorted(unknown))}; the sections are {','.join(ALL_SECTIONS)}")
    if CPU_SOURCE not in CPU_SOURCES:
        sys.exit(f"compare: CPU_SOURCE: unknown {CPU_SOURCE}; it is one of {', '.join(CPU_SOURCES)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A SIGTERM or SIGHUP unwinds like Ctrl-C, so the servers are stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _: sys.exit(128 + number))
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, GOCACHE=os.path.join(work, "gocache"), GOPATH=os.path.join(work, "go"))
        subprocess.run(["go", "build", "-o", f"{work}/fib_go", f"{REPO}/bench/peers/fib_go.go"], check=True, env=env)
        subprocess.run(["gcc", "-O2", "-pthread", "-o", f"{work}/floor", f"{REPO}/bench/peers/floor.c"], check=True)
        # One program for both io_uring floors: "multishot" picks the second's receives.
        subprocess.run(["gcc", "-O2", "-pthread", "-o", f"{work}/uring_floor", f"{REPO}/bench/peers/uring_floor.c",
                        "-luring"], check=True)
        bench = Bench(work)
        try:
            bench.run()
        finally:
            for server in bench.servers.values():
                server.stop()
                server.remove_cgroup()
    os.makedirs(OUT, exist_ok=True)
    report.write(bench.results, OUT)
    if OUT == RESULTS and FULL:
        with open(os.path.join(OUT, "results.md")) as f:
            if report.update_docs(REPO, bench.results, f.read()):
                log("README.md and docs/performance.md now show these results")
    sys.exit(report.check(OUT, SECTIONS))

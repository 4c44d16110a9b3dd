"""bench/compare.py's output: results.json as measured, results.md (the
tables the README quotes), sweep_*.png drawn by gnuplot, and the check that
every row is there and every server answered correctly."""
import json
import os
import subprocess

# The servers each section measures, in the order of its rows; of those with
# "uring", the ones the run had (results.json's "servers": the io_uring ones
# are left out where the kernel or fib_server has no io_uring).
TABLE = ["thread", "coroutine", "sequential", "go", "cpython", "pypy", "asyncio", "floor"]
CHURN = TABLE[:2] + ["uring"] + TABLE[2:]  # new connections per second
SWEPT = ["thread", "coroutine", "uring", "go", "uring_floor", "uring_multishot_floor"]  # the sweep over connections
FLOOR = ["thread", "floor", "go", "coroutine", "uring", "uring_floor", "uring_multishot_floor"]  # against the floors
# Short names, for the floor section's ratios and the servers a run left out.
SHORT = {"thread": "thread mode", "coroutine": "coroutine mode", "uring": "uring mode", "go": "Go", "floor": "floor",
         "uring_floor": "io_uring floor", "uring_multishot_floor": "io_uring multishot floor"}
# The floor section's ratios: a server against its floor and against Go.
FLOOR_RATIOS = [("thread", "floor"), ("thread", "go"), ("uring", "uring_floor"), ("uring", "uring_multishot_floor"),
                ("uring", "go"), ("uring_floor", "go"), ("uring_multishot_floor", "go"),
                ("uring_multishot_floor", "uring_floor")]
IDLE = ["thread", "coroutine", "uring", "go", "cpython", "pypy", "asyncio", "floor"]  # idle memory: all but sequential
DEMO = ["thread", "coroutine", "uring", "sequential", "go", "cpython", "pypy", "asyncio"]  # all that compute

# A CPU source counting in steps this coarse (clock ticks) can read 0 over a
# short run: below its resolution, not missing. The finer ones (a cgroup,
# the CPU-time clocks) cannot read 0 for a server that answered.
COARSE_CPU_US = 1000


def coarse_cpu(settings):
    """The resolution of the CPU figures in microseconds when it is as
    coarse as a clock tick, else None (results.json before it was recorded
    included)."""
    resolution = settings.get("cpu_resolution_us")
    return resolution if resolution and resolution >= COARSE_CPU_US else None


def not_held(held):
    """The mark of an open-loop figure whose rate fib_perf did not keep."""
    return "" if held else " (rate not held)"


def heading(title, text, columns):
    """A section's title, what it shows, and its table's header rows."""
    return [f"### {title}", "", *([text, ""] if text else []), "| " + " | ".join(columns) + " |",
            "|" + " --- |" * len(columns)]


def number(value):
    if value is None:
        return "none"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def cell(s, none="none answered"):
    """median (min-max) of a stat, or what it means when there were no runs with a value."""
    if s is None:
        return none
    if s["min"] == s["max"]:
        return number(s["median"])
    return f"{number(s['median'])} ({number(s['min'])}-{number(s['max'])})"


def ratio(a, b):
    if not a or not b or not a["median"] or not b["median"]:  # a CPU median of 0: below a clock tick
        return "n/a"
    return f"{a['median'] / b['median']:.2f}x"


def present(r, keys):
    """Those of keys the run measured."""
    return [key for key in keys if key in r["servers"]]


def table_md(r, names):
    t = r["table"]
    out = heading("The write-up's table", "",
                  ["server", "one client, fib(1), req/s", "fib(30) latency, ms",
                   "three clients at once, req/s per client",
                   "the slowest of the three, req/s", "resident memory, three clients, MiB",
                   f"server CPU per request at {t['fixed_rate']:,} req/s, us"])
    for key in TABLE:
        row = t["rows"][key]
        cpu = cell(row["cpu_us_per_request"]) + not_held(row["rate_held"])
        fib30 = "does not compute" if key == "floor" else cell(row["fib30_ms"])
        out.append(f"| {names[key]} | {cell(row['one_client_rps'])} | {fib30} | "
                   f"{cell(row['three_clients_rps_per_client'])} | "
                   f"{cell(row['three_clients_slowest_connection_rps'])} | {cell(row['rss_mib'])} | {cpu} |")
    return out


def sweep_md(r, names):
    swept = present(r, SWEPT)
    out = heading("Connections from 1 to 256",
                  "Closed loop, fib(1): req/s, p99 latency (us), server CPU per request (us).",
                  ["connections"] + [names[k] for k in swept])
    for c in r["settings"]["sweep"]:
        cells = []
        for key in swept:
            s = r["sweep"][key][str(c)]
            cells.append(f"{cell(s['rps'])} req/s, p99 {cell(s['p99_us'])}, CPU {cell(s['cpu_us_per_request'])}")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    return out + ["", "![req/s against connections](sweep_rps.png) ![p99 against connections](sweep_p99.png) "
                  "![server CPU per request against connections](sweep_cpu.png)"]


def closed_loops(f, row):
    """A floor row's closed loops: {client: {connections: {rps, cpu_us_per_request}}}. A run before
    they were measured with both clients had fib_perf's req/s over 64 connections alone."""
    if "closed_loop" in row:
        return row["closed_loop"]
    return {"fib_perf": {"64": {"rps": row.get("closed_loop_64_rps"), "cpu_us_per_request": None}}}


def floor_md(r, names):
    f = r["floor"]
    churn = r.get("churn", {})
    rows = f["rows"]
    pairs = [(a, b) for a, b in FLOOR_RATIOS if a in rows and b in rows]

    def per_connection(key):
        return cell(churn[key]["cpu_us_per_connection"]) if key in churn else "not measured"

    out = heading("fib_server against the floors",
                  f"Server CPU per request (us) at {f['rate']:,} req/s offered, fib(1); server CPU per new connection "
                  "(us; connect, fib(1), close; from the churn run below).",
                  ["server", "CPU per request, 3 connections", "CPU per request, 64 connections",
                   "CPU per new connection"])
    for key, row in rows.items():
        out.append(f"| {names[key]} | {cell(row['cpu_us_per_request_3'])}{not_held(row['rate_held_3'])} | "
                   f"{cell(row['cpu_us_per_request_64'])}{not_held(row['rate_held_64'])} | "
                   f"{per_connection(key)} |")
    for a, b in pairs:
        per = (ratio(churn[a]["cpu_us_per_connection"], churn[b]["cpu_us_per_connection"])
               if a in churn and b in churn else "n/a")
        out.append(f"| {SHORT[a]} / {SHORT[b]} | "
                   f"{ratio(rows[a]['cpu_us_per_request_3'], rows[b]['cpu_us_per_request_3'])} | "
                   f"{ratio(rows[a]['cpu_us_per_request_64'], rows[b]['cpu_us_per_request_64'])} | {per} |")
    # The closed loops: every client and connection count any row has, in the order measured.
    loops = [(tool, c) for tool, per in closed_loops(f, next(iter(rows.values()))).items() for c in per]
    loops.sort(key=lambda loop: int(loop[1]))
    out += [""] + heading("Closed loops at saturation, two clients",
                          "Closed loop, fib(1): req/s and server CPU per request (us), loaded by fib_perf and, in the "
                          "same rounds, by bench/min_client (a blocking C++ loop, a thread per connection, that "
                          "checks no answer and has none of fib_perf's load loop), so that what the client decides "
                          "shows. Server CPU is over the "
                          "whole client run, its connecting and closing included.",
                          ["server"] + [f"{tool}, {c} connections" for tool, c in loops])

    def figure(key, tool, c):
        s = closed_loops(f, rows[key]).get(tool, {}).get(c)
        if s is None:
            return "not measured"
        cpu = f", CPU {cell(s['cpu_us_per_request'])}" if s["cpu_us_per_request"] is not None else ""
        return f"{cell(s['rps'])} req/s{cpu}"

    def ratios(a, b, tool, c):
        x, y = (closed_loops(f, rows[key]).get(tool, {}).get(c) for key in (a, b))
        if x is None or y is None:
            return "n/a"
        return f"req/s {ratio(x['rps'], y['rps'])}, CPU {ratio(x['cpu_us_per_request'], y['cpu_us_per_request'])}"

    for key in rows:
        out.append(f"| {names[key]} | " + " | ".join(figure(key, tool, c) for tool, c in loops) + " |")
    for a, b in pairs:
        out.append(f"| {SHORT[a]} / {SHORT[b]} | " + " | ".join(ratios(a, b, tool, c) for tool, c in loops) + " |")
    counted = {key: row["ring_ops_per_request"] for key, row in rows.items() if "ring_ops_per_request" in row}
    if counted:
        tools = list(next(iter(counted.values())))
        out += [""] + heading("Ring operations per request",
                              f"The io_uring floors' own counts over the closed loops at "
                              f"{f.get('ring_ops_connections', 64)} connections above: submissions (entries queued) "
                              "and completions (entries reaped) per request answered.",
                              ["server"] + [f"{tool}: submissions, completions" for tool in tools])
        for key, ops in counted.items():
            out.append(f"| {names[key]} | " + " | ".join(
                f"{cell(ops[tool]['submissions'])}, {cell(ops[tool]['completions'])}" for tool in tools) + " |")
    return out


def connections_md(r, names):
    idle, churn = r["idle_memory"], r["churn"]
    out = heading("Connections: new ones per second, idle ones in memory",
                  "New connections per second from bench/churn (2 threads: connect, fib(1), close; each connection "
                  "from a loopback source address of its own), with the server's CPU per connection and the TIME_WAIT "
                  f"sockets present before each run; resident memory per idle connection with {idle['connections']:,} "
                  "open (each served once), one run.",
                  ["server", "new connections/s", "server CPU per connection, us", "TIME_WAIT before",
                   "KiB per idle connection"])
    for key in churn:
        waits = churn[key]["time_wait_before"]
        memory = idle["rows"].get(key)
        kib = "serves one connection at a time" if memory is None else (
            number(memory["kib_per_connection"]) if memory["open"] == idle["connections"]
            else f"only {memory['open']} opened")
        out.append(f"| {names[key]} | {cell(churn[key]['connections_per_s'])} | "
                   f"{cell(churn[key]['cpu_us_per_connection'])} | {min(waits):,}-{max(waits):,} | {kib} |")
    return out


def demo_md(r, names):
    d = r["demo"]
    out = heading("The talk's demo",
                  f"A fib(1) client at {d['rate']:,} req/s (p99 latency, counted from each request's scheduled time) "
                  "and in a closed loop (req/s), alone and while two other connections pipeline fib(40) (4 in flight "
                  "each). \"none answered\": not one answer within the run.",
                  ["server", "p99 alone, us", "p99 beside fib(40), us", "req/s alone", "req/s beside fib(40)"])
    for key, row in d["rows"].items():
        out.append(f"| {names[key]} | {cell(row['p99_us_alone'])}{not_held(row['rate_held_alone'])} | "
                   f"{cell(row['p99_us_beside'])}{not_held(row['rate_held_beside'])} | "
                   f"{cell(row['rps_alone'])} | {cell(row['rps_beside'])} |")
    return out


def client_md(r, names):
    c = r["client"]
    out = heading("The client's own cost",
                  "Closed loop against the floor: req/s and the client's own CPU per request (us). fib_perf checks "
                  "every answer and records every latency; bench/min_client (C++, blocking, a thread per connection) "
                  "sends and receives and does nothing else; perf2.py is the talk's perf2 client in CPython (one "
                  "connection, `1` without a newline, a monitor thread).",
                  ["connections", "fib_perf", "min_client", "perf2.py", "fib_perf / min_client CPU"])
    for n in (1, 3):
        a, b, p = c[f"fib_perf {n}"], c[f"min_client {n}"], c.get(f"perf2.py {n}")
        third = f"{cell(p['rps'])} req/s, CPU {cell(p['cpu_us_per_request'])}" if p else "one connection only"
        out.append(f"| {n} | {cell(a['rps'])} req/s, CPU {cell(a['cpu_us_per_request'])} | {cell(b['rps'])} req/s, "
                   f"CPU {cell(b['cpu_us_per_request'])} | {third} | "
                   f"{ratio(a['cpu_us_per_request'], b['cpu_us_per_request'])} |")
    return out


SECTION_MD = {"table": table_md, "sweep": sweep_md, "floor": floor_md, "connections": connections_md,
              "demo": demo_md, "client": client_md}


def markdown(r):
    m, settings = r["machine"], r["settings"]
    names = {key: row["name"] for key, row in r["servers"].items()}
    step = coarse_cpu(settings)
    steps = f" (in steps of {step:,.0f} us: a CPU figure of 0 is less than one step over the run)" if step else ""
    out = [f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, commit {m['commit']}"
           f"{' with uncommitted changes' if m['dirty'] else ''}: medians (min-max) of {settings['rounds']} "
           f"alternating runs of {settings['run_seconds']:g} s, each server started afresh for each round; client "
           f"fib_perf; server CPU from {settings['cpu_source']}, over all of the server's threads and "
           f"processes{steps}."]
    left_out = settings.get("left_out") or {}
    if left_out:
        out[0] += " Not measured here: " + "; ".join(f"{SHORT.get(key, key)} ({why})"
                                                     for key, why in left_out.items()) + "."
    for name in settings["sections"]:
        out += [""] + SECTION_MD[name](r, names)
    out += [""] + heading("The servers", "", ["server", "command", "answers checked"])
    for row in r["servers"].values():
        out.append(f"| {row['name']} | `{row['command']}` | {'correct' if row['answers_correct'] else 'WRONG'} |")
    checked = r["checked_runs"]
    out += ["", f"{checked['runs']} fib_perf runs, every answer checked: "
            f"{len(checked['with_wrong_answers'])} with wrong answers or error replies. \"(rate not held)\": fib_perf "
            "sent fewer than 99% of the requests due, or more than 1% over 1 ms late. Took "
            f"{r['elapsed_s']} s.", ""]
    return "\n".join(out)


def plots(r, out):
    swept = present(r, SWEPT)
    names = {key: r["servers"][key]["name"] for key in swept}
    for metric, title in (("rps", "req/s"), ("p99_us", "p99 latency (us)"), ("cpu_us_per_request",
                                                                            "server CPU per request (us)")):
        data = os.path.join(out, f"sweep_{metric}.dat")
        with open(data, "w") as f:
            for c in r["settings"]["sweep"]:
                values = [r["sweep"][key][str(c)][metric] for key in swept]
                f.write(f"{c} " + " ".join(str(v["median"]) if v else "NaN" for v in values) + "\n")
        name = {"rps": "rps", "p99_us": "p99", "cpu_us_per_request": "cpu"}[metric]
        lines = ", ".join(f"'{data}' using 1:{i + 2} with linespoints title '{names[key]}'"
                          for i, key in enumerate(swept))
        script = (f"set terminal pngcairo noenhanced size 720,420; set output '{out}/sweep_{name}.png';"
                  f"set logscale x 2; {'set logscale y 10;' if name == 'p99' else ''}"
                  f"set xlabel 'connections'; set ylabel '{title}'; set key top left;"
                  f"set title 'Closed loop, fib(1): {title}'; set grid; plot {lines}")
        subprocess.run(["gnuplot", "-e", script], check=True)
        os.remove(data)


README_BEGIN = "<!-- bench/results/results.md begins: bench/compare.sh rewrites what follows -->"
README_END = "<!-- bench/results/results.md ends -->"
HEADLINE_BEGIN = "<!-- headline of bench/results: python3 bench/report.py docs rewrites what follows -->"
HEADLINE_END = "<!-- headline ends -->"
HEADLINE = ["thread", "coroutine", "sequential", "go", "cpython", "pypy", "asyncio"]


def headline_md(r):
    """The README's few lines: the write-up's table, its main columns, and
    the plot of server CPU per request against connections."""
    t = r["table"]
    names = {key: row["name"] for key, row in r["servers"].items()}
    out = [f"Measured {r['machine']['date']} on {r['machine']['cores']} cores, commit {r['machine']['commit']}; "
           f"medians (min-max) of {r['settings']['rounds']} alternating runs "
           "([how, and everything else measured](docs/performance.md)).", "",
           f"| server | one client, fib(1), req/s | fib(30) latency, ms | three clients at once, req/s per client | "
           f"server CPU per request at {t['fixed_rate']:,} req/s, us |", "| --- | --- | --- | --- | --- |"]
    for key in HEADLINE:
        row = t["rows"][key]
        out.append(f"| {names[key]} | {cell(row['one_client_rps'])} | {cell(row['fib30_ms'])} | "
                   f"{cell(row['three_clients_rps_per_client'])} | "
                   f"{cell(row['cpu_us_per_request'])}{not_held(row['rate_held'])} |")
    if "sweep" in r:
        out += ["", "![server CPU per request against connections, closed loop, fib(1)](bench/results/sweep_cpu.png)"]
    return "\n".join(out)


def between(path, begin, end, body):
    """Puts body between the markers of the file at path; False when it has none."""
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(f"{head}{begin}\n\n{body.strip()}\n\n{end}{tail}")
    return True


def update_docs(repo, results, md):
    """Puts results.md in docs/performance.md (headings one level down, the
    plots' paths from docs/) and the headline in the README."""
    body = md.replace("\n### ", "\n#### ").replace("](sweep_", "](../bench/results/sweep_")
    full = between(os.path.join(repo, "docs", "performance.md"), README_BEGIN, README_END, body)
    head = between(os.path.join(repo, "README.md"), HEADLINE_BEGIN, HEADLINE_END, headline_md(results))
    return full and head


def write(results, out):
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results))
    if "sweep" in results:
        plots(results, out)


def check(out, sections):
    """0 when every server answered correctly and every row of the given
    sections has its figures."""
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    problems, notes = [], []

    def need(condition, what):
        if not condition:
            problems.append(what)

    def positive(s):  # a figure measured in every run, above zero
        return bool(s) and s["n"] == r["settings"]["rounds"] and s["min"] > 0

    resolution = coarse_cpu(r["settings"])

    def cpu(s, what):
        """A server CPU figure: positive, or 0 in some runs from a source
        too coarse to see the CPU of a short run, which is said, not failed."""
        if positive(s):
            return True
        if not (resolution and s and s["n"] == r["settings"]["rounds"] and s["min"] == 0):
            return False
        zeros = sum(1 for v in s["runs"] if v == 0)
        notes.append(f"{what}: 0 in {zeros} of {s['n']} runs, below the resolution of {r['settings']['cpu_source']} "
                     f"({resolution:,.0f} us of CPU per run): a known limit, not a failure")
        return True

    for section in sections:
        need(section in r["settings"]["sections"], f"section {section}: not measured")
    for key in TABLE + [key for key in r["servers"] if key not in TABLE]:
        need(r["servers"].get(key, {}).get("answers_correct"), f"{key}: wrong answers to the probe")
    if "table" in r:
        for key in TABLE:
            row = r["table"]["rows"].get(key, {})
            for field in ("one_client_rps", "three_clients_rps_per_client", "rss_mib"):
                need(positive(row.get(field)), f"table: {key}: no {field}")
            need(cpu(row.get("cpu_us_per_request"), f"table: {key}: cpu_us_per_request"),
                 f"table: {key}: no cpu_us_per_request")
            need(key == "floor" or positive(row.get("fib30_ms")), f"table: {key}: no fib(30) latency")
    if "sweep" in r:
        for key in present(r, SWEPT):
            for c in r["settings"]["sweep"]:
                s = r["sweep"].get(key, {}).get(str(c), {})
                need(all(positive(s.get(f)) for f in ("rps", "p99_us"))
                     and cpu(s.get("cpu_us_per_request"), f"sweep: {key}: {c}: cpu_us_per_request"),
                     f"sweep: {key}: {c}: missing")
        for name in ("rps", "p99", "cpu"):
            path = os.path.join(out, f"sweep_{name}.png")
            need(os.path.exists(path) and os.path.getsize(path) > 1000, f"{path}: missing")
    if "floor" in r:
        # A run since the closed loops had two clients names their connection counts.
        closed = r["floor"].get("closed_loop_connections")
        for key in present(r, FLOOR):
            row = r["floor"]["rows"].get(key, {})
            need(all(cpu(row.get(f), f"floor: {key}: {f}") for f in ("cpu_us_per_request_3", "cpu_us_per_request_64")),
                 f"floor: {key}: missing")
            if closed is None:
                need(positive(row.get("closed_loop_64_rps")), f"floor: {key}: missing")
                continue
            for tool in ("fib_perf", "min_client"):
                for c in closed:
                    s = row.get("closed_loop", {}).get(tool, {}).get(str(c), {})
                    what = f"floor: {key}: {tool}, {c} connections"
                    need(positive(s.get("rps")) and cpu(s.get("cpu_us_per_request"), f"{what}: cpu_us_per_request"),
                         f"{what}: missing")
    if "churn" in r:
        for key in present(r, CHURN):
            row = r["churn"].get(key, {})
            need(positive(row.get("connections_per_s"))
                 and cpu(row.get("cpu_us_per_connection"), f"churn: {key}: cpu_us_per_connection"),
                 f"churn: {key}: no figure")
            # A connection that fails is one the server refused or dropped.
            need(sum(row.get("failed", [1])) == 0, f"churn: {key}: {row.get('failed')} connections failed")
        for key in present(r, IDLE):
            row = r["idle_memory"]["rows"].get(key, {})
            need(row.get("open") == r["idle_memory"]["connections"] and row.get("kib_per_connection") is not None,
                 f"idle memory: {key}: not all connections were served")
    if "demo" in r:
        for key in present(r, DEMO):
            row = r["demo"]["rows"].get(key, {})
            # Beside fib(40), a server may answer nothing at all (that is the demo); alone it must.
            need(positive(row.get("p99_us_alone")) and positive(row.get("rps_alone")), f"demo: {key}: no answers alone")
            need("p99_us_beside" in row and "rps_beside" in row, f"demo: {key}: no row beside fib(40)")
    if "client" in r:
        for key, row in r["client"].items():
            need(positive(row["rps"]) and positive(row["cpu_us_per_request"]), f"client: {key}: missing")
    need(r["checked_runs"]["runs"] > 0, "no fib_perf runs")
    need(not r["checked_runs"]["with_wrong_answers"],
         f"wrong answers or error replies: {r['checked_runs']['with_wrong_answers']}")
    with open(os.path.join(out, "results.md")) as f:
        text = f.read()
    for key in r["servers"]:
        need(r["servers"][key]["name"] in text, f"results.md: no row for {key}")
    for note in notes:
        print(f"compare: check: note: {note}")
    for problem in problems:
        print(f"compare: check: {problem}")
    print(f"compare: check: {'FAILED' if problems else 'every row present, every answer correct'} ({out})")
    return 1 if problems else 0


if __name__ == "__main__":
    # python3 bench/report.py docs: the README's headline and
    # docs/performance.md from bench/results, as bench/compare.sh leaves them.
    import sys
    if sys.argv[1:] != ["docs"]:
        sys.exit("usage: python3 bench/report.py docs")
    here = os.path.dirname(os.path.abspath(__file__))
    results_dir = os.path.join(here, "results")
    with open(os.path.join(results_dir, "results.json")) as f:
        measured = json.load(f)
    with open(os.path.join(results_dir, "results.md")) as f:
        sys.exit(0 if update_docs(os.path.dirname(here), measured, f.read()) else 1)

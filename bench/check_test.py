"""report.check on server CPU figures of 0 (bench_report_check in ctest,
label bench): from a source counting in clock ticks (/proc/PID/stat) they
are below its resolution, which the check says and passes; from a finer
source, or from results.json that does not give the resolution, they are
figures missing and fail it, as does a figure missing from a run whatever
the source. The fixture is the committed full run, bench/results; where it
was measured before the floor section's closed loops had two clients, it is
also made over into that shape, whose figures the check must then find."""
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

import report

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
failures = []


def cpu_figures(r):
    """Every server CPU figure of the results: (row, field)."""
    yield from ((row, "cpu_us_per_request") for row in r["table"]["rows"].values())
    yield from ((row, f) for row in r["floor"]["rows"].values() for f in ("cpu_us_per_request_3",
                                                                          "cpu_us_per_request_64"))
    yield from ((loop, "cpu_us_per_request") for row in r["floor"]["rows"].values()
                for per in row.get("closed_loop", {}).values() for loop in per.values())
    yield from ((per, "cpu_us_per_request") for runs in r["sweep"].values() for per in runs.values())
    yield from ((row, "cpu_us_per_connection") for row in r["churn"].values())


def check(work, what, change, status, expected):
    """Runs report.check on the fixture as change(results) leaves it: it
    must return status and print every line of expected."""
    with open(os.path.join(RESULTS, "results.json")) as f:
        r = json.load(f)
    change(r)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(r, f)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        got = report.check(work, r["settings"]["sections"])
    missing = [line for line in expected if line not in printed.getvalue()]
    verdict = "ok" if got == status and not missing else "FAILED"
    print(f"{verdict}: {what}: check returned {got} (expected {status})")
    if verdict != "ok":
        for line in missing:
            print(f"  expected and not printed: {line}")
        print(printed.getvalue())
        failures.append(what)


def zero(r, source, resolution):
    """Every CPU figure 0 in every run, read from source."""
    for row, field in cpu_figures(r):
        n = row[field]["n"]
        row[field] = {"median": 0, "min": 0, "max": 0, "runs": [0] * n, "n": n}
    r["settings"]["cpu_source"] = source
    if resolution is None:
        r["settings"].pop("cpu_resolution_us", None)
    else:
        r["settings"]["cpu_resolution_us"] = resolution


def two_clients(r):
    """The floor section as measured since its closed loops have two clients
    and two connection counts (bench/compare.py's floor), from the fixture's
    figures where it has none of its own."""
    f = r["floor"]
    if "closed_loop_connections" in f:
        return
    f["closed_loop_connections"] = [64, 256]
    for row in f["rows"].values():
        figures = {"rps": row.pop("closed_loop_64_rps"), "cpu_us_per_request": row["cpu_us_per_request_64"]}
        row["closed_loop"] = {tool: {c: dict(figures) for c in ("64", "256")} for tool in ("fib_perf", "min_client")}


def main():
    with tempfile.TemporaryDirectory() as work:
        for name in os.listdir(RESULTS):
            shutil.copy(os.path.join(RESULTS, name), work)
        ticks = "/proc/PID/stat clock ticks"
        check(work, "the committed run", lambda r: None, 0, ["every row present"])
        check(work, "0 from clock ticks", lambda r: zero(r, ticks, 10000), 0,
              ["compare: check: note: table: thread: cpu_us_per_request: 0 in 3 of 3 runs, below the resolution of "
               "/proc/PID/stat clock ticks (10,000 us of CPU per run): a known limit, not a failure",
               "note: floor: go: cpu_us_per_request_64: 0 in", "note: sweep: coroutine: 256: cpu_us_per_request: 0",
               "note: churn: floor: cpu_us_per_connection: 0", "every row present"])
        check(work, "0 from the CPU-time clocks", lambda r: zero(r, "the processes' CPU-time clocks", 0.001), 1,
              ["compare: check: table: thread: no cpu_us_per_request", "floor: go: missing",
               "sweep: coroutine: 256: missing", "churn: floor: no figure", "FAILED"])
        check(work, "0 with no resolution recorded", lambda r: zero(r, ticks, None), 1,
              ["table: asyncio: no cpu_us_per_request", "FAILED"])

        def one_missing(r):
            zero(r, ticks, 10000)
            row = r["table"]["rows"]["pypy"]["cpu_us_per_request"]
            row.update(runs=row["runs"][1:], n=row["n"] - 1)

        check(work, "a run missing from clock ticks", one_missing, 1, ["table: pypy: no cpu_us_per_request", "FAILED"])
        check(work, "closed loops with two clients", two_clients, 0, ["every row present"])

        def two_clients_zero(r):
            two_clients(r)
            zero(r, ticks, 10000)

        check(work, "closed loops with two clients, 0 from clock ticks", two_clients_zero, 0,
              ["note: floor: thread: min_client, 256 connections: cpu_us_per_request: 0 in 3 of 3",
               "every row present"])

        def min_client_missing(r):
            two_clients(r)
            del r["floor"]["rows"]["go"]["closed_loop"]["min_client"]["256"]

        check(work, "a closed loop missing", min_client_missing, 1,
              ["floor: go: min_client, 256 connections: missing", "FAILED"])

        def markdown(r):
            zero(r, ticks, 10000)
            report.write(r, work)

        check(work, "results.md on clock ticks", markdown, 0, [])
        with open(os.path.join(work, "results.md")) as f:
            if "/proc/PID/stat clock ticks, over all of the server's threads and processes (in steps of 10,000 us: " \
               "a CPU figure of 0 is less than one step over the run)." not in f.read():
                print("FAILED: results.md on clock ticks: its first line does not give the resolution")
                failures.append("results.md")
    print(f"check_test: {len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

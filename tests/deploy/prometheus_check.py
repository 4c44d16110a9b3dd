#!/usr/bin/env python3
"""fib_server scraped by a real Prometheus (Debian's `prometheus`).

Starts fib_server with --metrics, and Prometheus with deploy/prometheus's
alerting rules and a scrape configuration like the example's (1 s
interval, its own temporary storage, loopback only); drives known load with
fib_perf (answers, then error lines) and a raw client (the other kinds of
error line); then asks Prometheus's HTTP API until it has scraped the load,
and checks that every counter it stored is exactly what the clients were
sent, and that the rules are loaded and healthy.

Usage: prometheus_check.py FIB_SERVER FIB_PERF SOURCE_DIR
"""
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

DEADLINE_S = 60  # for each wait: Prometheus's start, a scrape


def fail(message):
    print(f"prometheus_check: {message}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failed(Exception):
    pass


def wait_for(what, probe, alive):
    """Calls probe() until it returns something true; gives up after
    DEADLINE_S, or as soon as alive() says a process it needs has exited."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        if not alive():
            raise Failed(f"waiting for {what}: a process exited")
        time.sleep(0.2)
    raise Failed(f"timed out waiting for {what}")


def fib_perf(binary, port, *args):
    """Runs fib_perf with --json; returns its summary."""
    run = subprocess.run([binary, f"127.0.0.1:{port}", "--json", *args], capture_output=True, text=True, timeout=120)
    return json.loads(run.stdout)


def raw_client(port, lines):
    """Sends lines on one connection, reads one reply per line, closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall("".join(line + "\n" for line in lines).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().splitlines()


class Prometheus:
    def __init__(self, binary, config, storage, port):
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(storage.parent / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as response:
                body = json.load(response)
        except OSError:
            return None
        return body["data"] if body.get("status") == "success" else None

    def value(self, query):
        """The single value of an instant query, or None."""
        data = self.api("query", query=query)
        if not data or len(data["result"]) != 1:
            return None
        return float(data["result"][0]["value"][1])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def main():
    if len(sys.argv) != 4:
        fail("usage: prometheus_check.py FIB_SERVER FIB_PERF SOURCE_DIR")
    server_bin, perf_bin, source = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    prometheus_bin = shutil.which("prometheus")
    if not prometheus_bin:
        print("prometheus_check: prometheus is not installed (bash scripts/setup.sh test installs it): skipped")
        sys.exit(77)

    work = Path(tempfile.mkdtemp(prefix="fib_prometheus."))
    server_log = open(work / "fib_server.log", "w+")
    server = subprocess.Popen([server_bin, "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "warn"],
                              stderr=server_log)
    prometheus = None
    alive = lambda: server.poll() is None and (prometheus is None or prometheus.process.poll() is None)
    passed = False
    try:
        def started():
            server_log.seek(0)
            text = server_log.read()
            metrics = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
            listening = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            return (int(listening.group(1)), int(metrics.group(1))) if metrics and listening else None
        port, metrics_port = wait_for("fib_server to listen", started, alive)

        # The example's configuration, scraping this server every second.
        rules = work / "fib_server.rules.yml"
        shutil.copy(source / "deploy/prometheus/fib_server.rules.yml", rules)
        example = (source / "deploy/prometheus/prometheus.yml").read_text()
        config = example.replace("scrape_interval: 15s", "scrape_interval: 1s") \
                        .replace("evaluation_interval: 15s", "evaluation_interval: 1s") \
                        .replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
        if "scrape_interval: 1s" not in config or f"127.0.0.1:{metrics_port}" not in config:
            raise Failed("deploy/prometheus/prometheus.yml no longer has the scrape interval or target this test rewrites")
        (work / "prometheus.yml").write_text(config)
        prometheus = Prometheus(prometheus_bin, work / "prometheus.yml", work / "data", free_port())
        wait_for("Prometheus to scrape fib_server", lambda: prometheus.value('up{job="fib_server"}') == 1, alive)

        # The load: answers, then error lines of every kind.
        answered = fib_perf(perf_bin, port, "-n", "20", "-c", "3", "--requests", "3000")
        too_large = fib_perf(perf_bin, port, "-n", "46", "-c", "2", "--requests", "200")
        replies = raw_client(port, ["abc", "-7", "12"])
        if answered["errors"] != 0 or too_large["error_replies"] != too_large["errors"]:
            raise Failed(f"fib_perf's runs went wrong: {answered} {too_large}")
        if len(replies) != 3 or not replies[0].startswith("error: ") or not replies[1].startswith("error: ") \
                or replies[2] != "144":
            raise Failed(f"raw client got {replies}")
        expected = {
            "fib_server_answers_total": answered["requests"] + 1,
            'fib_server_error_lines_total{kind="too_large"}': too_large["error_replies"],
            'fib_server_error_lines_total{kind="not_a_number"}': 1,
            'fib_server_error_lines_total{kind="negative"}': 1,
            'fib_server_error_lines_total{kind="line_too_long"}': 0,
            "fib_server_request_duration_seconds_count":
                answered["requests"] + too_large["error_replies"] + 3,
        }

        # Once a scrape after the load has happened, Prometheus holds exactly that.
        def scraped():
            values = {query: prometheus.value(query) for query in expected}
            return values if values == expected else None
        try:
            values = wait_for("Prometheus to hold the counts", scraped, alive)
        except Failed:
            got = {query: prometheus.value(query) for query in expected}
            raise Failed(f"Prometheus holds {got}, expected {expected}")
        for query, value in values.items():
            print(f"query {query} -> {value:g}")

        # The alerting rules loaded, and evaluate without error.
        def rules_ok():
            data = prometheus.api("rules")
            if not data:
                return None
            loaded = {rule["name"]: rule for group in data["groups"] for rule in group["rules"]}
            ready = all(rule.get("health") == "ok" for rule in loaded.values()) and loaded
            return loaded if ready else None
        loaded = wait_for("the alerting rules to be evaluated", rules_ok, alive)
        for name in ("FibServerDown", "FibServerErrorLines", "FibServerRefusingConnections"):
            if name not in loaded:
                raise Failed(f"rule {name} is not loaded: {sorted(loaded)}")
        print(f"rules loaded and healthy: {', '.join(sorted(loaded))}")
        passed = True
    except Failed as failure:
        print(f"prometheus_check: {failure}", file=sys.stderr)
    finally:
        if prometheus:
            prometheus.stop()
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            status = "killed after 20 s"
        if status != 0:
            print(f"prometheus_check: fib_server exited with {status}", file=sys.stderr)
            passed = False
        if not passed:
            for log in ("fib_server.log", "prometheus.log"):
                if (work / log).exists():
                    print(f"--- {log}\n{(work / log).read_text(errors='replace')[-4000:]}", file=sys.stderr)
        server_log.close()
        shutil.rmtree(work, ignore_errors=True)
    if not passed:
        sys.exit(1)
    print("prometheus_check: OK")


if __name__ == "__main__":
    main()

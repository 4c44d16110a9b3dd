"""The README and docs/ stay true: every relative link reaches a file that
exists and every #anchor a heading that exists (GitHub's rules for heading
anchors), the README stays a few screens long (under 300 lines), its
headline is what bench/report.py makes of bench/results today, the package
lists in docs/development.md are setup.sh's, and the commands of the
README's "Asking it things" and "Metrics at a glance" sections, of
docs/server.md's examples and of docs/fib_perf.md's worked examples run
against a real server and print what they say they print; and every
command shown in docs/operations.md and docs/development.md is run by a
test: by this one, or by a script in SCRIPTS below where it appears as
shown, or it is in NOT_RUN, which says why not and what checks it instead.

Usage: python3 tests/deploy/docs_check.py SOURCE_DIR BUILD_DIR"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

root, build_dir = sys.argv[1], sys.argv[2]
bin_dir = os.path.join(build_dir, "bin")
problems = []
ran = []  # the commands of the README and docs this check has run
not_built = []  # those not run because this build lacks their program


def slug(heading):
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(path):
    found, seen, fence = set(), {}, False
    with open(path) as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            m = None if fence else re.match(r"^#+ (.*)", line)
            if m:
                s = slug(m.group(1))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
    return found


pages = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(root, "docs"))
                               if f.endswith(".md"))
links = 0
for page in pages:
    path = os.path.join(root, page)
    with open(path) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        links += 1
        file, _, anchor = target.partition("#")
        into = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(into):
            problems.append(f"{page}: link to {target}: no such file")
        elif anchor and into.endswith(".md") and anchor not in anchors(into):
            problems.append(f"{page}: link to {target}: no such heading")

with open(os.path.join(root, "README.md")) as f:
    readme = f.read()
if readme.count("\n") >= 300:
    problems.append(f"README.md: {readme.count(chr(10))} lines, not a few screens (under 300)")

# The package lists in docs/development.md are setup.sh's.
with open(os.path.join(root, "scripts", "setup.sh")) as f:
    setup = f.read()
with open(os.path.join(root, "docs", "development.md")) as f:
    development = f.read()
listed = set(re.findall(r"`([a-z0-9][a-z0-9.+-]*)`", development.split("The Debian packages `scripts/setup.sh`", 1)[1]
                        .split("\n\n", 2)[1]))
wanted = set()
for group in re.findall(r"packages(?:\+)?=\(([^)]*)\)", setup):
    wanted |= set(group.split())
if wanted != listed:
    problems.append(f"docs/development.md: setup.sh's packages {sorted(wanted - listed)} missing, "
                    f"{sorted(listed - wanted)} not installed by setup.sh")

# The headline is regenerated into a copy and must come out the same.
with tempfile.TemporaryDirectory() as copy:
    for part in ("README.md", "docs", "bench"):
        (shutil.copytree if os.path.isdir(os.path.join(root, part)) else shutil.copy)(
            os.path.join(root, part), os.path.join(copy, part))
    subprocess.run([sys.executable, os.path.join(copy, "bench", "report.py"), "docs"], check=True)
    for part in ("README.md", os.path.join("docs", "performance.md")):
        with open(os.path.join(copy, part)) as a, open(os.path.join(root, part)) as b:
            if a.read() != b.read():
                problems.append(f"{part}: not what `python3 bench/report.py docs` makes of bench/results")


def section(title):
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end]


def commands(title):
    for block in re.findall(r"```sh\n(.*?)```", section(title), flags=re.S):
        for line in block.strip().splitlines():
            yield line


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# The commands docs/operations.md and docs/development.md show: each line of
# their sh blocks (without its comment), and each inline `command` that
# starts with a program a reader types (two words at least, or a program in
# build/bin/).
PROGRAMS = ("apt-get", "bash", "cmake", "cp", "cpack", "ctest", "clang-format", "clang-tidy", "journalctl", "man",
            "mkdir", "promtool", "systemctl", "systemd-analyze", "fib_server", "fib_perf")


def shown_commands(page):
    with open(os.path.join(root, "docs", page)) as f:
        text = f.read()
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        found += [re.sub(r"\s+#\s.*", "", line).strip() for line in block.strip().splitlines()]
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        span = " ".join(span.split())
        first = span.split()[0]
        if (first in PROGRAMS and " " in span) or re.fullmatch(r"build(-\w+)?/bin/\w+", first):
            found.append(span)
    return list(dict.fromkeys(found))  # each once


doc_commands = {page: shown_commands(page) for page in ("operations.md", "development.md")}

# The scripts that run the commands this check does not: every test script
# in tests/deploy/, CI, and setup.sh (which CI runs). A command is run by a
# script when its words appear in that order on one line of it (the script
# may add words; A && B may be on two lines, B after A), where a word in
# capitals (FILE, HOST:PORT) stands for any word, a program for a path to
# it, -j2 is -j 2, a script's variable in VALUES for the words given there,
# and a loop's variable for the loop's words.
SCRIPTS = sorted([".ci/run", "scripts/setup.sh"] + [os.path.join("tests", "deploy", f) for f in
                                                     os.listdir(os.path.join(root, "tests", "deploy"))
                                                     if f.endswith(".sh")])
VALUES = {
    "$build": ["build"],  # the build directory a script is given
    "$prefix": ["/usr/local"],  # install_check.sh's temporary prefix
    "$deb": ["./fib-server_0.1.0-1_amd64.deb"],  # package_check.sh's package, just built
    "$(nproc)": ["2"],  # CI builds with every CPU; the docs' machine has 2
}
# The commands no test runs, why, and what checks them instead.
NOT_RUN = {
    "systemctl enable --now fib_server": "starts the service: needs a running systemd (package_check.sh makes the "
                                         "links with `systemctl enable fib_server`, which needs none)",
    "systemctl daemon-reload && systemctl enable --now fib_server": "starts the service: needs a running systemd",
    "cp /usr/local/share/doc/fib-server/examples/fib_server.service /etc/systemd/system/":
        "writes into /etc (install_check.sh checks that cmake --install puts the unit there, starting the "
        "installed binary; verify_unit.sh verifies it)",
    "journalctl -u fib_server -f": "needs a running systemd's journal",
    "journalctl -u fib_server": "needs a running systemd's journal",
    "systemctl edit fib_server": "opens an editor on a drop-in, and needs a running systemd",
    "systemctl edit": "opens an editor on a drop-in, and needs a running systemd",
    "systemctl help fib_server": "asks a running systemd for the unit's Documentation= (verify_unit.sh has "
                                 "systemd-analyze verify open that man page)",
    "apt-get install clang": "installs a package on the machine",
    "cmake --preset fuzz && cmake --build --preset fuzz": "a clang build with sanitizers (the presets are checked "
                                                          "to exist; fuzz_corpus_replay replays the corpus through "
                                                          "the same entry point in every build)",
    "build-fuzz/bin/framer_fuzz /tmp/corpus -max_total_time=180 -max_len=8192": "fuzzes for 3 minutes in the "
                                                                                "fuzz build",
    "clang-format -i FILE": "rewrites files (.ci/run runs clang-format --dry-run -Werror over every file)",
    "clang-format -i": "as clang-format -i FILE",
}


def words(command, shown=False):
    """A command's words as compared: without quotes, without the
    parentheses of a subshell or of a command substitution that runs a
    command ($(nproc) stays one word), -j2 as -j 2; without the optional
    [parts] of a command shown in the docs."""
    if shown:
        command = re.sub(r"\[[^]]*\]", "", command)
    command = re.sub(r"\$\((?=[^)]* )", " ", command)
    command = re.sub(r"(^|\s)-j(\d+)\b", r"\1-j \2", command)
    return [w if "$(" in w else w.strip("()") for w in command.replace('"', "").replace("'", "").split()]


def stands_for(word, shown, loops):
    """Whether a word of a script (or of a command run here) is the word
    shown in the docs."""
    if word == shown or re.fullmatch(r"[A-Z][A-Z:_]*(\.\.\.)?", shown) or word.endswith("/" + shown):
        return True
    loop = re.fullmatch(r"\$\{?(\w+)\}?", word)
    return shown in VALUES.get(word, loops.get(loop.group(1), []) if loop else [])


def runs(line, command, loops):
    """Whether a line of a script (or a command run here) runs the command."""
    have, at = words(line), 0
    for shown in words(command, shown=True):
        while at < len(have) and not stands_for(have[at], shown, loops):
            at += 1
        if at == len(have):
            return False
        at += 1
    return True


def run_by(lines, command, loops):
    """Whether the lines of a script (or the commands run here) run the
    command: each part of A && B on a line, B's not before A's."""
    at = 0
    for part in command.split("&&"):
        while at < len(lines) and not runs(lines[at], part, loops):
            at += 1
        if at == len(lines):
            return False
    return True


# The README's commands use build/ and port 25000 (and 9464): run them as
# written, from a directory where build/ is this build.
if not (port_free(25000) and port_free(9464)):
    problems.append("ports 25000 or 9464 are taken: cannot run the README's commands")
else:
    with tempfile.TemporaryDirectory() as work:
        os.symlink(os.path.abspath(build_dir), os.path.join(work, "build"))
        server = subprocess.Popen([os.path.join(bin_dir, "fib_server"), "127.0.0.1:25000"], stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while port_free(25000) and time.time() < deadline:
                time.sleep(0.05)
            for line in commands("Asking it things"):
                expected = re.search(r"# prints (\S+)", line)
                out = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=60)
                ran.append(line)
                if out.returncode != 0:
                    problems.append(f"README: `{line}` exited {out.returncode}: {out.stderr.strip()[-300:]}")
                elif expected and out.stdout.strip() != expected.group(1):
                    problems.append(f"README: `{line}` printed {out.stdout.strip()!r}, not {expected.group(1)}")
            # docs/server.md's examples: the netcat lines (not the
            # interactive one) and the talk-style Python client.
            with open(os.path.join(root, "docs", "server.md")) as f:
                examples = f.read().split("\n## Examples\n", 1)[1].split("\n## ", 1)[0]
            for line in re.findall(r"```sh\n(.*?)```", examples, flags=re.S)[0].strip().splitlines():
                if "type numbers" in line:
                    continue
                expected = re.search(r"# (\d+)$", line)
                out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
                ran.append(line)
                if out.returncode != 0 or not out.stdout.strip() or (expected and out.stdout.strip() != expected.group(1)):
                    problems.append(f"docs/server.md: `{line}` printed {out.stdout!r} (exit {out.returncode})")
            client = re.findall(r"```python\n(.*?)```", examples, flags=re.S)[0]
            out = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=60)
            ran.append("python3 (docs/server.md's client)")
            answers = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
            if out.returncode != 0 or answers != ["832040"] * 5:
                problems.append(f"docs/server.md: the Python client printed {out.stdout!r} {out.stderr[-300:]!r}")
            # docs/fib_perf.md's worked examples: run as shown, they say
            # the same header line and exit 0 (3, a rate not kept, is
            # allowed where the docs say a busy machine may give it).
            with open(os.path.join(root, "docs", "fib_perf.md")) as f:
                worked = f.read()
            for command, header in re.findall(r"^\$ (build/bin/fib_perf[^\n]*)\n(?:[^\n]*\n)*?(fib_perf: [^\n]*)$",
                                              worked, flags=re.M):
                out = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True, timeout=60)
                ran.append(command)
                allowed = (0, 3) if "--rate" in command else (0,)
                if out.returncode not in allowed or header not in out.stdout.splitlines():
                    problems.append(f"docs/fib_perf.md: `{command}` exited {out.returncode}, printed {out.stdout!r}")
            shown = section("Asking it things").split("$ ", 1)[1].split("```", 1)[0].splitlines()
            out = subprocess.run(["bash", "-c", shown[0]], capture_output=True, text=True, timeout=30)
            ran.append(shown[0])
            if out.stdout.splitlines() != shown[1:]:
                problems.append(f"README: `{shown[0]}` printed {out.stdout!r}, not what the README shows")
            # docs/development.md's programs in build/bin/ (the benchmark
            # tools), with their placeholders filled in, against this server
            # for a second each; micro_bench with short runs. The sanitizer
            # builds do not build them.
            fill = {"HOST:PORT": "127.0.0.1:25000", "CONNECTIONS": "2", "N": "10", "SECONDS": "1", "THREADS": "2"}
            for command in doc_commands["development.md"]:
                if not command.startswith("build/bin/"):
                    continue
                if not os.path.exists(os.path.join(work, command.split()[0])):
                    not_built.append(command)
                    continue
                line = " ".join(fill.get(w, w) for w in re.sub(r"\[[^]]*\]", "", command).split())
                if line.endswith("micro_bench"):
                    line += " --benchmark_min_time=0.01"
                out = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=60)
                ran.append(line)
                if out.returncode != 0 or not out.stdout.strip():
                    problems.append(f"docs/development.md: `{line}` exited {out.returncode}, printed "
                                    f"{out.stdout[-300:]!r} {out.stderr[-300:]!r}")
                elif line.startswith("build/bin/micro_bench"):
                    with open(os.path.join(root, "bench", "micro_bench.cpp")) as f:
                        missing = [b for b in re.findall(r"^BENCHMARK\((\w+)\)", f.read(), flags=re.M)
                                   if b not in out.stdout]
                    if missing:
                        problems.append(f"docs/development.md: `{line}` did not run {missing}")
        finally:
            server.terminate()
            server.wait(timeout=30)
        # Metrics at a glance: the first line starts a server in the
        # background, the second must print metric lines.
        lines = list(commands("Metrics at a glance"))
        # The second is tried until the server is up and serving (a
        # sanitizer build starts its threads slowly), for up to 20 s.
        script = "\n".join(["set -e", lines[0], "pid=$!", "trap 'kill $pid; wait $pid' EXIT",
                             "for i in $(seq 40); do", f"  out=$({lines[1]} || true)",
                             "  grep -qx 'fib_server_connections_open 0' <<<\"$out\" && break", "  sleep 0.5", "done",
                             "echo \"$out\""])
        out = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=90)
        ran += lines[:2]
        if "fib_server_connections_open 0" not in out.stdout.splitlines():
            problems.append(f"README: metrics at a glance printed {out.stdout!r} {out.stderr[-300:]!r}")

        # The other commands of docs/operations.md and docs/development.md
        # that are quick and change nothing outside a temporary directory.
        def run(line, cwd, as_shown=None):
            ran.append(as_shown or line)
            return subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=60)

        for page, shown in doc_commands.items():
            for command in shown:
                if command.startswith("man -l "):
                    out = run(command, work)
                    if out.returncode != 0 or not re.search(r"^NAME$", out.stdout, flags=re.M):
                        problems.append(f"docs/{page}: `{command}` exited {out.returncode}: {out.stderr[-300:]!r}")
                elif command.startswith("ctest --test-dir build -L "):
                    # Listed (-N), not run: the label includes this check.
                    # It holds each test the docs name beside the command.
                    label = command.split()[-1]
                    listed = re.findall(r"Test +#\d+: (\S+)", run(command + " -N", work).stdout)
                    every = subprocess.run(["ctest", "--test-dir", "build", "-N"], cwd=work, capture_output=True,
                                           text=True)
                    known = re.findall(r"Test +#\d+: (\S+)", every.stdout)
                    with open(os.path.join(root, "docs", page)) as f:
                        named = re.search(rf"\(((?:`\w+`,\s+)+)label `{label}`", f.read())
                    named = re.findall(r"`(\w+)`", named.group(1)) if named else []
                    if not named or [n for n in named if n in known and n not in listed]:
                        problems.append(f"docs/{page}: `{command}` lists {listed}, not all of {named}")
                elif command.startswith("promtool check rules"):
                    rules = "deploy/prometheus/fib_server.rules.yml"
                    out = run(f"{command} {rules}", root)
                    if out.returncode != 0 or "SUCCESS" not in out.stdout:
                        problems.append(f"docs/{page}: `{command} {rules}` exited {out.returncode}: "
                                        f"{(out.stdout + out.stderr)[-300:]!r} (bash scripts/setup.sh test "
                                        "installs promtool, in Debian's prometheus)")
                elif command.startswith("bash bench/cpu_per_request.sh"):
                    # One round of one second, with this build's programs.
                    line = (f"ROUNDS=1 RUN_SECONDS=1 PERF={work}/build/bin/fib_perf "
                            + command.replace("BINARY...", f"{work}/build/bin/fib_server"))
                    out = run(line, root)
                    measured = re.search(r" (\d+) requests ", out.stdout)
                    if out.returncode != 0 or not measured or int(measured.group(1)) == 0:
                        problems.append(f"docs/{page}: `{line}` exited {out.returncode}, printed {out.stdout!r} "
                                        f"{out.stderr[-300:]!r}")
                elif command.startswith("mkdir -p /tmp/corpus"):
                    # Into a directory of this check's own, not /tmp/corpus.
                    corpus = os.path.join(work, "corpus")
                    out = run(command.replace("/tmp/corpus", corpus), root, as_shown=command)
                    if out.returncode != 0 or (sorted(os.listdir(corpus)) !=
                                               sorted(os.listdir(os.path.join(root, "tests", "fuzz", "corpus")))):
                        problems.append(f"docs/{page}: `{command}` exited {out.returncode}: {out.stderr[-300:]!r}")

    # The presets the docs use exist.
    presets = {}
    for tool in ("cmake", "cmake --build", "ctest"):
        listing = subprocess.run(f"{tool} --list-presets".split(), cwd=root, capture_output=True, text=True)
        presets[tool] = re.findall(r'^ +"([\w-]+)"', listing.stdout, flags=re.M)
    for page, shown in doc_commands.items():
        for command in shown:
            for preset in re.findall(r"(cmake --build|cmake|ctest) --preset (\S+)", command):
                if preset[1] not in presets[preset[0]]:
                    problems.append(f"docs/{page}: `{command}`: `{preset[0]} --list-presets` has no {preset[1]}: "
                                    f"{presets[preset[0]]}")

    # The package the operations page installs is the file `cpack -G DEB`
    # makes (package_check.sh runs it, as root; here it would build the
    # package, and the whole build first if it were not up to date): the
    # name DEB-DEFAULT gives, NAME_VERSION-RELEASE_ARCH.deb.
    with open(os.path.join(build_dir, "CPackConfig.cmake")) as f:
        cpack = dict(re.findall(r'^set\((CPACK_\w+) "([^"]*)"\)', f.read(), flags=re.M))
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    deb = (f"{cpack['CPACK_PACKAGE_NAME']}_{cpack['CPACK_PACKAGE_VERSION']}-{cpack['CPACK_DEBIAN_PACKAGE_RELEASE']}"
           f"_{arch}.deb")
    for page, shown in doc_commands.items():
        for name in re.findall(r"\b(fib-server_\S+\.deb)", " ".join(shown)):
            if name != deb or cpack["CPACK_DEBIAN_FILE_NAME"] != "DEB-DEFAULT":
                problems.append(f"docs/{page}: installs {name}, but cpack -G DEB makes {deb}")

    # Every command of docs/operations.md and docs/development.md is run: by
    # this check, by a script, or it is in NOT_RUN, saying why not.
    scripts = {}
    for script in SCRIPTS:
        with open(os.path.join(root, script)) as f:
            text = f.read().replace("\\\n", " ")
        loops = {name: values.split() for name, values in re.findall(r"\bfor (\w+) in ([^;\n]*); do", text)}
        scripts[script] = ([line for line in text.splitlines() if not line.strip().startswith("#")], loops)
    for page, shown in doc_commands.items():
        for command in shown:
            by = ("docs_check" if run_by(ran, command, {}) else
                  "not built in this build" if command in not_built else
                  next((script for script, (lines, loops) in scripts.items() if run_by(lines, command, loops)), None) or
                  ("not run: " + NOT_RUN[command] if command in NOT_RUN else None))
            if by:
                print(f"docs_check: docs/{page}: `{command}`: {by}")
            else:
                problems.append(f"docs/{page}: `{command}` is run by no test: run it here or in one of "
                                "tests/deploy/*.sh, .ci/run and scripts/setup.sh as shown, or say in NOT_RUN why not")
    for command in NOT_RUN:
        if not any(command in shown for shown in doc_commands.values()):
            problems.append(f"NOT_RUN has `{command}`, which the docs no longer show")
    print(f"docs_check: {links} links checked in {len(pages)} pages; {len(ran)} commands of the README and "
          "docs run")

for problem in problems:
    print(f"docs_check: {problem}")
print("docs_check: " + ("FAILED" if problems else "PASS"))
sys.exit(1 if problems else 0)

"""Save-to-served: how fast a reloading dev server serves a save, and what its
clients lose meanwhile — spikard dev against uvicorn --reload, fastapi dev and
granian --reload, same run, same machine.

    python bench/reload.py [--saves 20] [--apps example,heavy] [--servers ...] [--out bench/results/reload.md]

For each app (``example``: examples/app.py and a FastAPI port of it; ``heavy``: an
app importing pydantic, SQLAlchemy, Jinja2 and httpx) and each server, the app is
copied to a fresh folder and served; then, while clients hammer it (one on a
keep-alive connection, one opening a connection per request), the file is saved
with a new ``VERSION`` and a prober asks ``GET /version`` every millisecond until
the new one answers: that wait is the save's figure. After each save the server
gets half a second to settle. The saves of each server are split in two passes, the
second in the reverse order of servers, so slow drifts of the machine fall on every
server alike. Servers are pinned to CPU 0 and the clients to CPU 1 where taskset
works. Failures are counted by kind: refused (no one accepting), reset (a
connection closed under a request), other (timeouts, wrong answers).
Set-up: bench/setup.sh (bench/requirements.txt has the peers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _process import free_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps" / "reload"
SERVER_CPU, CLIENT_CPU = "0", 1
VERSION_LINE = re.compile(r"^VERSION = \d+$", re.MULTILINE)


def spikard_example() -> str:
    """examples/app.py with a /version route that each save changes."""
    source = (ROOT / "examples" / "app.py").read_text()
    return source + '\n\nVERSION = 0\n\n\n@app.get("/version")\nasync def version():\n    return {"version": VERSION}\n'


def app_source(app: str, framework: str) -> str:
    if app == "example":
        return spikard_example() if framework == "spikard" else (APPS / "fastapi_example.py").read_text()
    return (APPS / f"{'spikard' if framework == 'spikard' else 'fastapi'}_heavy.py").read_text()


@dataclass
class Server:
    name: str
    framework: str  # spikard or fastapi: which app it serves

    def command(self, port: int) -> list[str]:
        exe = Path(sys.executable).parent
        return {
            "spikard dev": [str(exe / "spikard"), "dev", "app.py", "--port", str(port)],
            "uvicorn --reload": [str(exe / "uvicorn"), "app:app", "--reload", "--port", str(port)],
            "fastapi dev": [str(exe / "fastapi"), "dev", "app.py", "--port", str(port)],
            "granian --reload": [
                str(exe / "granian"),
                "--interface",
                "asgi",
                "--reload",
                "--port",
                str(port),
                "app:app",
            ],
        }[self.name]


SERVERS = [
    Server("spikard dev", "spikard"),
    Server("uvicorn --reload", "fastapi"),
    Server("fastapi dev", "fastapi"),
    Server("granian --reload", "fastapi"),
]


def version_of(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        body = response.read()
        return json.loads(body)["version"] if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


@dataclass
class Hammer:
    """Two clients sending requests back to back: one keep-alive, one fresh per request."""

    port: int
    ok: int = 0
    refused: int = 0
    reset: int = 0
    other: int = 0
    examples: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, args=(keep,), daemon=True) for keep in (True, False)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, keep_alive: bool) -> None:
        connection = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/version")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    self.ok += 1
                else:
                    self._count("other", f"status {response.status}")
                if not keep_alive or response.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except ConnectionRefusedError as error:
                self._count("refused", repr(error))
                connection = None
                time.sleep(0.001)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as error:
                self._count("reset", repr(error))
                connection = None
            except (OSError, http.client.HTTPException) as error:
                self._count("other", repr(error))
                connection = None

    def _count(self, kind: str, example: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 5:
            self.examples.append(example)


@dataclass
class Figures:
    server: str
    app: str
    waits_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    requests: int = 0
    refused: int = 0
    reset: int = 0
    other: int = 0
    examples: list[str] = field(default_factory=list)


def measure(server: Server, app: str, saves: range, figures: Figures, pinned: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    source = app_source(app, server.framework)
    path = folder / "app.py"
    path.write_text(VERSION_LINE.sub(f"VERSION = {saves.start - 1}", source))
    port = free_port()
    command = server.command(port)
    if pinned:
        command = ["taskset", "-c", SERVER_CPU, *command]
    # Outside the watched folder: a reloader watching every file would see its own log.
    log_path = Path(tempfile.mkstemp(prefix="reload-bench-", suffix=".log")[1])
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while version_of(port) != saves.start - 1:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{server.name} did not serve: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(1.0)  # past start-up work (reloaders that settle, caches)
        hammer = Hammer(port)
        hammer.start()
        for version in saves:
            path.write_text(VERSION_LINE.sub(f"VERSION = {version}", source))
            saved = time.perf_counter()
            while version_of(port) != version:
                if time.perf_counter() - saved > 10:
                    figures.timeouts += 1
                    break
                time.sleep(0.001)
            else:
                figures.waits_ms.append((time.perf_counter() - saved) * 1000)
            time.sleep(0.5)
        hammer.stop()
        figures.requests += hammer.ok + hammer.refused + hammer.reset + hammer.other
        figures.refused += hammer.refused
        figures.reset += hammer.reset
        figures.other += hammer.other
        figures.examples += hammer.examples[: 5 - len(figures.examples)]
    finally:
        os.killpg(process.pid, 2)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()
        log_path.unlink()
        shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def table(results: list[Figures]) -> str:
    lines = [
        "| app | server | median save-to-served | p90 | not served in 10 s | requests | refused | reset | other |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in results:
        median = f"{statistics.median(f.waits_ms):.0f} ms" if f.waits_ms else "n/a"
        p90 = f"{percentile(f.waits_ms, 0.9):.0f} ms" if f.waits_ms else "n/a"
        lines.append(
            f"| {f.app} | {f.server} | {median} | {p90} | {f.timeouts} | {f.requests:,} "
            f"| {f.refused:,} | {f.reset:,} | {f.other:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=20, help="saves per server and app (default 20)")
    parser.add_argument("--apps", default="example,heavy", help="example, heavy or both (default)")
    parser.add_argument(
        "--servers", default=",".join(s.name for s in SERVERS), help="which servers, comma-separated (default: all)"
    )
    parser.add_argument("--out", type=Path, help="write the table (markdown) and the figures (JSON beside it)")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.servers.split(",")]
    servers = [s for s in SERVERS if s.name in wanted]
    unknown = set(wanted) - {s.name for s in SERVERS}
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in SERVERS)}")
    for server in servers:
        tool = server.command(0)[0]
        if not Path(tool).exists():
            parser.error(f"{server.name}: {tool} is not installed (bash bench/setup.sh installs the peers)")
    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CPU})
    else:
        print("reload: taskset or a second CPU is missing; servers and clients are not pinned", file=sys.stderr)
    results = []
    half = args.saves // 2
    for app in args.apps.split(","):
        figures = {s.name: Figures(s.name, app) for s in servers}
        for number, order in enumerate((servers, list(reversed(servers)))):
            saves = range(1, half + 1) if number == 0 else range(half + 1, args.saves + 1)
            for server in order:
                print(f"reload: {app} app, {server.name}, saves {saves.start}-{saves.stop - 1}", file=sys.stderr)
                measure(server, app, saves, figures[server.name], pinned)
        results += [figures[s.name] for s in servers]
    text = table(results)
    print(text)
    for f in results:
        if f.examples:
            print(f"{f.app}, {f.server}: e.g. {'; '.join(f.examples[:3])}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/reload.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Save-to-served\n\n`{command}`\n\n{text}\n")
        args.out.with_suffix(".json").write_text(json.dumps([f.__dict__ for f in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A 10 MB JSON body of numbers, to spikard and to FastAPI (uvicorn) in the same run:
how long each takes to answer it, how much the server's memory grows (peak and after),
and how long a `GET /hello` waits while it is being handled.

    python bench/heavy_body.py [--megabytes 10] [--rounds 3] [--out DIR]

Both servers run at once (one process each, pinned to CPU 0 when there are two) and get
`--rounds` POSTs of the body, interleaved (one each in turn), each followed by a pause.
While each POST is handled, a client on CPU 1 sends `GET /hello` back to back and
records the slowest answer. RSS is sampled every 5 ms during the POST (VmRSS of
/proc/PID/status): the peak over the RSS before the first POST, and the RSS one and a
half seconds after the last. The table gives medians over rounds. Set-up: bench/setup.sh (FastAPI and uvicorn).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _process import free_port, rss_kib

HERE = Path(__file__).resolve().parent

SPIKARD_APP = """
from typing import Annotated
from spikard import Body, Spikard

app = Spikard()


@app.get("/hello")
async def hello():
    return {"hello": "world"}


@app.post("/numbers")
async def numbers(values: Annotated[list[float], Body()]):
    return {"count": len(values), "total": sum(values)}
"""

FASTAPI_APP = """
from typing import Annotated
from fastapi import Body, FastAPI

app = FastAPI()


@app.get("/hello")
async def hello():
    return {"hello": "world"}


@app.post("/numbers")
async def numbers(values: Annotated[list[float], Body()]):
    return {"count": len(values), "total": sum(values)}
"""


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def body_of(megabytes: float) -> bytes:
    rng = random.Random(7)
    numbers: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        text = f"{rng.uniform(-1000, 1000):.6f}"
        numbers.append(text)
        size += len(text) + 1
    return ("[" + ",".join(numbers) + "]").encode()


class Server:
    def __init__(self, name: str, command: list[str], folder: Path, port: int) -> None:
        self.name, self.port = name, port
        self.process = subprocess.Popen(
            [*pinned(0), *command], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/hello")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"bench/heavy_body.py: {name} did not serve")

    @property
    def pid(self) -> int:
        # taskset execs the server: the same process.
        return self.process.pid

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post(self, body: bytes) -> tuple[int, bytes, float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            started = time.perf_counter()
            connection.request("POST", "/numbers", body=body, headers={"content-type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            return response.status, answer, time.perf_counter() - started
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def one_round(server: Server, body: bytes) -> dict[str, float]:
    done = threading.Event()
    slowest = [0.0]
    peak = [rss_kib(server.pid)]

    def hello_client() -> None:
        if (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {1})
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not done.is_set():
            started = time.perf_counter()
            connection.request("GET", "/hello")
            connection.getresponse().read()
            slowest[0] = max(slowest[0], time.perf_counter() - started)
        connection.close()

    def sampler() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(server.pid))
            time.sleep(0.005)

    threads = [threading.Thread(target=hello_client), threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    try:
        status, answer, seconds = server.post(body)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    if status != 200:
        raise SystemExit(f"bench/heavy_body.py: {server.name} answered {status}: {answer[:300]!r}")
    return {"seconds": seconds, "peak_kib": peak[0], "hello_max_ms": slowest[0] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    body = body_of(args.megabytes)
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"spikard-heavy-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spikard_heavy.py").write_text(SPIKARD_APP)
    (folder / "fastapi_heavy.py").write_text(FASTAPI_APP)
    commands = {
        "spikard": [sys.executable, "-m", "spikard.cli", "run", "spikard_heavy:app", "--no-access-log"],
        "FastAPI + uvicorn": [
            *[sys.executable, "-m", "uvicorn", "fastapi_heavy:app"],
            *["--no-access-log", "--log-level", "warning"],
        ],
    }
    servers: dict[str, Server] = {}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    try:
        for name, command in commands.items():
            port = free_port()
            servers[name] = Server(name, [*command, "--port", str(port)], folder, port)
        before = {name: rss_kib(server.pid) for name, server in servers.items()}
        # Interleaved: a noisy moment costs both, not one.
        for number in range(1, args.rounds + 1):
            for name, server in servers.items():
                print(f"round {number}/{args.rounds}: {name}", file=sys.stderr, flush=True)
                rounds[name].append(one_round(server, body))
                time.sleep(0.5)
        time.sleep(1.5)
        after = {name: rss_kib(server.pid) for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    results: dict[str, dict[str, object]] = {}
    for name, taken in rounds.items():
        results[name] = {
            "rss_before_kib": before[name],
            "rss_after_kib": after[name],
            "rounds": taken,
            "seconds": statistics.median(r["seconds"] for r in taken),
            "peak_growth_mib": statistics.median((r["peak_kib"] - before[name]) / 1024 for r in taken),
            "after_growth_mib": (after[name] - before[name]) / 1024,
            "hello_max_ms": statistics.median(r["hello_max_ms"] for r in taken),
        }
        shown = results[name]
        print(
            f"{name:<18} {shown['seconds']:6.3f} s   peak +{shown['peak_growth_mib']:6.1f} MiB   "
            f"after +{shown['after_growth_mib']:6.1f} MiB   slowest /hello meanwhile {shown['hello_max_ms']:7.1f} ms",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("heavy-body-%Y%m%d-%H%M%S.json")
    report = {"megabytes": len(body) / 1e6, "numbers": body.count(b",") + 1, "servers": results}
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()

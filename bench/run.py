"""Benchmark spikard against FastAPI and the Rust ceiling on the same workloads.

    python bench/run.py [--duration 10] [--rounds 3] [--out bench/results/foundation.md]

Every server is pinned to CPU 0 and wrk to CPU 1; each round runs every workload
against every server in turn (rounds interleaved), and the table reports the
median of the rounds with ratios taken within the same run. Servers are checked to
give the same answers before anything is measured. Set-up: bench/setup.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CPU = "0"
LOAD_CPU = "1"


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, server: str, workload: str, sample: Sample) -> None:
        self.samples.setdefault((server, workload), []).append(sample)

    def ratio(self, server: str, peer: str, workload: str) -> float:
        """Median over rounds of server ÷ peer, each taken within one round: steadier
        than a ratio of medians when the machine's speed drifts between rounds."""
        pairs = zip(self.samples[(server, workload)], self.samples[(peer, workload)], strict=True)
        return statistics.median(a.rps / b.rps for a, b in pairs)

    def median(self, server: str, workload: str) -> Sample:
        runs = self.samples[(server, workload)]
        return Sample(
            rps=statistics.median(s.rps for s in runs),
            p50_ms=statistics.median(s.p50_ms for s in runs),
            p99_ms=statistics.median(s.p99_ms for s in runs),
            errors=sum(s.errors for s in runs),
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Like uvicorn here, spikard runs without its access log (the 'logged' variant has it).
QUIET = "--no-access-log"

# Variants that are the spikard app with other flags rather than another app.
FLAG_VARIANTS = {
    "logged": (),  # its access log on, written to /dev/null
    "stats": (QUIET, "--stage-stats"),  # stage statistics kept
    "timing": (QUIET, "--stage-stats", "--server-timing"),  # and a Server-Timing header on every response
}


def spikard_command(app: str, port: int, *flags: str, python: str = sys.executable) -> list[str]:
    """``spikard run`` of ``bench/apps/APP``, by ``python`` (a virtualenv's python serves
    the spikard that virtualenv has installed)."""
    return [python, "-m", "spikard.cli", "run", str(BENCH / "apps" / app), "--port", str(port), *flags]


def uvicorn_command(port: int, *flags: str) -> list[str]:
    """The FastAPI app on uvicorn: uvloop, httptools, no access log."""
    return [
        *(sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(BENCH / "apps")),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--port", str(port), *flags),
    ]


def servers(
    variants: list[str], baseline: Path | None, pythons: dict[str, str], baseline_flags: list[str]
) -> list[Server]:
    ceiling = ROOT / "target" / "release" / "spikard-ceiling"
    ports = [free_port() for _ in range(4 + len(variants) + len(pythons))]
    return [
        Server("spikard", spikard_command("spikard_app.py", ports[0], QUIET), ports[0]),
        Server("FastAPI", uvicorn_command(ports[1]), ports[1]),
        Server("ceiling", [str(ceiling), f"127.0.0.1:{ports[2]}"], ports[2]),
        *(
            Server(
                f"spikard-{variant}",
                spikard_command("spikard_app.py", port, *FLAG_VARIANTS[variant])
                if variant in FLAG_VARIANTS
                else spikard_command(f"spikard_{variant}_app.py", port, QUIET),
                port,
            )
            for variant, port in zip(variants, ports[4 : 4 + len(variants)], strict=True)
        ),
        *(
            # An earlier build of spikard, installed with `pip install --target DIR`,
            # on the routes it can serve (the app leaves out what it may lack).
            [
                Server(
                    "spikard-baseline",
                    spikard_command("spikard_app.py", ports[3], *baseline_flags),
                    ports[3],
                    env={**os.environ, "PYTHONPATH": str(baseline), "BENCH_FOUNDATION_ROUTES_ONLY": "1"},
                )
            ]
            if baseline
            else []
        ),
        *(
            # The same app served by spikard built for another interpreter.
            Server(f"spikard-{name}", spikard_command("spikard_app.py", port, QUIET, python=python), port)
            for (name, python), port in zip(pythons.items(), ports[4 + len(variants) :], strict=True)
        ),
    ]


def start(server: Server) -> None:
    server.process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *server.command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=server.env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            error = server.process.stderr.read().decode() if server.process.stderr else ""
            raise SystemExit(f"bench: {server.name} exited at start:\n{error}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/hello", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {server.name} did not answer within 30 s")


def stop(server: Server) -> None:
    if server.process and server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


def fetch(server: Server, workload: dict) -> tuple[int, object]:
    data = json.dumps(workload["body"]).encode() if "body" in workload else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{workload['path']}",
        data=data,
        method=workload["method"],
        headers={"content-type": "application/json"} if data else {},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def serves(server: Server, workload: dict) -> bool:
    """A workload may name the servers it applies to (the ceiling has no pydantic)."""
    return server.name in workload.get("servers", [server.name])


def check_same_answers(all_servers: list[Server], workloads: list[dict]) -> None:
    for workload in workloads:
        answers = {server.name: fetch(server, workload) for server in all_servers if serves(server, workload)}
        if len({json.dumps(a, sort_keys=True) for a in answers.values()}) != 1:
            raise SystemExit(f"bench: servers disagree on {workload['title']}: {answers}")


def wrk_script(workload: dict, folder: Path) -> list[str]:
    if workload["method"] == "GET":
        return []
    script = folder / f"{workload['name']}.lua"
    script.write_text(
        f'wrk.method = "{workload["method"]}"\n'
        f"wrk.body = {json.dumps(json.dumps(workload['body']))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return ["-s", str(script)]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _millis(text: str) -> float:
    """wrk's durations: 812.00us, 1.20ms, 1.05s, 1.00m."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"bench: cannot read wrk's duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(server: Server, workload: dict, connections: int, duration: int, folder: Path) -> Sample:
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        *wrk_script(workload, folder),
        f"http://127.0.0.1:{server.port}{workload['path']}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution's own lines ("     99%    1.70ms"), not a stdev column.
    p50 = _millis(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Sample(rps, p50, p99, errors)


def variant_table(results: Results, workloads: list[dict], variants: list[str]) -> str:
    names = [f"spikard-{v}" for v in variants]
    lines = [
        "| workload | spikard req/s | " + " | ".join(f"{n} req/s | ÷ spikard | p99" for n in names) + " |",
        "|---|---:|" + "---:|---:|---:|" * len(names),
    ]
    for workload in workloads:
        if any((name, workload["name"]) not in results.samples for name in names):
            continue
        base = results.median("spikard", workload["name"])
        cells = []
        for name in names:
            sample = results.median(name, workload["name"])
            ratio = results.ratio(name, "spikard", workload["name"])
            cells.append(f"{sample.rps:,.0f} | {ratio:.0%} | {sample.p99_ms:.2f} ms")
        lines.append(f"| {workload['title']} | {base.rps:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: Results, workloads: list[dict]) -> str:
    lines = [
        "| workload | spikard req/s | FastAPI req/s | ceiling req/s | spikard ÷ FastAPI | spikard ÷ ceiling "
        "| p50 / p99 spikard | p50 / p99 FastAPI | p50 / p99 ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        name = workload["name"]
        s, f = (results.median(server, name) for server in ("spikard", "FastAPI"))
        if ("ceiling", name) in results.samples:
            c = results.median("ceiling", name)
            ceiling = (
                f"{c.rps:,.0f}",
                f"{results.ratio('spikard', 'ceiling', name):.0%}",
                f"{c.p50_ms:.2f} / {c.p99_ms:.2f} ms",
            )
            errors = s.errors + f.errors + c.errors
        else:
            ceiling, errors = ("n/a", "n/a", "n/a"), s.errors + f.errors
        lines.append(
            f"| {workload['title']} | {s.rps:,.0f} | {f.rps:,.0f} | {ceiling[0]} "
            f"| {results.ratio('spikard', 'FastAPI', name):.2f}x | {ceiling[1]} "
            f"| {s.p50_ms:.2f} / {s.p99_ms:.2f} ms | {f.p50_ms:.2f} / {f.p99_ms:.2f} ms "
            f"| {ceiling[2]} | {errors} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows their medians")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument(
        "--variants",
        default="",
        help="comma-separated spikard variants to measure too, from bench/apps/spikard_VARIANT_app.py: "
        "'suspend' (every handler suspends once), 'hop' (one cross-thread hop per request); "
        "also 'logged': the spikard app with its access log on (written to /dev/null), 'stats': with "
        "--stage-stats, 'timing': with --stage-stats and --server-timing",
    )
    parser.add_argument("--workloads", default="", help="comma-separated workload names to run (default: all)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also measure an earlier spikard build installed in this folder (pip install --target DIR REV) "
        "on the foundation routes, as 'spikard-baseline'",
    )
    parser.add_argument(
        "--baseline-flags",
        default="",
        metavar="FLAGS",
        help="'spikard run' flags for the baseline build (say, --no-access-log, which the earliest builds lack)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="also serve the spikard app with PYTHON (say, a virtualenv's python with spikard built for it) "
        "as 'spikard-NAME', compared with spikard on this interpreter; repeatable",
    )
    args = parser.parse_args()
    pythons = {}
    for entry in args.python:
        name, sep, python = entry.partition("=")
        if not sep or not name or shutil.which(python) is None:
            raise SystemExit(f"bench: --python wants NAME=PYTHON with an existing interpreter, not {entry!r}")
        pythons[name] = python
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: '{tool}' is not installed; run bench/setup.sh")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs two CPUs (server on one, load on the other)")
    spec = json.loads((BENCH / "workloads.json").read_text())
    workloads, connections = spec["workloads"], spec["connections"]
    if args.workloads:
        wanted = args.workloads.split(",")
        unknown = set(wanted) - {w["name"] for w in workloads}
        if unknown:
            raise SystemExit(f"bench: unknown workload(s) {', '.join(sorted(unknown))}; see bench/workloads.json")
        workloads = [w for w in workloads if w["name"] in wanted]
    print("bench: building the Rust ceiling (release)", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "spikard-ceiling"], cwd=ROOT, check=True)
    variants = [v for v in args.variants.split(",") if v]
    all_servers = servers(variants, args.baseline, pythons, args.baseline_flags.split())
    results = Results()
    try:
        for server in all_servers:
            start(server)
        check_same_answers(all_servers, workloads)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            total = args.rounds * sum(serves(s, w) for w in workloads for s in all_servers)
            done = 0
            for round_no in range(1, args.rounds + 1):
                for workload in workloads:
                    for server in all_servers:
                        if not serves(server, workload):
                            continue
                        done += 1
                        print(
                            f"bench: [{done}/{total}] round {round_no}: {server.name:8} {workload['title']}",
                            file=sys.stderr,
                        )
                        if args.warmup:
                            run_wrk(server, workload, connections, args.warmup, folder)
                        sample = run_wrk(server, workload, connections, args.duration, folder)
                        print(f"         {sample.rps:,.0f} req/s, p99 {sample.p99_ms:.2f} ms", file=sys.stderr)
                        results.add(server.name, workload["name"], sample)
    finally:
        for server in all_servers:
            stop(server)
    report = "\n".join(
        [
            f"Server pinned to CPU {SERVER_CPU}, wrk (1 thread, {connections} connections) on CPU {LOAD_CPU}; "
            f"{args.rounds} interleaved rounds of {args.duration} s; req/s and latencies are medians over rounds, "
            "ratios the median of the ratios within each round. "
            "FastAPI on uvicorn (uvloop, httptools, one worker, no access log); spikard without its access log; "
            "ceiling = the same routes on spikard-http with Rust handlers.",
            "",
            table(results, workloads),
            "",
        ]
    )
    if variants:
        report += "\nVariants of the spikard app, same run (see bench/apps/spikard_VARIANT_app.py):\n\n"
        report += variant_table(results, workloads, variants) + "\n"
    if args.baseline:
        report += f"\nThis build against an earlier one (`--baseline {args.baseline}`), same run:\n\n"
        report += variant_table(results, workloads, ["baseline"]) + "\n"
    if pythons:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        report += f"\nspikard on other interpreters against spikard on Python {here} (`--python`), same run:\n\n"
        report += variant_table(results, workloads, list(pythons)) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        raw = {
            f"{server}/{workload}": [s.__dict__ for s in runs] for (server, workload), runs in results.samples.items()
        }
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

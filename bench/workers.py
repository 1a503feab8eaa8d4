"""Multi-process scaling: spikard with one worker and with `--workers 2`, beside
FastAPI on uvicorn with one worker and with `--workers 2`, in the same run.

    python bench/workers.py [--rounds 3] [--duration 10] [--warmup 2] [--connections 64]

Nothing is pinned: the servers' workers AND the load generator (wrk, one thread)
share every core of the machine, so a 2-worker server can never have two cores to
itself, and what the load generator burns is taken from the servers. The report
says how many cores each server and wrk used, and how each 2-worker server's CPU
time was split between its workers (each one must have answered, or the
measurement is flagged).

Each round runs every workload against every server in turn (rounds interleaved,
the server order rotating from round to round); the table reports medians over
rounds, and ratios are the median of the ratios taken within each round. Every
server's answers are checked against each workload's "expect" in
bench/workloads.json before anything is measured. With the defaults a run takes
about 8 minutes. Set-up: bench/setup.sh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _process import free_port

BENCH = Path(__file__).resolve().parent
DEFAULT_WORKLOADS = "hello,params,small-post"
TICK = os.sysconf("SC_CLK_TCK")
# A worker given less than this share of its server's worker CPU time during a
# measurement is reported as having (almost) not answered.
IDLE_SHARE = 0.05
# Cores of CPU time wrk spent per second above which its single thread may have
# been what limited the measurement.
WRK_BOUND_CORES = 0.9
# Cores of CPU time per second spent by the rest of the machine (neither the
# measured server nor wrk) above which the measurement is flagged as disturbed.
OTHER_LOAD_CORES = 0.1


@dataclass
class Pool:
    """A server of `workers` processes. With more than one, the workers are the
    root process's children whose command line contains `marker`."""

    name: str
    command: list[str]
    port: int
    workers: int = 1
    marker: str = ""
    process: subprocess.Popen[bytes] | None = None
    worker_pids: list[int] = field(default_factory=list)
    log_lines: int = 0
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))


@dataclass
class Sample:
    rps: float
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
            p99_ms=statistics.median(s.p99_ms for s in runs),
            errors=sum(s.errors for s in runs),
        )


@dataclass
class Usage:
    server_cores: float  # CPU seconds of every process of the server, per second
    wrk_cores: float
    other_cores: float  # the rest of the machine's busy time: anything else running
    shares: list[float]  # each worker's part of the workers' CPU time


# -- processes ------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent not idle (/proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK


def find_workers(pool: Pool) -> list[int]:
    assert pool.process is not None
    if pool.workers == 1:
        return [pool.process.pid]
    return sorted(pid for pid in descendants(pool.process.pid) if pool.marker in cmdline(pid) and alive(pid))


def drain_log(pool: Pool) -> None:
    """Reads the server's stderr (a pipe, from start) so that it never
    fills and blocks the server; keeps a count and the last lines."""
    assert pool.process is not None and pool.process.stderr is not None
    for line in pool.process.stderr:
        pool.log_lines += 1
        pool.log_tail.append(line.decode(errors="replace").rstrip())


def fail(pool: Pool, message: str) -> SystemExit:
    tail = "\n".join(f"    {line}" for line in pool.log_tail)
    return SystemExit(f"bench: {pool.name}: {message}" + (f"\n  its last log lines:\n{tail}" if tail else ""))


def check_workers(pool: Pool) -> None:
    """The same workers as at start, all alive: none died or was replaced."""
    now = find_workers(pool)
    if now != pool.worker_pids:
        raise fail(pool, f"workers changed from {pool.worker_pids} to {now} (one died or was replaced)")


def stop_all(pools: list[Pool]) -> None:
    for pool in pools:
        if pool.process is None:
            continue
        leftovers = descendants(pool.process.pid) if pool.process.poll() is None else []
        if pool.process.poll() is None:
            pool.process.terminate()
            try:
                pool.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pool.process.kill()
                pool.process.wait()
        # The supervisors stop their workers themselves; only what outlived its
        # supervisor (killed after 10 s) is killed here, by pid.
        for pid in leftovers + pool.worker_pids:
            if pid != pool.process.pid and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# -- servers --------------------------------------------------------------------


def spikard_command(port: int, *flags: str) -> list[str]:
    """`spikard run` of bench/apps/spikard_app.py, without its access log (as uvicorn)."""
    app = BENCH / "apps" / "spikard_app.py"
    return [sys.executable, "-m", "spikard.cli", "run", str(app), "--port", str(port), "--no-access-log", *flags]


def uvicorn_command(port: int, *flags: str) -> list[str]:
    """The FastAPI app of bench/apps/fastapi_app.py on uvicorn: uvloop, httptools, no access log."""
    return [
        *(sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(BENCH / "apps")),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--port", str(port), *flags),
    ]


def pools() -> list[Pool]:
    ports = [free_port() for _ in range(4)]
    return [
        Pool("spikard 1w", spikard_command(ports[0]), ports[0]),
        Pool(
            "spikard 2w",
            spikard_command(ports[1], "--workers", "2"),
            ports[1],
            workers=2,
            marker="spikard._worker",
        ),
        Pool("uvicorn 1w", uvicorn_command(ports[2]), ports[2]),
        Pool(
            "uvicorn 2w",
            uvicorn_command(ports[3], "--workers", "2"),
            ports[3],
            workers=2,
            marker="multiprocessing.spawn",
        ),
    ]


def start(pool: Pool, folder: Path) -> None:
    """Starts the server (on every CPU this process may use: nothing pinned) and waits
    for it to answer /hello; then every worker must be up and answering: /hello
    alone may have been answered by the first worker to be ready."""
    pool.process = subprocess.Popen(pool.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    drain = threading.Thread(target=drain_log, args=(pool,), daemon=True)
    drain.start()
    deadline = time.monotonic() + 30
    while True:
        if pool.process.poll() is not None:
            drain.join(timeout=1)
            raise fail(pool, f"exited at start (status {pool.process.returncode})")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{pool.port}/hello", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise fail(pool, "did not answer /hello within 30 s") from None
            time.sleep(0.1)
    deadline = time.monotonic() + 30
    while len(pool.worker_pids) != pool.workers:
        if time.monotonic() > deadline:
            raise fail(pool, f"{len(pool.worker_pids)} worker process(es) after 30 s, not {pool.workers}")
        time.sleep(0.2)
        pool.worker_pids = find_workers(pool)
    hello = {"name": "hello", "method": "GET", "path": "/hello"}
    for _ in range(10):
        before = [cpu_seconds(pid) for pid in pool.worker_pids]
        run_wrk(pool, hello, 64, 1, folder)
        grew = [cpu_seconds(pid) - b for pid, b in zip(pool.worker_pids, before, strict=True)]
        if all(g >= 0.02 for g in grew):
            return
    raise fail(pool, f"worker(s) never busy under load (CPU seconds in 1 s of load: {grew}): not answering?")


# -- requests -------------------------------------------------------------------


def body(workload: dict) -> bytes | None:
    """The request body, compact JSON: "body", or "body_file" (relative to bench/)."""
    if "body_file" in workload:
        return json.dumps(json.loads((BENCH / workload["body_file"]).read_text(encoding="utf-8"))).encode()
    return json.dumps(workload["body"]).encode() if "body" in workload else None


def fetch(pool: Pool, workload: dict) -> tuple[int, bytes]:
    data = body(workload)
    request = urllib.request.Request(
        f"http://127.0.0.1:{pool.port}{workload['path']}",
        data=data,
        method=workload["method"],
        headers={"content-type": "application/json"} if data else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:  # a 4xx or 5xx answer
        return error.code, error.read()


def wrong_answer(workload: dict, status: int, answer: bytes) -> str | None:
    """None when the answer is the workload's "expect"; otherwise what differs."""
    expect = workload["expect"]
    if status != expect["status"]:
        return f"status {status}, expected {expect['status']}"
    if "json" in expect or "json_file" in expect:
        wanted = (
            json.loads((BENCH / expect["json_file"]).read_text(encoding="utf-8"))
            if "json_file" in expect
            else expect["json"]
        )
        try:
            got = json.loads(answer)
        except ValueError:
            got = answer.decode(errors="replace")
        if got != wanted:
            return f"answered {json.dumps(got)[:300]}, expected {json.dumps(wanted)[:300]}"
    missing = [word for word in expect.get("mentions", []) if word not in answer.decode(errors="replace")]
    if missing:
        return f"answer {answer[:300].decode(errors='replace')!r} does not mention {missing}"
    return None


def check_answers(all_pools: list[Pool], workloads: list[dict]) -> None:
    for pool in all_pools:
        for workload in workloads:
            if problem := wrong_answer(workload, *fetch(pool, workload)):
                raise fail(pool, f"wrong answer to {workload['title']}: {problem}")


def wrk_script(workload: dict, folder: Path) -> list[str]:
    data = body(workload)
    if workload["method"] == "GET" and data is None:
        return []
    script = folder / f"{workload['name']}.lua"
    lines = [f"wrk.method = {json.dumps(workload['method'])}"]
    if data is not None:
        # Read from a file: a body as a Lua string literal would need Lua's escaping.
        (folder / f"{workload['name']}.body").write_bytes(data)
        lines += [
            f"local file = assert(io.open({json.dumps(str(folder / (workload['name'] + '.body')))}, 'rb'))",
            "wrk.body = file:read('*a')",
            "file:close()",
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    script.write_text("\n".join(lines) + "\n")
    return ["-s", str(script)]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _millis(text: str) -> float:
    """wrk's durations: 812.00us, 1.20ms, 1.05s, 1.00m."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"bench: cannot read wrk's duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(pool: Pool, workload: dict, connections: int, duration: int, folder: Path) -> Sample:
    """wrk, one thread, on every CPU this process may use (nothing pinned)."""
    command = [
        *("wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"),
        *wrk_script(workload, folder),
        f"http://127.0.0.1:{pool.port}{workload['path']}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution's own line ("     99%    1.70ms"), not a stdev column.
    p99 = _millis(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Sample(rps, p99, errors)


# -- measuring ------------------------------------------------------------------


def measure(pool: Pool, workload: dict, args: argparse.Namespace, folder: Path) -> tuple[Sample, Usage]:
    assert pool.process is not None
    check_workers(pool)
    if args.warmup:
        run_wrk(pool, workload, args.connections, args.warmup, folder)
    processes = [pool.process.pid, *descendants(pool.process.pid)]
    before = {pid: cpu_seconds(pid) for pid in processes}
    load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy_seconds()
    began = time.monotonic()
    sample = run_wrk(pool, workload, args.connections, args.duration, folder)
    wall = time.monotonic() - began
    busy = machine_busy_seconds() - busy_before
    load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {pid: cpu_seconds(pid) - b for pid, b in before.items()}
    check_workers(pool)
    worker_cpu = [spent[pid] for pid in pool.worker_pids]
    total = sum(worker_cpu) or 1.0
    server_cores = sum(spent.values()) / wall
    wrk_cores = (load_after.ru_utime + load_after.ru_stime - load_before.ru_utime - load_before.ru_stime) / wall
    usage = Usage(
        server_cores=server_cores,
        wrk_cores=wrk_cores,
        other_cores=max(0.0, busy / wall - server_cores - wrk_cores),
        shares=[c / total for c in worker_cpu],
    )
    return sample, usage


# -- report ---------------------------------------------------------------------


def throughput_table(results: Results, workloads: list[dict], names: list[str]) -> str:
    s1, s2, u1, u2 = names
    lines = [
        "| workload | spikard 1w req/s | spikard 2w req/s | spikard 2w ÷ 1w | uvicorn 1w req/s | uvicorn 2w req/s "
        "| uvicorn 2w ÷ 1w | spikard 2w ÷ uvicorn 2w | p99 spikard 1w / 2w | p99 uvicorn 1w / 2w | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        name = workload["name"]
        m = {server: results.median(server, name) for server in names}
        lines.append(
            f"| {workload['title']} | {m[s1].rps:,.0f} | {m[s2].rps:,.0f} | {results.ratio(s2, s1, name):.2f}x "
            f"| {m[u1].rps:,.0f} | {m[u2].rps:,.0f} | {results.ratio(u2, u1, name):.2f}x "
            f"| {results.ratio(s2, u2, name):.2f}x "
            f"| {m[s1].p99_ms:.2f} / {m[s2].p99_ms:.2f} ms | {m[u1].p99_ms:.2f} / {m[u2].p99_ms:.2f} ms "
            f"| {sum(s.errors for s in m.values())} |"
        )
    return "\n".join(lines)


def usage_table(
    results: Results, usage: dict[tuple[str, str], list[Usage]], workloads: list[dict], pools: list[Pool]
) -> str:
    """`pools` in pairs: one worker, then two workers of the same server."""
    pairs = list(zip(pools[::2], pools[1::2], strict=True))
    lines = [
        "| workload | "
        + " | ".join(f"{p.name}: server + wrk (+ other) cores" for p in pools)
        + " | "
        + " | ".join(
            f"{two.name}: CPU split between workers | {two.name} ÷ 1w, req/s per server core" for _, two in pairs
        )
        + " |",
        "|---|" + "---:|" * (len(pools) + 2 * len(pairs)),
    ]
    for workload in workloads:
        name = workload["name"]
        cells = []
        for pool in pools:
            runs = usage[(pool.name, name)]
            server = statistics.median(u.server_cores for u in runs)
            wrk = statistics.median(u.wrk_cores for u in runs)
            other = statistics.median(u.other_cores for u in runs)
            cells.append(
                f"{server:.2f} + {wrk:.2f}"
                + (" ⚠" if wrk >= WRK_BOUND_CORES else "")
                + (f" (+ {other:.2f} ⚠)" if other >= OTHER_LOAD_CORES else "")
            )
        for one, two in pairs:
            runs = usage[(two.name, name)]
            split = [statistics.median(u.shares[i] for u in runs) for i in range(two.workers)]
            idle = sum(min(u.shares) < IDLE_SHARE for u in runs)
            cells.append(" / ".join(f"{s:.0%}" for s in split) + (f" ⚠ a worker idle in {idle} run(s)" if idle else ""))
            # Within each round, as Results.ratio does.
            per_core = [
                (two_sample.rps / two_use.server_cores) / (one_sample.rps / one_use.server_cores)
                for one_sample, one_use, two_sample, two_use in zip(
                    results.samples[(one.name, name)],
                    usage[(one.name, name)],
                    results.samples[(two.name, name)],
                    runs,
                    strict=True,
                )
            ]
            cells.append(f"{statistics.median(per_core):.2f}x")
        lines.append(f"| {workload['title']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_note() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({model}), {len(os.sched_getaffinity(0))} usable by this run"


def checkout_note() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "runtime"],
            cwd=BENCH.parent,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (runtime/ modified)" if dirty.stdout.strip() else "")


def report(
    args: argparse.Namespace,
    results: Results,
    usage: dict[tuple[str, str], list[Usage]],
    workloads: list[dict],
    all_pools: list[Pool],
    logged: dict[str, int],
) -> str:
    import spikard

    runs = [u for use in usage.values() for u in use]
    disturbed = sum(u.other_cores >= OTHER_LOAD_CORES for u in runs)
    idle = sum(len(u.shares) > 1 and min(u.shares) < IDLE_SHARE for u in runs)
    warnings = [
        f"- ⚠ {n} of {len(runs)} measurements {what} (see the CPU table)."
        for n, what in [
            (disturbed, "ran while something else used the machine: do not trust this run's figures"),
            (idle, "had a worker of a 2-worker server that hardly answered"),
        ]
        if n
    ]
    logs = ", ".join(f"{name} {n}" for name, n in logged.items())
    command = shlex.join(["python", "bench/workers.py", *sys.argv[1:]])
    return "\n".join(
        [
            "# Multi-process scaling: `--workers 2` against one worker",
            "",
            f"- Command: `{command}`",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; spikard {spikard.__version__} as installed "
            f"({Path(spikard.__file__).parent}); checkout {checkout_note()}",
            f"- Machine: {machine_note()}. **Nothing is pinned: the servers' workers and the load generator "
            "share the same cores**, so a 2-worker server competes with wrk for them: 2x is out of reach, and how "
            "far below it a server stays depends also on how much of the machine wrk needs to load it.",
            *warnings,
            f"- Load: wrk, 1 thread, {args.connections} connections; {args.rounds} interleaved round(s) of "
            f"{args.duration} s per server and workload after {args.warmup} s of unmeasured load; req/s and p99 "
            "are medians over rounds, ratios the median of the ratios within each round.",
            "- spikard: bench/apps/spikard_app.py, `spikard run` (1 worker: one process; `--workers 2`: a "
            "supervisor and 2 worker processes sharing one listening socket); access log off (`--no-access-log`).",
            "- uvicorn: bench/apps/fastapi_app.py, uvloop + httptools, no access log, log level warning "
            "(`--workers 2`: a parent and 2 spawned worker processes).",
            "",
            throughput_table(results, workloads, [p.name for p in all_pools]),
            "",
            "CPU use during the measurements (medians): cores of CPU time per second spent by every process of "
            f"the server, and by wrk (⚠: wrk at ≥ {WRK_BOUND_CORES} cores, its one thread may have been the limit), "
            f"and, when above {OTHER_LOAD_CORES}, by everything else on the machine (⚠: the machine was not "
            "otherwise idle, the measurement was disturbed); "
            "how each 2-worker server's worker CPU time was split between its two workers "
            f"(⚠: a worker had under {IDLE_SHARE:.0%} of it, i.e. hardly answered); and req/s per core of server "
            "CPU time with 2 workers ÷ with 1 (1.00x: the second process costs nothing per request).",
            "",
            "Reading the scaling: a 2-worker server gets only what wrk leaves of the cores. Where one worker and wrk "
            "already fill the machine, a second worker cannot add throughput, whatever the server; the per-core "
            "column separates that from what running two processes costs.",
            "",
            usage_table(results, usage, workloads, all_pools),
            "",
            f"Server log lines on stderr during the measurements: {logs}.",
            "",
        ]
    )


# -- main -----------------------------------------------------------------------

# spikard bench's default load (spikard_devtools.bench.CONNECTIONS).
CONNECTIONS = 64


def main() -> int:
    spec = json.loads((BENCH / "workloads.json").read_text())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; tables show medians (default: 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default: 10)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of unmeasured load before each measurement (default: 2)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"wrk connections (default: {CONNECTIONS}, as spikard bench)",
    )
    parser.add_argument(
        "--workloads",
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated names from bench/workloads.json (default: {DEFAULT_WORKLOADS}; "
        "'pydantic-post' also works, and adds a third to the run's time)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / "workers.md",
        help="where to write the report in markdown (default: bench/results/workers.md)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: 'wrk' is not installed; run bench/setup.sh")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench: needs at least two CPUs for two workers")

    known = {w["name"]: w for w in spec["workloads"]}
    workloads = []
    for name in args.workloads.split(","):
        if name not in known:
            raise SystemExit(f"bench: unknown workload {name!r}; see bench/workloads.json")
        workload = known[name]
        # wrk counts every answer outside 2xx and 3xx as an error.
        if not 200 <= workload["expect"]["status"] < 400:
            raise SystemExit(
                f"bench: workload {name!r} expects status {workload['expect']['status']}, which wrk would count "
                "as errors; pick workloads answered with 2xx or 3xx"
            )
        workloads.append(workload)

    all_pools = pools()
    measurements = args.rounds * len(workloads) * len(all_pools)
    minutes = measurements * (args.duration + args.warmup + 0.3) / 60
    print(
        f"bench: {measurements} measurements, about {minutes:.0f} min; servers and wrk share CPUs {cpus} "
        "(nothing pinned)",
        file=sys.stderr,
    )
    results = Results()
    usage: dict[tuple[str, str], list[Usage]] = {}
    logged: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            for pool in all_pools:
                print(f"bench: starting {pool.name}", file=sys.stderr)
                start(pool, folder)
                print(f"         worker pid(s) {pool.worker_pids}, each busy under load", file=sys.stderr)
            check_answers(all_pools, workloads)
            lines_before = {pool.name: pool.log_lines for pool in all_pools}
            done = 0
            for round_no in range(1, args.rounds + 1):
                shift = (round_no - 1) % len(all_pools)
                order = all_pools[shift:] + all_pools[:shift]
                for workload in workloads:
                    for pool in order:
                        done += 1
                        print(
                            f"bench: [{done}/{measurements}] round {round_no}: {pool.name} {workload['title']}",
                            file=sys.stderr,
                        )
                        sample, use = measure(pool, workload, args, folder)
                        results.add(pool.name, workload["name"], sample)
                        usage.setdefault((pool.name, workload["name"]), []).append(use)
                        split = " / ".join(f"{s:.0%}" for s in use.shares) if pool.workers > 1 else ""
                        print(
                            f"         {sample.rps:,.0f} req/s, p99 {sample.p99_ms:.2f} ms, errors {sample.errors}; "
                            f"cores: server {use.server_cores:.2f}, wrk {use.wrk_cores:.2f}, "
                            f"other {use.other_cores:.2f}" + (f"; worker split {split}" if split else ""),
                            file=sys.stderr,
                        )
                        if use.other_cores >= OTHER_LOAD_CORES:
                            print(
                                f"bench: warning: something else used {use.other_cores:.2f} cores meanwhile",
                                file=sys.stderr,
                            )
                        if pool.workers > 1 and min(use.shares) < IDLE_SHARE:
                            print(f"bench: warning: a worker of {pool.name} hardly answered ({split})", file=sys.stderr)
            logged = {pool.name: pool.log_lines - lines_before[pool.name] for pool in all_pools}
    finally:
        stop_all(all_pools)
    text = report(args, results, usage, workloads, all_pools, logged)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Multi-process scaling: spikard with one worker and with `--workers 2`, beside
FastAPI on uvicorn with one worker and with `--workers 2`, in the same run.

    python bench/workers.py [--rounds 3] [--duration 10] [--warmup 2] [--connections 64]

Unlike bench/run.py, nothing is pinned: the servers' workers AND the load generator
(wrk, one thread) share every core of the machine, so a 2-worker server can never
have two cores to itself, and what the load generator burns is taken from the
servers. The report says how many cores each server and wrk used, and how each
2-worker server's CPU time was split between its workers (each one must have
answered, or the measurement is flagged).

Each round runs every workload against every server in turn (rounds interleaved,
the server order rotating from round to round); the table reports medians over
rounds, and ratios are the median of the ratios taken within each round. The
servers are checked to give the same answers before anything is measured.
Load generation, answer checking and start-up are bench/run.py's. With the
defaults a run takes about 8 minutes. Set-up: bench/setup.sh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import run as bench  # bench/run.py, beside this file

BENCH = bench.BENCH
DEFAULT_WORKLOADS = "hello,item,create"
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
class Pool(bench.Server):
    """A server of `workers` processes. With more than one, the workers are the
    root process's children whose command line contains `marker`."""

    workers: int = 1
    marker: str = ""
    worker_pids: list[int] = field(default_factory=list)
    log_lines: int = 0
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))


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
    """Reads the server's stderr (a pipe, from bench.run.start) so that it never
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
        leftovers = descendants(pool.process.pid) if pool.process and pool.process.poll() is None else []
        bench.stop(pool)
        # The supervisors stop their workers themselves; only what outlived its
        # supervisor (killed after 10 s) is killed here, by pid.
        for pid in leftovers + pool.worker_pids:
            if pid != (pool.process.pid if pool.process else None) and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# -- servers --------------------------------------------------------------------


def pools() -> list[Pool]:
    ports = [bench.free_port() for _ in range(4)]

    def spikard(port: int, *flags: str) -> list[str]:
        return bench.spikard_command("spikard_app.py", port, bench.QUIET, *flags)

    return [
        Pool("spikard 1w", spikard(ports[0]), ports[0]),
        Pool(
            "spikard 2w",
            spikard(ports[1], "--workers", "2"),
            ports[1],
            workers=2,
            marker="spikard._worker",
        ),
        Pool("uvicorn 1w", bench.uvicorn_command(ports[2]), ports[2]),
        Pool(
            "uvicorn 2w",
            bench.uvicorn_command(ports[3], "--workers", "2"),
            ports[3],
            workers=2,
            marker="multiprocessing.spawn",
        ),
    ]


def start(pool: Pool, folder: Path) -> None:
    """bench.run.start (waits for /hello), then every worker must be up and answering:
    /hello alone may have been answered by the first worker to be ready."""
    bench.start(pool)
    threading.Thread(target=drain_log, args=(pool,), daemon=True).start()
    deadline = time.monotonic() + 30
    while len(pool.worker_pids) != pool.workers:
        if time.monotonic() > deadline:
            raise fail(pool, f"{len(pool.worker_pids)} worker process(es) after 30 s, not {pool.workers}")
        time.sleep(0.2)
        pool.worker_pids = find_workers(pool)
    hello = {"name": "hello", "method": "GET", "path": "/hello"}
    for _ in range(10):
        before = [cpu_seconds(pid) for pid in pool.worker_pids]
        bench.run_wrk(pool, hello, 64, 1, folder)
        grew = [cpu_seconds(pid) - b for pid, b in zip(pool.worker_pids, before, strict=True)]
        if all(g >= 0.02 for g in grew):
            return
    raise fail(pool, f"worker(s) never busy under load (CPU seconds in 1 s of load: {grew}): not answering?")


# -- measuring ------------------------------------------------------------------


def measure(pool: Pool, workload: dict, args: argparse.Namespace, folder: Path) -> tuple[bench.Sample, Usage]:
    assert pool.process is not None
    check_workers(pool)
    if args.warmup:
        bench.run_wrk(pool, workload, args.connections, args.warmup, folder)
    processes = [pool.process.pid, *descendants(pool.process.pid)]
    before = {pid: cpu_seconds(pid) for pid in processes}
    load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy_seconds()
    began = time.monotonic()
    sample = bench.run_wrk(pool, workload, args.connections, args.duration, folder)
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


def throughput_table(results: bench.Results, workloads: list[dict], names: list[str]) -> str:
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
    results: bench.Results, usage: dict[tuple[str, str], list[Usage]], workloads: list[dict], pools: list[Pool]
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
            # Within each round, as bench.Results.ratio does.
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
    results: bench.Results,
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
        default=spec["connections"],
        help=f"wrk connections (default: {spec['connections']}, as bench/workloads.json)",
    )
    parser.add_argument(
        "--workloads",
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated names from bench/workloads.json (default: {DEFAULT_WORKLOADS}; "
        "'pydantic' also works, and adds a third to the run's time)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / "workers.md",
        help="where to write the report in markdown (default: bench/results/workers.md)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: '{tool}' is not installed; run bench/setup.sh")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench: needs at least two CPUs for two workers")
    # bench.run pins servers and wrk with `taskset -c CPU`; here both get every CPU
    # this process may use, which is no pinning at all.
    bench.SERVER_CPU = bench.LOAD_CPU = ",".join(map(str, cpus))

    known = {w["name"]: w for w in spec["workloads"]}
    workloads = []
    for name in args.workloads.split(","):
        if name not in known:
            raise SystemExit(f"bench: unknown workload {name!r}; see bench/workloads.json")
        workload = dict(known[name])
        # A workload may be limited to some servers (the ceiling has no pydantic);
        # every one here is a spikard or a FastAPI server.
        if not {"spikard", "FastAPI"} <= set(workload.pop("servers", ["spikard", "FastAPI"])):
            raise SystemExit(f"bench: workload {name!r} is not served by both spikard and FastAPI")
        workloads.append(workload)

    all_pools = pools()
    measurements = args.rounds * len(workloads) * len(all_pools)
    minutes = measurements * (args.duration + args.warmup + 0.3) / 60
    print(
        f"bench: {measurements} measurements, about {minutes:.0f} min; servers and wrk share CPUs {cpus} "
        "(nothing pinned)",
        file=sys.stderr,
    )
    results = bench.Results()
    usage: dict[tuple[str, str], list[Usage]] = {}
    logged: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            for pool in all_pools:
                print(f"bench: starting {pool.name}", file=sys.stderr)
                start(pool, folder)
                print(f"         worker pid(s) {pool.worker_pids}, each busy under load", file=sys.stderr)
            bench.check_same_answers(all_pools, workloads)
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

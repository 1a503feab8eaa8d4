"""The measuring of ``spikard bench``: every contender started once and pinned, each
answer checked against what it must be before anything is timed, then rounds that
interleave the contenders on each workload (warm-up, timed run, answer checked
again), latencies at fixed offered rates, and spikard's stages from its own
statistics. A contender whose answers are wrong is reported failed, never fast."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress, TaskID

from spikard.stats import Snapshot
from spikard_devtools import _load
from spikard_devtools._bench_results import LATENCY_LOADS, Results, Sample
from spikard_devtools._load import Load, LoadFailed
from spikard_devtools._placement import Placement, pinned
from spikard_devtools._profile_report import stages_json
from spikard_devtools._progress import ticker
from spikard_devtools._served import Answer, NotServing
from spikard_devtools._server import CommandServer, free_port
from spikard_devtools._suite import Expect, Workload

# A fixed-rate run answering less than this share of what was offered did not keep up.
KEPT_UP = 0.9
# How long a server may take to answer its first request.
START_TIMEOUT = 120.0
# The flags that make a spikard keep stage statistics and write them at shutdown.
STAGE_FLAGS = ("--stage-stats", "--stats-file", "{stats}", "--stats-interval", "0")


@dataclass
class Contender:
    """A server measured: its command line (``{port}`` filled in at start), and the
    workloads it serves."""

    name: str
    label: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stages: bool = False
    workloads: frozenset[str] | None = None
    discard_output: bool = False
    server: CommandServer | None = None
    started: list[str] = field(default_factory=list)  # the first command line started, as run

    def serves(self, workload: Workload) -> bool:
        return self.workloads is None or workload.name in self.workloads

    def expanded(self, port: int) -> list[str]:
        # Not str.format: a command may hold braces of its own (a JSON argument).
        return [part.replace("{port}", str(port)) for part in self.command]

    def environment(self, port: int) -> dict[str, str]:
        return {k: v.replace("{port}", str(port)) for k, v in self.env.items()}

    def start(self, pin: str | None, extra: tuple[str, ...] = ()) -> CommandServer:
        port = free_port()
        command = self.expanded(port) + list(extra)
        if not self.started:
            self.started = command
        return CommandServer(
            self.name,
            command,
            port,
            cwd=self.cwd,
            env=self.environment(port),
            pin=pin,
            discard_output=self.discard_output,
        )


@dataclass(frozen=True)
class Settings:
    duration: float
    warmup: float
    rounds: int
    connections: int
    latency: float  # seconds per offered rate; 0: no latency runs
    stages: float  # seconds per workload for spikard's stage statistics; 0: none


@dataclass
class Bench:
    settings: Settings
    workloads: list[Workload]
    contenders: list[Contender]
    placement: Placement
    oha: Path
    results: Results
    notes: list[str] = field(default_factory=list)
    # Each contender's first answer to each workload (compared across contenders).
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    # Run once the first contender serves, before any answer is checked (the user's
    # app: its synthesised requests are tried and repaired there).
    prepare: Callable[[Bench, CommandServer], None] | None = None
    interrupted: bool = False

    # -- planning --------------------------------------------------------------

    def pairs(self) -> Iterator[tuple[Workload, Contender]]:
        for workload in self.workloads:
            for contender in self.contenders:
                if contender.serves(workload):
                    yield workload, contender

    def planned_seconds(self) -> float:
        s = self.settings
        pairs = sum(1 for _ in self.pairs())
        per_pair = s.rounds * (s.warmup + s.duration + len(LATENCY_LOADS) * s.latency)
        staged = sum(1 for _, c in self.pairs() if c.stages) * s.stages
        return pairs * per_pair + staged

    # -- the run ---------------------------------------------------------------

    def run(self, progress: Progress, task: TaskID) -> None:
        try:
            self._start_all(progress, task)
            first = self.contenders[0].server if self.contenders else None
            if self.prepare is not None and first is not None:
                self.prepare(self, first)
            self._check_all()
            for number in range(self.settings.rounds):
                self._round(number, progress, task)
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self._stop_all()
        if self.settings.stages > 0:
            self._stages(progress, task)

    def _start_all(self, progress: Progress, task: TaskID) -> None:
        for contender in self.contenders:
            progress.update(task, description=f"starting {contender.label}")
            try:
                contender.server = contender.start(self.placement.server_cpu)
                contender.server.wait_serving(START_TIMEOUT)
            except NotServing as error:
                self._fail_all(contender, f"did not start: {error}")
                if contender.server is not None:
                    contender.server.stop()
                    contender.server = None

    def _stop_all(self) -> None:
        """Every server stopped, each in turn even when Ctrl-C comes again meanwhile
        (the one being stopped is then killed, and the rest are still stopped)."""
        interrupted: KeyboardInterrupt | None = None
        for contender in self.contenders:
            server, contender.server = contender.server, None
            if server is None:
                continue
            try:
                status = server.stop()
            except KeyboardInterrupt as again:
                interrupted = again
                continue
            # A server stopped while starting may say so; only a normal stop is news.
            if status not in (0, -signal.SIGINT, 128 + signal.SIGINT) and not self.interrupted:
                tail = server.output().strip()[-300:]
                self.notes.append(f"{contender.label} exited with status {status} when stopped: {tail}")
        if interrupted is not None:
            raise interrupted

    def _fail_all(self, contender: Contender, why: str) -> None:
        for workload in self.workloads:
            if contender.serves(workload):
                self.results.cell(contender.name, workload.name).failure = why

    def _check_all(self) -> None:
        """Every answer checked once before anything is timed."""
        for workload, contender in self.pairs():
            if contender.server is None:
                continue
            verdict = self._check(workload, contender, first=True)
            if verdict is not None:
                self.results.cell(contender.name, workload.name).failure = f"wrong answer before the load: {verdict}"

    def expectation(self, workload: Workload, contender: Contender) -> Expect:
        """The workload's expected answer; for a request of the user's app (which
        names none), the status the contender itself gave first."""
        if workload.expect.status:
            return workload.expect
        first = self.answers.get((contender.name, workload.name))
        return Expect(first.status if first else 0)

    def _check(self, workload: Workload, contender: Contender, first: bool = False) -> str | None:
        assert contender.server is not None
        try:
            answer = contender.server.send(workload.probe)
        except (OSError, ValueError, http.client.HTTPException) as error:
            return f"no answer: {error!r}"
        if first:
            self.answers[(contender.name, workload.name)] = answer
            if answer.status >= 500:
                return f"answered {answer.status}: {answer.body[:200].decode('utf-8', 'replace')}"
        return self.expectation(workload, contender).verdict(answer)

    def _live(self, workload: Workload, contender: Contender) -> bool:
        cell = self.results.cell(contender.name, workload.name)
        return contender.server is not None and cell.failure is None

    def _round(self, number: int, progress: Progress, task: TaskID) -> None:
        s = self.settings
        # Every other round in reverse order, so that no contender always runs first.
        order = self.contenders if number % 2 == 0 else list(reversed(self.contenders))
        for workload in self.workloads:
            for contender in order:
                if not contender.serves(workload):
                    continue
                said = f"round {number + 1}/{s.rounds}: {workload.title} · {contender.label}"
                latency_seconds = len(LATENCY_LOADS) * s.latency
                if not self._live(workload, contender):
                    progress.advance(task, s.warmup + s.duration + latency_seconds)
                    continue
                progress.update(task, description=said)
                cell = self.results.cell(contender.name, workload.name)
                if s.warmup > 0:
                    warmed = self._load(workload, contender, s.warmup, None, progress, task)
                    if isinstance(warmed, str):
                        cell.failure = f"the warm-up failed: {warmed}"
                        progress.advance(task, s.duration + latency_seconds)
                        continue
                measured = self._load(workload, contender, s.duration, None, progress, task, cell.oha)
                if isinstance(measured, str):
                    cell.failure = f"the load failed: {measured}"
                    progress.advance(task, latency_seconds)
                    continue
                sample, load = measured
                cell.failure = self._wrong(workload, contender, load)
                if cell.failure is None:
                    verdict = self._check(workload, contender)
                    if verdict is not None:
                        cell.failure = f"wrong answer after round {number + 1}: {verdict}"
                if cell.failure is None:
                    cell.samples.append(sample)
                    self._latencies(workload, contender, sample.rate, progress, task)
                else:
                    progress.advance(task, latency_seconds)

    def _wrong(self, workload: Workload, contender: Contender, load: Load) -> str | None:
        """What was wrong with a timed run's answers as oha counted them, or None."""
        expected = str(self.expectation(workload, contender).status)
        other = {status: n for status, n in load.statuses.items() if status != expected}
        if other or load.errors:
            counted = ", ".join(f"{n}× {status}" for status, n in {**other, **load.errors}.items())
            return f"under load, {counted} besides {load.statuses.get(expected, 0)}× {expected}"
        if not load.statuses:
            return "no request was answered under load"
        return None

    def _load(
        self,
        workload: Workload,
        contender: Contender,
        seconds: float,
        rate: float | None,
        progress: Progress,
        task: TaskID,
        keep: list[str] | None = None,
    ) -> tuple[Sample, Load] | str:
        """One oha run, and its command line in ``keep`` (when given, as run); what
        went wrong when oha did not run."""
        assert contender.server is not None
        s = self.settings
        command = _load.command(
            self.oha, contender.server.base_url, workload.probe, seconds=seconds, connections=s.connections, rate=rate
        )
        if keep is not None:
            keep[:] = pinned(command, self.placement.generator_cpu)
        start = progress.tasks[task].completed
        before = _children_cpu()
        try:
            load = _load.run(
                command,
                pin=self.placement.generator_cpu,
                tick=ticker(progress, task, seconds),
                deadline=seconds + _load.REQUEST_TIMEOUT + 30,
            )
        except LoadFailed as error:
            return str(error)
        finally:
            progress.update(task, completed=start + seconds)
        # oha's CPU time as a share of what it may use: one CPU when pinned.
        cpus = 1 if self.placement.generator_cpu is not None else len(os.sched_getaffinity(0))
        return Sample.of(load, (_children_cpu() - before) / cpus, offered=rate), load

    def _latencies(
        self, workload: Workload, contender: Contender, rate: float, progress: Progress, task: TaskID
    ) -> None:
        """The contender at fixed shares of the rate it just reached, latencies counted
        from when each request was due (coordinated omission corrected); in every
        round, so that one stall of the machine is one round's figure, not the row's."""
        s = self.settings
        cell = self.results.cell(contender.name, workload.name)
        for share in LATENCY_LOADS:
            if s.latency <= 0 or cell.failure is not None:
                progress.advance(task, s.latency)
                continue
            progress.update(task, description=f"latency at {share:.0%}: {workload.title} · {contender.label}")
            measured = self._load(workload, contender, s.latency, rate * share, progress, task)
            if isinstance(measured, str):
                self.notes.append(f"{contender.label} on {workload.title}: no latency at {share:.0%}: {measured}")
                continue
            # The same gate as the timed runs: wrong answers here are wrong answers.
            wrong = self._wrong(workload, contender, measured[1])
            if wrong is not None:
                cell.failure = f"at {share:.0%} of its maximum: {wrong}"
                continue
            sample = measured[0]
            if sample.rate < KEPT_UP * rate * share and f"{share:.0%}" not in cell.latency:
                self.notes.append(
                    f"{contender.label} on {workload.title}: at {share:.0%} of its maximum it answered "
                    f"{sample.rate:,.0f} of {rate * share:,.0f} req/s offered: those latencies are an overloaded "
                    "server's (a run shorter than a request, or a maximum measured too high)"
                )
            cell.latency.setdefault(f"{share:.0%}", []).append(sample)

    def _stages(self, progress: Progress, task: TaskID) -> None:
        """spikard again, one fresh server per workload with its stage statistics on,
        so that each route's breakdown holds that workload's load alone (and the
        timed figures above ran without the statistics' small cost)."""
        s = self.settings
        for workload, contender in self.pairs():
            if not contender.stages:
                continue
            cell = self.results.cell(contender.name, workload.name)
            if not cell.ok:
                progress.advance(task, s.stages)
                continue
            progress.update(task, description=f"stages: {workload.title} · {contender.label}")
            with tempfile.TemporaryDirectory(prefix="spikard-bench-") as scratch:
                stats = Path(scratch) / "stats.json"
                flags = tuple(part.replace("{stats}", str(stats)) for part in STAGE_FLAGS)
                try:
                    contender.server = contender.start(self.placement.server_cpu, flags)
                    contender.server.wait_serving(START_TIMEOUT)
                    loaded = self._load(workload, contender, s.stages, None, progress, task)
                    if isinstance(loaded, str):
                        self.notes.append(f"{contender.label}: no stage statistics for {workload.title}: {loaded}")
                        continue
                except NotServing as error:
                    self.notes.append(f"{contender.label}: no stage statistics for {workload.title}: {error}")
                    continue
                finally:
                    if contender.server is not None:
                        contender.server.stop()
                        contender.server = None
                self._read_stages(contender, workload, stats)

    def _read_stages(self, contender: Contender, workload: Workload, stats: Path) -> None:
        cell = self.results.cell(contender.name, workload.name)
        try:
            snapshot = Snapshot.load(stats)
        except (OSError, ValueError) as error:
            self.notes.append(f"{contender.label}: the stage statistics of {workload.title} could not be read: {error}")
            return
        served = snapshot.served()
        if not served:
            return
        # The route the workload reached (the readiness probe's 404 counts a few).
        route = max(served, key=lambda r: r.count)
        cell.stage_route = route.route
        cell.stages = stages_json(snapshot, [route.route]).get(route.route)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: around one oha run, oha's
    own (the servers, still running, are not counted until they are reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

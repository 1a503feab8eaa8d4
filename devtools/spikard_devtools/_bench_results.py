"""What ``spikard bench`` measured: per framework and workload, one sample per round,
the latencies at fixed offered rates, spikard's stages, or why it failed; and the
figures taken from them (medians, spread, ratios within a round, the ceiling's share).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from spikard_devtools._load import Load

# A figure within this fraction of the ceiling's rate is the load generator's limit,
# not the framework's.
GENERATOR_MARGIN = 0.10
# oha busy at least this share of its CPU: it was the bottleneck of that sample.
GENERATOR_BUSY = 0.90
# The offered rates latencies are measured at, as shares of a framework's maximum.
LATENCY_LOADS = (0.5, 0.8)


@dataclass(frozen=True)
class Sample:
    """One load run as oha saw it; latencies in seconds; ``generator_busy`` is oha's
    CPU time over the run's wall time, per CPU it may use (None when unknown)."""

    rate: float
    p50: float
    p99: float
    statuses: dict[str, int]
    errors: dict[str, int]
    generator_busy: float | None = None
    offered: float | None = None  # the fixed rate asked for, for latency runs

    @classmethod
    def of(cls, load: Load, generator_cpu: float | None = None, offered: float | None = None) -> Sample:
        busy = generator_cpu / load.seconds if generator_cpu is not None and load.seconds > 0 else None
        return cls(load.rate, load.p50, load.p99, load.statuses, load.errors, busy, offered)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests_per_second": round(self.rate, 1),
            "p50_ms": round(self.p50 * 1000, 3),
            "p99_ms": round(self.p99 * 1000, 3),
            "statuses": self.statuses,
            "errors": self.errors,
        }
        if self.generator_busy is not None:
            out["generator_busy"] = round(self.generator_busy, 3)
        if self.offered is not None:
            out["offered_per_second"] = round(self.offered, 1)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(
            rate=float(data["requests_per_second"]),
            p50=float(data["p50_ms"]) / 1000,
            p99=float(data["p99_ms"]) / 1000,
            statuses=dict(data.get("statuses", {})),
            errors=dict(data.get("errors", {})),
            generator_busy=data.get("generator_busy"),
            offered=data.get("offered_per_second"),
        )


@dataclass
class Cell:
    """One framework on one workload."""

    framework: str
    workload: str
    samples: list[Sample] = field(default_factory=list)
    failure: str | None = None  # why its figures are not shown: answers wrong, or no load
    latency: dict[str, list[Sample]] = field(default_factory=dict)  # "50%" -> each round's run at that rate
    stages: dict[str, Any] | None = None  # spikard's statistics of the route, as _profile_report writes them
    stage_route: str | None = None
    oha: list[str] = field(default_factory=list)  # the timed runs' oha command line, as run

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.samples)

    def rate(self) -> float:
        return statistics.median(s.rate for s in self.samples)

    def p50(self) -> float:
        return statistics.median(s.p50 for s in self.samples)

    def p99(self) -> float:
        return statistics.median(s.p99 for s in self.samples)

    def p99_at(self, share: str) -> float | None:
        """The median over rounds of the p99 at a fixed offered share of the maximum."""
        runs = self.latency.get(share)
        return statistics.median(s.p99 for s in runs) if runs else None

    def spread(self) -> float:
        """Half the range of the rounds' rates over their median: ±this much."""
        rates = [s.rate for s in self.samples]
        median = statistics.median(rates)
        return (max(rates) - min(rates)) / 2 / median if median else 0.0

    def generator_saturated(self) -> bool:
        busy = [s.generator_busy for s in self.samples if s.generator_busy is not None]
        return bool(busy) and statistics.median(busy) >= GENERATOR_BUSY

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "workload": self.workload,
            "failure": self.failure,
            "rounds": [s.to_json() for s in self.samples],
            "latency_at": {share: [s.to_json() for s in runs] for share, runs in self.latency.items()},
            "stage_route": self.stage_route,
            "stages": self.stages,
            "oha": self.oha,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        return cls(
            framework=data["framework"],
            workload=data["workload"],
            samples=[Sample.from_json(s) for s in data.get("rounds", [])],
            failure=data.get("failure"),
            latency={k: [Sample.from_json(s) for s in v] for k, v in data.get("latency_at", {}).items()},
            stages=data.get("stages"),
            stage_route=data.get("stage_route"),
            oha=list(data.get("oha", [])),
        )


@dataclass
class Results:
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    reference: str | None = None  # ratios are to this framework (FastAPI)
    ceiling: str | None = None  # the measuring limit

    def cell(self, framework: str, workload: str) -> Cell:
        key = (framework, workload)
        if key not in self.cells:
            self.cells[key] = Cell(framework, workload)
        return self.cells[key]

    def get(self, framework: str | None, workload: str) -> Cell | None:
        cell = self.cells.get((framework, workload)) if framework else None
        return cell if cell is not None and cell.ok else None

    def ratio(self, framework: str, peer: str | None, workload: str) -> float | None:
        """The median over rounds of framework ÷ peer, each taken within one round:
        steadier than a ratio of medians when the machine's speed drifts."""
        mine, theirs = self.get(framework, workload), self.get(peer, workload)
        if mine is None or theirs is None or len(mine.samples) != len(theirs.samples):
            return None
        return statistics.median(a.rate / b.rate for a, b in zip(mine.samples, theirs.samples, strict=True))

    def generator_bound(self, framework: str, workload: str) -> bool:
        """Whether the figure is the load generator's limit rather than the
        framework's: oha's CPU was saturated, or the figure is within 10% of the
        ceiling's on a workload where the ceiling saturated oha (where the ceiling is
        held back by something else, a sleep, its rate is no generator limit)."""
        cell = self.get(framework, workload)
        if cell is None:
            return False
        if cell.generator_saturated():
            return True
        ceiling = self.get(self.ceiling, workload)
        if framework == self.ceiling or ceiling is None or not ceiling.generator_saturated():
            return False
        share = self.ratio(framework, self.ceiling, workload)
        return share is not None and share >= 1 - GENERATOR_MARGIN

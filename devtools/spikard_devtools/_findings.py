"""What one ``spikard profile`` run found: each request with its check and its loads,
and the run's settings, statistics, CPU split, files and notes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikard.stats import Snapshot
from spikard_devtools._load import Load
from spikard_devtools._placement import Placement
from spikard_devtools._requests import Probe
from spikard_devtools._served import Answer, CpuTimes
from spikard_devtools._stacks import CpuSplit


@dataclass
class ProbeResult:
    """One request: its check before the load, and what each phase's load saw."""

    probe: Probe
    check: Answer | None = None
    skipped: str | None = None  # why it was not put under load
    started: bool = False  # its stage phase load began (and may have been interrupted)
    stage_load: Load | None = None
    sample_load: Load | None = None

    def to_json(self) -> dict[str, Any]:
        check = None
        if self.check is not None:
            check = {"status": self.check.status, "body": self.check.body[:500].decode("utf-8", "replace")}
        return {
            **self.probe.to_json(),
            "check": check,
            "skipped": self.skipped,
            "stage_phase": self.stage_load.to_json() if self.stage_load else None,
            "sampling_phase": self.sample_load.to_json() if self.sample_load else None,
        }


@dataclass
class Profile:
    """One run's inputs and findings."""

    app: str
    args: argparse.Namespace
    stem: str  # the files' name: <app>-<timestamp>
    placement: Placement
    argv: list[str]  # the command line, as typed
    results: list[ProbeResult] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # every route of the app, in its order
    skipped_routes: dict[str, str] = field(default_factory=dict)  # no request synthesised: why
    snapshot: Snapshot | None = None
    times: CpuTimes | None = None  # the stage phase's CPU, from /proc
    split: CpuSplit | None = None
    together: int = 0  # samples holding the runtime's Rust and the app's code in one stack
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.args.out)

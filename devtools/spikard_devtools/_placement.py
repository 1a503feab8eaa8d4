"""Which CPU the server and the load generator each run on, so that neither takes the
other's time: apart when there are two CPUs and one server process."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Which CPU the server and the load generator run on: apart when there are two
    CPUs and one server process, so that neither takes the other's time."""

    server_cpu: str | None
    generator_cpu: str | None
    text: str

    @classmethod
    def choose(cls, workers: int) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if workers != 1:
            return cls(None, None, "not pinned: more than one worker spreads the server over every CPU")
        if len(cpus) < 2:
            return cls(None, None, "not pinned: one CPU available, shared by the server and oha")
        if shutil.which("taskset") is None:
            return cls(None, None, "not pinned: taskset is not installed")
        return cls(str(cpus[0]), str(cpus[1]), f"server on CPU {cpus[0]}, oha on CPU {cpus[1]} (taskset)")


def pinned(command: list[str], cpu: str | None) -> list[str]:
    """``command`` run on ``cpu`` (through taskset), or as it is when there is none."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", cpu, *command]

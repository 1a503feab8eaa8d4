"""The machine a benchmark ran on, so that figures are never compared across machines
without saying so: CPU model, cores, frequency governor, kernel, memory; and the
versions of what was measured and what measured it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import socket
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

# The distributions whose versions a report keeps, when installed.
PACKAGES = (
    "spikard",
    "spikard-devtools",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
    "litestar",
    "robyn",
    "msgspec",
)


def machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "kernel": platform.release(),
        "system": platform.platform(),
        "memory_gib": _memory_gib(),
        # Which machine, without naming it: equal on the same host, nothing more.
        "host": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
        "virtualised": _read("/sys/class/dmi/id/product_name"),
    }


def versions() -> dict[str, str]:
    found = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = package_version(name)
    return found


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _read(path: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip() or None
    return None

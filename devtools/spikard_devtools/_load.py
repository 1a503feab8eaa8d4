"""Load from ``oha``: one request, repeated over many connections for a while, at the
most the server takes or at a fixed offered rate, read back from oha's JSON summary.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikard_devtools._placement import pinned
from spikard_devtools._requests import Probe

# A request unanswered this long counts as an error (and the load ends at the latest
# this long after its duration).
REQUEST_TIMEOUT = 60
# What oha calls the requests it abandons when -z runs out.
ABORTED_AT_DEADLINE = "aborted due to deadline"


@dataclass(frozen=True)
class Load:
    """What the load generator saw of one run: seconds for the latencies."""

    requests: int
    seconds: float
    rate: float  # answered requests per second
    p50: float
    p99: float
    statuses: dict[str, int]
    errors: dict[str, int]

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.rate, 1),
            "latency_ms": {"p50": round(self.p50 * 1000, 3), "p99": round(self.p99 * 1000, 3)},
            "statuses": self.statuses,
            "errors": self.errors,
        }


class LoadFailed(Exception):
    """oha did not run, or said something unreadable; the message has what it printed."""


def command(
    oha: Path, base_url: str, probe: Probe, *, seconds: float, connections: int, rate: float | None
) -> list[str]:
    args = [
        str(oha),
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        f"{max(1, round(seconds * 1000))}ms",
        # Requests still in flight at the end are waited for, not cut: a cut one
        # would count as a client gone (499) in the server's figures.
        "--wait-ongoing-requests-after-deadline",
        "-t",
        f"{REQUEST_TIMEOUT}s",
        "-c",
        str(connections),
        "-m",
        probe.method,
    ]
    if rate:
        # A fixed offered rate: latencies from when each request was due, not when
        # it was sent (coordinated omission corrected).
        args += ["-q", str(rate), "--latency-correction"]
    for name, value in probe.headers:
        args += ["-H", f"{name}: {value}"]
    if probe.body is not None:
        args += ["-d", probe.body.decode("utf-8", "surrogateescape")]
    return [*args, base_url + probe.target]


def run(
    args: list[str],
    *,
    pin: str | None = None,
    tick: Callable[[float], None] | None = None,
    deadline: float | None = None,
) -> Load:
    """Runs oha (on CPU list ``pin`` when given and taskset exists) and reads its
    summary; ``tick`` hears the seconds elapsed, about ten times a second."""
    args = pinned(args, pin)
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            try:
                out, err = process.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if tick is not None:
                    tick(time.monotonic() - started)
                if deadline is not None and time.monotonic() - started > deadline:
                    raise LoadFailed(f"oha did not finish within {deadline:.0f} s") from None
    finally:
        if process.poll() is None:  # interrupted: oha goes too
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise LoadFailed(f"oha exited with status {process.returncode}: {(err or out).strip()[-800:]}")
    try:
        return parse(json.loads(out))
    except (ValueError, KeyError, TypeError) as error:
        raise LoadFailed(f"oha's output could not be read ({error}): {out.strip()[:400]}") from None


def parse(summary: dict[str, Any]) -> Load:
    statuses = {str(k): int(v) for k, v in summary.get("statusCodeDistribution", {}).items()}
    # Requests in flight when the duration ends are cut by oha itself, not failures.
    errors = {str(k): int(v) for k, v in summary.get("errorDistribution", {}).items() if k != ABORTED_AT_DEADLINE}
    total = float(summary["summary"]["total"])
    answered = sum(statuses.values())
    percentiles = summary.get("latencyPercentiles", {})
    return Load(
        requests=answered + sum(errors.values()),
        seconds=total,
        rate=answered / total if total else 0.0,
        p50=float(percentiles.get("p50") or 0.0),
        p99=float(percentiles.get("p99") or 0.0),
        statuses=statuses,
        errors=errors,
    )

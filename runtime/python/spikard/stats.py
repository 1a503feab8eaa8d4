"""Where each request's time goes, by stage.

The runtime times every request in five stages (``STAGES``), from the first byte
of its head until its response head is built:

- ``parse``: matching the route, reading and parsing the body, extracting parameters;
- ``validate``: coercing parameters and checking their constraints and the body's schema;
- ``ffi``: waiting for the interpreter and building the handler's arguments;
- ``handler``: the handler's call and every await until its result is in hand;
- ``response``: turning the result into a response.

What falls in none of them (a problem response the runtime answers itself, the
hand-offs between stages) is ``other``; writing the body to the socket is in no stage
and not in the total.

``snapshot()`` reads the statistics of the app this process serves, per route
template; ``reset()`` starts them afresh; ``parse_server_timing()`` reads the
``Server-Timing`` header ``--server-timing`` adds to every response. Outside the
process, ``spikard run --stats-file PATH`` writes the same snapshot (merged across
workers) as JSON that ``Snapshot.load(PATH)`` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikard import _spikard

__all__ = [
    "STAGES",
    "UNROUTED",
    "RouteStats",
    "ServerTiming",
    "Snapshot",
    "Summary",
    "parse_server_timing",
    "reset",
    "snapshot",
]

STAGES: tuple[str, ...] = _spikard.STAGES
"""The stage names, in the order a request passes through them."""

UNROUTED: str = _spikard.UNROUTED
"""The route name of requests that matched no route (404, 405, automatic OPTIONS)."""

STATUS_CLASSES: tuple[str, ...] = _spikard.STATUS_CLASSES
"""How responses are counted: ``1xx`` … ``5xx``."""

FILE_FORMAT = "spikard.stats"
FILE_VERSION = 1
"""The ``--stats-file`` format and its version; a later spikard that changes the
layout raises the version, and ``Snapshot.from_json`` refuses versions it does not know."""


@dataclass(frozen=True)
class Summary:
    """Latencies of one stage (or the total) of one route, in microseconds. The
    percentiles and the maximum are exact to two significant digits (HDR histograms);
    the mean is exact. All zero when ``count`` is 0."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def _from_row(cls, row: tuple[int, float, int, int, int, int]) -> Summary:
        count, mean, p50, p90, p99, most = row
        return cls(count, mean / 1000.0, p50 / 1000.0, p90 / 1000.0, p99 / 1000.0, most / 1000.0)


@dataclass(frozen=True)
class RouteStats:
    """One route's figures: ``route`` is its template (``GET /items/{item_id}``) or
    ``UNROUTED``. ``stages`` has every stage name; a stage a request never reached (a
    request refused by validation has no ``ffi``, ``handler`` or ``response``) counts
    in neither its count nor its figures. ``statuses`` counts responses by class."""

    route: str
    stages: dict[str, Summary]
    total: Summary
    statuses: dict[str, int]

    @property
    def count(self) -> int:
        """Requests counted."""
        return self.total.count


@dataclass(frozen=True)
class Snapshot:
    """Statistics at one moment: ``routes`` by name, in the app's order, ``UNROUTED``
    last. From ``snapshot()``, this process's (empty unless it serves with
    ``--stage-stats``); from a ``--stats-file``, every worker's merged, and ``pid`` is
    the process that wrote it (the supervisor's, with ``--workers``)."""

    routes: dict[str, RouteStats]
    pid: int = field(default_factory=os.getpid)
    taken_at: float = field(default_factory=time.time)

    def served(self) -> list[RouteStats]:
        """The routes that counted any request."""
        return [route for route in self.routes.values() if route.count]

    @classmethod
    def _from_rows(cls, rows: list[Any]) -> Snapshot:
        routes = {}
        for route, stages, total, statuses in rows:
            routes[route] = RouteStats(
                route=route,
                stages={name: Summary._from_row(row) for name, row in zip(STAGES, stages, strict=True)},
                total=Summary._from_row(total),
                statuses=dict(zip(STATUS_CLASSES, statuses, strict=True)),
            )
        return cls(routes)

    def to_json(self) -> str:
        """The snapshot as the versioned JSON ``--stats-file`` holds (microseconds)."""
        document = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "pid": self.pid,
            "taken_at": self.taken_at,
            "unit": "microseconds",
            "stages": list(STAGES),
            "routes": [dataclasses.asdict(route) for route in self.routes.values()],
        }
        return json.dumps(document, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Reads what ``to_json`` wrote; ``ValueError`` for anything else, or for a
        version this spikard does not know."""
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
            raise ValueError("not a spikard statistics file")
        if document.get("version") != FILE_VERSION:
            raise ValueError(
                f"spikard statistics version {document.get('version')!r}; this spikard reads {FILE_VERSION}"
            )
        try:
            routes = {}
            for route in document["routes"]:
                routes[route["route"]] = RouteStats(
                    route=route["route"],
                    stages={name: Summary(**figures) for name, figures in route["stages"].items()},
                    total=Summary(**route["total"]),
                    statuses=dict(route["statuses"]),
                )
            return cls(routes, pid=document["pid"], taken_at=document["taken_at"])
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"a malformed spikard statistics file ({type(error).__name__}: {error})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Reads a ``--stats-file``."""
        return cls.from_json(Path(path).read_text())


def snapshot() -> Snapshot:
    """The stage statistics of the app this process serves now (the latest started)."""
    return Snapshot._from_rows(_spikard.stats_snapshot() or [])


def reset() -> None:
    """Forgets everything this process counted so far (requests in flight may be half
    counted). In a worker of ``--workers N``, the merged ``--metrics-*`` counters then
    go down, which Prometheus reads as a counter reset."""
    _spikard.stats_reset()


@dataclass(frozen=True)
class ServerTiming:
    """A ``Server-Timing`` header as spikard sends it, in milliseconds: each stage the
    request reached, and the total."""

    stages: dict[str, float]
    total: float

    @property
    def other(self) -> float:
        """The part of the total in no stage (never below zero: each figure is rounded
        to the microsecond)."""
        return max(self.total - sum(self.stages.values()), 0.0)


def parse_server_timing(header: str) -> ServerTiming:
    """Reads a ``Server-Timing`` value (W3C Server Timing: ``name;dur=ms`` metrics,
    comma-separated, parameters in any order); metrics other than the stages and
    ``total`` are ignored. Several header lines may be joined with commas.

    Raises ``ValueError`` when it has no ``total`` or a duration is not a number."""
    stages: dict[str, float] = {}
    total: float | None = None
    for metric in _split_outside_quotes(header, ","):
        name, *params = (part.strip() for part in _split_outside_quotes(metric, ";"))
        if not name:
            continue
        duration = None
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "dur":
                try:
                    duration = float(value.strip().strip('"'))
                except ValueError:
                    raise ValueError(f"Server-Timing metric {name!r}: dur={value!r} is not a number") from None
        if duration is None:
            continue
        if name == "total":
            total = duration
        elif name in STAGES:
            stages[name] = duration
    if total is None:
        raise ValueError(f"Server-Timing has no total: {header!r}")
    return ServerTiming({name: stages[name] for name in STAGES if name in stages}, total)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Splits on ``separator`` except inside a quoted string (``desc="a, b"``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts

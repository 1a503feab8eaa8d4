"""``spikard run``'s stage-timing options: what they are, what is wrong with them,
and the statistics export they start (``_stats_export``, imported only when asked for)."""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from spikard import _spikard
from spikard._server import bind_socket, bind_unix

if TYPE_CHECKING:
    from spikard._stats_export import StatsExport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "stage timing", "each request is timed in five stages: parse, validate, ffi, handler, response"
    )
    group.add_argument(
        "--server-timing",
        action="store_true",
        help="send each request's stage times in a Server-Timing header (browsers' developer tools show them)",
    )
    group.add_argument(
        "--access-log-stages",
        action="store_true",
        help="add each request's stage times (milliseconds) to its access line",
    )
    group.add_argument(
        "--stage-stats",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,  # unset: decided by the exports (stage_stats below)
        help="keep latency histograms per route and stage, read with spikard.stats (default: on with "
        "--stats-file or --metrics-*, off otherwise: they cost about 1-1.5%% more work per request)",
    )
    group.add_argument(
        "--stats-file",
        metavar="PATH",
        help="write the statistics (all workers merged) as JSON to PATH, every --stats-interval "
        "seconds and at shutdown; spikard.stats.Snapshot.load(PATH) reads it",
    )
    group.add_argument(
        "--stats-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often --stats-file is rewritten (0: only at shutdown)",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve the statistics (all workers merged) as Prometheus metrics on port N of --host, "
        "at /metrics: histograms per route and stage from 1 µs, responses per status class",
    )
    group.add_argument(
        "--metrics-uds", metavar="PATH", help="serve the Prometheus metrics on a Unix socket at PATH instead"
    )


def exports(args: argparse.Namespace) -> list[str]:
    """The export options given."""
    given = {
        "--stats-file": bool(args.stats_file),
        "--metrics-port": args.metrics_port is not None,
        "--metrics-uds": bool(args.metrics_uds),
    }
    return [flag for flag, on in given.items() if on]


def stage_stats(args: argparse.Namespace) -> bool:
    """Whether the statistics are kept: asked for, or needed by an export."""
    return bool(getattr(args, "stage_stats", None) or exports(args))


def check(args: argparse.Namespace) -> str | None:
    """What is wrong with these options, if anything."""
    if args.access_log_stages and not args.access_log:
        return "--access-log-stages needs the access log (drop --no-access-log)"
    if not math.isfinite(args.stats_interval) or args.stats_interval < 0:
        return f"--stats-interval must be a number of seconds, 0 or more (got {args.stats_interval})"
    if args.metrics_port is not None and args.metrics_uds:
        return "--metrics-port and --metrics-uds cannot be used together"
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        return f"--metrics-port must be a port number, 1 to 65535 (got {args.metrics_port})"
    exported = exports(args)
    if exported and getattr(args, "stage_stats", None) is False:
        verb = "needs" if len(exported) == 1 else "need"
        return f"{' and '.join(exported)} {verb} the statistics (drop --no-stage-stats)"
    return None


def listen(args: argparse.Namespace, host: str) -> socket.socket | None:
    """The metrics exposition's own socket, if asked for; ``OSError`` with a message if
    it cannot be had (a port in use, say)."""
    if args.metrics_uds:
        try:
            return bind_unix(args.metrics_uds)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {args.metrics_uds}: {error.strerror or error}") from None
    if args.metrics_port is None:
        return None
    try:
        return bind_socket(host, args.metrics_port)
    except OSError as error:
        raise OSError(f"cannot serve metrics on {host}:{args.metrics_port}: {error.strerror or error}") from None


@contextlib.contextmanager
def exporting(
    args: argparse.Namespace, metrics: socket.socket | None, directory: str | None = None
) -> Iterator[StatsExport | None]:
    """Carries the statistics out (``--stats-file``, the exposition on ``metrics``)
    while the body runs: this process's, or those its workers keep in ``directory``."""
    if not exports(args):
        yield None
        return
    from spikard._stats_export import StatsExport

    sources = _spikard.StatsSources(directory)
    with StatsExport(sources, stats_file=args.stats_file, interval=args.stats_interval, metrics=metrics) as export:
        yield export

"""``spikard profile [APP]``: where every request's time goes, by stage and by
function, with a flamegraph of Python and Rust together (the command's description
is ``DESCRIPTION``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import signal
import tempfile
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.text import Text

from spikard.loading import split_target
from spikard.stats import Snapshot
from spikard_devtools import (
    _checking,
    _console,
    _load,
    _named,
    _profile_report,
    _requests,
    _routes,
    _sampling,
    _tools,
)
from spikard_devtools._find import CANDIDATES, NoApp, app_directory, find_app, missing_file
from spikard_devtools._findings import ProbeResult, Profile
from spikard_devtools._load import Load, LoadFailed
from spikard_devtools._named import BadRequests
from spikard_devtools._placement import Placement
from spikard_devtools._progress import progress_bar, ticker
from spikard_devtools._requests import Probe
from spikard_devtools._served import NotServing
from spikard_devtools._server import ServedApp

DESCRIPTION = """\
Profile an app under load. Phase 1 (stages): every request is driven with oha
against the app served with stage statistics on, and each route's time is split
into parse, validate, ffi, handler and response. Phase 2 (sampling): the same load
again while py-spy samples the serving process with --native, for a flamegraph of
Python and Rust frames together and a summary of where the CPU goes. Sampling
pauses the process at every sample, so the timings come from phase 1 only.

By default every route gets one request, synthesised from the JSON Schemas spikard
validates against; --url or --requests names them instead."""

EPILOG = """\
--requests FILE is a JSON list: [{"method": "POST", "path": "/items", "headers":
{"x-token": "t"}, "body": {"name": "a"}}]; a string body is sent as it is, any
other body as JSON.

Needs oha (cargo install --locked oha@1.16.0), and for flamegraphs py-spy
(pip install 'spikard-devtools[profile]') and inferno (cargo install --locked
inferno@0.12.8); in a spikard checkout, bash scripts/install-tools.sh installs all
three. Exit status: 0 done, 1 the app did not serve or no request succeeded,
2 bad options or oha missing."""

USAGE = 2
FAILED = 1
# How long importing the app (to read its routes) may take.
LOAD_TIMEOUT = 300
MIN_DURATION = 0.1
# Fewer samples on the CPU than this, and the split is said to be rough.
FEW_SAMPLES = 200
# The exit status after Ctrl-C, as a shell reports a process it interrupted.
INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikard profile",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help=f"path/app.py[:attr] or package.module[:attr] (default: the first of {', '.join(CANDIDATES)})",
    )
    _named.add_arguments(parser.add_argument_group("which requests (default: one per route, synthesised)"))
    load = parser.add_argument_group("load")
    load.add_argument(
        "--duration",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long each request is driven, in each phase (default: 5)",
    )
    load.add_argument("--connections", type=int, default=16, metavar="N", help="concurrent connections (default: 16)")
    load.add_argument(
        "--rate",
        type=float,
        metavar="PER_SECOND",
        help="offer this many requests per second instead of as many as the app takes "
        "(latencies then count from when each request was due)",
    )
    load.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes, as spikard run --workers (0: one per CPU core; default: 1)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=Path("flamegraphs"),
        metavar="DIR",
        help="where the flamegraph and the JSON report go (default: ./flamegraphs, created on demand)",
    )
    out.add_argument(
        "--format",
        choices=("svg", "speedscope", "both"),
        default="svg",
        help="the flamegraph as an SVG, a speedscope profile (speedscope.app) or both (default: svg)",
    )
    out.add_argument("--no-flamegraph", action="store_true", help="skip the sampling phase: the stage table only")
    out.add_argument(
        "--sample-rate", type=int, default=100, metavar="HZ", help="py-spy samples per second (default: 100)"
    )
    return parser


console = Console(highlight=False)
# Messages are never wrapped: a command to copy stays on one line.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        err.print("spikard profile: interrupted", style="yellow")
        return INTERRUPTED


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    problem = _check(args)
    if problem:
        err.print(f"spikard profile: {problem}", style="red")
        return USAGE
    try:
        named = _named.from_args(args)
        target = find_app(args.app, Path.cwd(), "spikard profile")
    except (BadRequests, NoApp) as error:
        err.print(f"spikard profile: {error}", style="red")
        return USAGE
    location, _ = split_target(target)
    if Path(location).is_dir() and not (Path(location) / "__init__.py").is_file():
        err.print(f"spikard profile: {location} is a folder; name the app's file in it (e.g. {location}/app.py)")
        return USAGE
    if absent := missing_file(target, Path.cwd()):
        err.print(f"spikard profile: no such file: {absent}", style="red")
        return USAGE
    try:
        oha = _tools.find(_tools.OHA)
    except _tools.ToolMissing as missing:
        err.print(Text.assemble(("spikard profile: ", "red"), str(missing)))
        err.print("  nothing can be measured without a load generator", style="dim")
        return USAGE
    described = _describe(target)
    if described is None:
        return FAILED
    found = _named.requests_for(named, described)
    if not found.probes:
        err.print("spikard profile: no request to send (the app has no routes spikard can synthesise)", style="red")
        for route, why in found.skipped.items():
            err.print(f"  {route}: {why}", style="yellow")
        return FAILED
    stem = _free_stem(args.out, f"{_stem(target)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    profile = Profile(target, args, stem, Placement.choose(args.workers), argv=["spikard", "profile", *argv])
    profile.routes = [_requests.route_name(r) for r in described]
    profile.skipped_routes = found.skipped
    profile.results = [ProbeResult(probe) for probe in found.probes]
    profile.versions = _versions(oha)
    return _run(profile, oha)


def _check(args: argparse.Namespace) -> str | None:
    if not (math.isfinite(args.duration) and args.duration >= MIN_DURATION):
        return f"--duration must be a number of seconds, at least {MIN_DURATION}"
    if args.connections < 1:
        return "--connections must be at least 1"
    if args.rate is not None and not (math.isfinite(args.rate) and args.rate > 0):
        return "--rate must be a positive number of requests per second"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} exists and is not a folder"
    if args.workers < 0:
        return "--workers cannot be negative (0: one per CPU core)"
    if not 1 <= args.sample_rate <= 1000:
        return "--sample-rate must be between 1 and 1000"
    return None


def _describe(target: str) -> list[dict[str, Any]] | None:
    """The app's routes, read in a process of its own; None (said) when it does not load."""
    try:
        return _routes.read(target, LOAD_TIMEOUT)
    except _routes.NotLoaded as error:
        err.print(f"spikard profile: {error}", style="bold red")
        if error.failure is not None:
            _console.show_failure(error.failure)  # a traceback of the app's code
        return None


def _stem(target: str) -> str:
    location, attribute = split_target(target)
    name = Path(location).stem if location.endswith(".py") else location.rsplit(".", 1)[-1]
    return name if attribute in ("", "app") else f"{name}-{attribute}"


def _free_stem(out: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when a report of that name exists."""
    candidate, number = stem, 1
    while (out / f"{candidate}.json").exists():
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


def _versions(oha: Path) -> dict[str, str]:
    versions = {"python": platform.python_version(), "oha": _tools.installed_version(_tools.OHA, oha)}
    for package in ("spikard", "spikard-devtools"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = package_version(package)
    versions["platform"] = platform.platform()
    return versions


# -- the run ---------------------------------------------------------------------


def _run(profile: Profile, oha: Path) -> int:
    args = profile.args
    want_flamegraph = not args.no_flamegraph
    py_spy = inferno = None
    if want_flamegraph:
        try:
            py_spy = _tools.find(_tools.PY_SPY)
            profile.versions["py-spy"] = _tools.installed_version(_tools.PY_SPY, py_spy)
        except _tools.ToolMissing as missing:
            profile.notes.append(f"no flamegraph: {missing}")
        if args.format in ("svg", "both"):
            try:
                inferno = _tools.find(_tools.INFERNO)
                profile.versions["inferno"] = _tools.installed_version(_tools.INFERNO, inferno)
            except _tools.ToolMissing as missing:
                profile.notes.append(f"no SVG: {missing}; the raw stacks are kept")
    loaded = len(profile.results)
    phases = 2 if want_flamegraph and py_spy is not None else 1
    err.print(
        Text.assemble(
            ("spikard profile", "bold cyan"),
            "  ",
            (profile.app, "bold"),
            f": {loaded} request(s), {args.duration:g} s each per phase, {args.connections} connections"
            + (f", {args.rate:g} req/s offered" if args.rate else ", as fast as the app answers"),
        )
    )
    err.print(f"  {profile.placement.text}", style="dim")
    interrupted = False
    with progress_bar(err) as progress:
        task = progress.add_task("starting", total=phases * loaded * args.duration)
        try:
            if not _stage_phase(profile, oha, progress, task):
                return FAILED
            loaded_any = any(result.stage_load for result in profile.results)
            if phases == 2 and py_spy is not None and loaded_any:
                _sampling_phase(profile, oha, py_spy, inferno, progress, task)
            elif phases == 2:
                profile.notes.append("no flamegraph: no request could be put under load")
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        err.print("spikard profile: interrupted; what was measured so far follows", style="yellow")
    # What was measured is shown and kept even if Ctrl-C is pressed again meanwhile.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _finish(profile)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        return INTERRUPTED
    return 0 if any(r.stage_load and r.stage_load.ok for r in profile.results) else FAILED


def _finish(profile: Profile) -> None:
    loaded = [r.probe.route for r in profile.results if r.started and r.probe.route]
    routes = [route for route in profile.routes if route in loaded]
    _profile_report.show(console, profile.results, profile.snapshot, routes, profile.split, profile.times)
    try:
        _profile_report.write(profile, routes)
    except OSError as error:
        profile.notes.append(f"the report could not be written: {error}")
    _profile_report.say_files(console, profile)


def _stage_phase(profile: Profile, oha: Path, progress: Progress, task: TaskID) -> bool:
    args = profile.args
    with tempfile.TemporaryDirectory(prefix="spikard-profile-") as scratch:
        stats_file = Path(scratch) / "stats.json"
        run_args = [
            "--stage-stats",
            "--stats-file",
            str(stats_file),
            "--stats-interval",
            "0",
            *_serving_args(args),
        ]
        progress.update(task, description="phase 1: starting the app")
        server = ServedApp(profile.app, run_args, pin=profile.placement.server_cpu)
        try:
            try:
                server.wait_serving(LOAD_TIMEOUT)
            except NotServing as error:
                err.print(f"spikard profile: the app did not serve.\n{error}", style="red")
                return False
            profile.notes += _checking.check(profile.results, server)
            before = server.cpu_times()
            for result in _under_load(profile, progress, task, "phase 1 (stages)"):
                result.started = True
                result.stage_load = _drive(profile, oha, server, result.probe, progress, task)
            profile.times = server.cpu_times() - before
        finally:
            # Also when interrupted: the statistics of what ran are written at shutdown.
            status = server.stop()
            if status not in (0, -signal.SIGINT):
                profile.notes.append(f"spikard run exited with status {status}: {server.output()[-500:]}")
            try:
                profile.snapshot = Snapshot.load(stats_file)
            except (OSError, ValueError) as error:
                profile.notes.append(f"the stage statistics could not be read: {error}")
    return True


def _under_load(profile: Profile, progress: Progress, task: TaskID, phase: str) -> Iterator[ProbeResult]:
    """The requests to drive (those the check did not leave out), each said on the bar."""
    for result in profile.results:
        if not result.skipped:
            progress.update(task, description=f"{phase}: {result.probe.label}")
            yield result


def _serving_args(args: argparse.Namespace) -> list[str]:
    return ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]


def _drive(
    profile: Profile,
    oha: Path,
    server: ServedApp,
    probe: Probe,
    progress: Progress,
    task: TaskID,
) -> Load | None:
    args = profile.args
    command = _load.command(
        oha, server.base_url, probe, seconds=args.duration, connections=args.connections, rate=args.rate
    )
    try:
        return _load.run(
            command,
            pin=profile.placement.generator_cpu,
            tick=ticker(progress, task, args.duration),
            deadline=args.duration + _load.REQUEST_TIMEOUT + 30,
        )
    except LoadFailed as error:
        profile.notes.append(f"{probe.label}: {error}")
        return None


def _sampling_phase(
    profile: Profile,
    oha: Path,
    py_spy: Path,
    inferno: Path | None,
    progress: Progress,
    task: TaskID,
) -> None:
    """The same load again, sampled by py-spy; what goes wrong becomes a note, the
    stage table stands regardless."""
    args = profile.args
    progress.update(task, description="phase 2: starting the app")
    try:
        profile.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        profile.notes.append(f"no flamegraph: cannot create {profile.out}: {error.strerror or error}")
        return
    raw = profile.out / f"{profile.stem}.stacks.txt"
    server = ServedApp(profile.app, _serving_args(args), pin=profile.placement.server_cpu)
    said = ""
    try:
        server.wait_serving(LOAD_TIMEOUT)
        sampler = _sampling.start(
            py_spy, server.process.pid, raw, rate=args.sample_rate, subprocesses=args.workers != 1
        )
        try:
            for result in _under_load(profile, progress, task, "phase 2 (sampling)"):
                result.sample_load = _drive(profile, oha, server, result.probe, progress, task)
        finally:
            # Also when interrupted: what was sampled is written and drawn.
            said = _sampling.stop(sampler)
    except (NotServing, _sampling.SamplerFailed) as error:
        profile.notes.append(f"no flamegraph: {error}")
        return
    finally:
        server.stop()
        if raw.exists():
            _draw(profile, raw, inferno, said)
    if not raw.exists():
        profile.notes.append("no flamegraph: py-spy wrote no stacks")


def _draw(profile: Profile, raw: Path, inferno: Path | None, said: str) -> None:
    args = profile.args
    try:
        drawn = _sampling.draw(
            raw,
            app_directory(profile.app, Path.cwd()),
            profile.out / profile.stem,
            fmt=args.format,
            inferno=inferno,
            title=f"spikard profile {profile.app}",
            rate=args.sample_rate,
        )
    except OSError as error:
        profile.notes.append(f"no flamegraph: {error}")
        return
    profile.split, profile.together = drawn.split, drawn.together
    profile.files.update(drawn.files)
    profile.notes += drawn.notes
    profile.notes += [f"py-spy: {line.strip()}" for line in said.splitlines() if "behind in sampling" in line][:1]
    if drawn.split.busy < FEW_SAMPLES:
        profile.notes.append(
            f"only {drawn.split.busy} samples on the CPU: the split is rough (a longer --duration gives more)"
        )

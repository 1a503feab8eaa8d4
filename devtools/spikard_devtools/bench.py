"""``spikard bench [APP]``: spikard against FastAPI and the Rust ceiling on the
workloads of a checkout's ``bench/`` folder, or the user's own app against the app it
was ported from (the command's description is ``DESCRIPTION``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from spikard.loading import split_target
from spikard_devtools import _bench_report, _checking, _fingerprint, _named, _routes, _suite, _tools
from spikard_devtools._bench_results import LATENCY_LOADS, Results
from spikard_devtools._bench_run import Bench, Contender, Settings
from spikard_devtools._find import NoApp, find_app, missing_file
from spikard_devtools._findings import ProbeResult
from spikard_devtools._named import BadRequests
from spikard_devtools._placement import Placement
from spikard_devtools._progress import progress_bar
from spikard_devtools._server import CommandServer
from spikard_devtools._suite import BadSuite, Expect, Framework, Suite, Workload

DESCRIPTION = """\
Benchmark spikard honestly. Without APP: the workloads of a spikard checkout's
bench/ folder (workloads.json, each with the answer it must get) on spikard,
FastAPI + uvicorn and the Rust ceiling, plus Litestar + Granian, FastAPI + Granian
and Robyn when they are installed. With APP: your app, and with --against the app
it was ported from, on the same requests, their answers compared.

Every server runs on one CPU and oha on another (taskset); rounds interleave the
frameworks; each answer is checked before and after every timed run, and a
framework whose answers are wrong is reported failed, never fast. Figures taken
with oha's CPU saturated, or within 10% of a Rust ceiling that saturated it, are
marked generator-bound. Latencies are also measured
at 50% and 80% of each framework's own maximum, with coordinated omission
corrected, and spikard's time is split into its five stages."""

EPILOG = """\
examples:
  spikard bench                          the whole suite (about half an hour)
  spikard bench --quick                  about a second per run: shape and answers, not figures
  spikard bench --workload hello,sleep --framework spikard,FastAPI
  spikard bench app.py --requests reqs.json --against "uvicorn old_app:app --port {port}"
  spikard bench --compare bench/results/20261130-120000.json

Needs oha (cargo install --locked oha@1.16.0; in a checkout, bash
scripts/install-tools.sh) and, for the peers, pip install 'spikard-devtools[bench]'.
Exit status: 0 every run measured with right answers; 1 a server did not start, or
answered wrongly; 2 bad options, or oha missing; 130 interrupted (what was measured
is still shown and written)."""

USAGE, FAILED, INTERRUPTED = 2, 1, 130
CONNECTIONS = 64
LOAD_TIMEOUT = 300
# --quick: about a second per framework and workload.
QUICK = {"duration": 1.0, "warmup": 0.2, "rounds": 1, "latency_duration": 0.4, "stage_duration": 0.5}
FULL = {"duration": 5.0, "warmup": 1.0, "rounds": 3, "latency_duration": 2.0, "stage_duration": 2.0}

# Piped or in CI, tables are as wide as they need rather than 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikard bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="your app, path/app.py[:attr] or package.module[:attr] (default: the suite in bench/)",
    )
    suite = parser.add_argument_group("the suite (without APP)")
    suite.add_argument(
        "--workload",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="only these workloads (repeatable; default: all of workloads.json)",
    )
    suite.add_argument(
        "--framework",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="only these frameworks (repeatable; default: spikard, FastAPI, ceiling, and the optional ones "
        "installed); frameworks.json also has spikard variants: spikard-logged, spikard-stats, ...",
    )
    suite.add_argument("--suite", type=Path, metavar="DIR", help="the bench/ folder (default: found from here up)")
    _named.add_arguments(parser.add_argument_group("your app (with APP; default: one request per route, synthesised)"))
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="COMMAND",
        help="also measure the server this command starts, on the same requests; it must contain {port}, "
        'e.g. "fastapi=uvicorn old_app:app --port {port}" (NAME= names it; leading VAR=value words set its '
        "environment; repeatable; with APP, ratios are to the first)",
    )
    method = parser.add_argument_group("method (defaults: 3 rounds of 5 s after 1 s of warm-up)")
    method.add_argument("--duration", type=float, metavar="SECONDS", help="each timed run (default: 5)")
    method.add_argument("--warmup", type=float, metavar="SECONDS", help="unmeasured load before each (default: 1)")
    method.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds; medians over them (default: 3)")
    method.add_argument("--connections", type=int, metavar="N", help="concurrent connections (default: 64)")
    method.add_argument(
        "--latency-duration",
        type=float,
        metavar="SECONDS",
        help="each round's runs at 50%% and 80%% of a framework's maximum (default: 2; 0: none)",
    )
    method.add_argument(
        "--stage-duration",
        type=float,
        metavar="SECONDS",
        help="load per workload for spikard's stage statistics (default: 2; 0: none)",
    )
    method.add_argument(
        "--quick",
        action="store_true",
        help="about a second per run, one round: checks the answers and the shape, not the figures",
    )
    method.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request with callgrind instead of timing (exact and repeatable on a "
        "shared machine; needs valgrind; slow: servers start ~50x slower under it)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where the JSON, markdown and chart go (default: bench/results, created on demand)",
    )
    out.add_argument("--no-chart", action="store_true", help="no chart (it needs matplotlib)")
    out.add_argument(
        "--compare",
        type=Path,
        metavar="OLD.json",
        help="show the change from an earlier report; only changes beyond the rounds' noise are flagged",
    )
    return parser


def main(argv: list[str]) -> int:
    # Stopped by the system or a closed terminal, it stops its servers as for Ctrl-C
    # (they run in sessions of their own, which no terminal signal reaches).
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        err.print("spikard bench: interrupted", style="yellow")
        return INTERRUPTED


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Plan:
    """What one run measures: the workloads, the contenders, which is the reference."""

    workloads: list[Workload]
    contenders: list[Contender]
    reference: str | None
    ceiling: str | None
    out: Path
    stem: str
    mode: str
    notes: list[str]
    builds: list[tuple[Contender, tuple[str, ...], Path]]


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings, problem = _settings(args)
    if problem:
        err.print(f"spikard bench: {problem}", style="red")
        return USAGE
    assert settings is not None
    old = None
    try:
        if args.compare is not None:
            from spikard_devtools import _compare

            old = _compare.load(args.compare)
        plan = _app_plan(args) if args.app else _suite_plan(args)
    except (BadSuite, BadRequests, NoApp, ValueError) as error:
        err.print(f"spikard bench: {error}", style="red")
        return USAGE
    if plan is None:
        return FAILED
    if args.instructions:
        if problem := _unwritable(plan.out):
            err.print(f"spikard bench: {problem}", style="red")
            return USAGE
        return _instructions_run(plan, argv)
    try:
        oha = _tools.find(_tools.OHA)
    except _tools.ToolMissing as missing:
        err.print(Text.assemble(("spikard bench: ", "red"), str(missing)))
        err.print("  nothing can be measured without a load generator", style="dim")
        return USAGE
    if problem := _unwritable(plan.out):
        err.print(f"spikard bench: {problem}", style="red")
        return USAGE
    for note in plan.notes:
        err.print(f"  {note}", style="yellow")
    _build(plan)
    if not plan.contenders:
        err.print("spikard bench: nothing to measure (no framework is available)", style="red")
        return FAILED
    placement = Placement.choose(1)
    results = Results(reference=plan.reference, ceiling=plan.ceiling)
    bench = Bench(settings, plan.workloads, plan.contenders, placement, oha, results, notes=plan.notes)
    if plan.mode == "app":
        bench.prepare = _try_requests
    started = datetime.now()
    _say_start(bench)
    interrupted = False
    with progress_bar(err) as progress:
        task = progress.add_task("starting", total=bench.planned_seconds())
        try:
            bench.run(progress, task)
        except KeyboardInterrupt:
            interrupted = True
    # What was measured is kept and shown even if Ctrl-C is pressed again meanwhile.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {stop: signal.signal(stop, signal.SIG_IGN) for stop in stops}
    try:
        report = _report(bench, plan, args, argv, settings, oha, started, interrupted)
        written = _finish(report, plan, args, old)
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    if interrupted:
        err.print("spikard bench: interrupted; what was measured is above", style="yellow")
        return INTERRUPTED
    failed = [c for c in results.cells.values() if not c.ok]
    return FAILED if failed or not results.cells or not written else 0


def _unwritable(out: Path) -> str | None:
    """Why the report could not be written to ``out``, found before anything is
    measured (a long run is not lost to a typo); None when it can."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--out {out}: cannot create it: {error.strerror or error}"
    if not out.is_dir():
        return f"--out {out} exists and is not a folder"
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"--out {out}: cannot write there: {error.strerror or error}"
    return None


def _instructions_run(plan: Plan, argv: list[str]) -> int:
    """``--instructions``: callgrind's count per request, for each server and workload."""
    from spikard_devtools import _instructions

    if absent := _instructions.missing():
        err.print(f"spikard bench: --instructions needs callgrind: {absent}", style="red")
        return USAGE
    for note in plan.notes:
        err.print(f"  {note}", style="yellow")
    _build(plan)
    started = datetime.now()
    counts: dict[str, dict[str, int | str]] = {}
    with progress_bar(err) as progress:
        steps = sum(1 for c in plan.contenders for w in plan.workloads if c.serves(w))
        task = progress.add_task("starting", total=steps)
        interrupted = False
        for contender in plan.contenders:

            def said(text: str) -> None:
                if text.startswith("instructions: ") and " · " in text:
                    progress.advance(task)
                progress.update(task, description=text)

            try:
                counts[contender.name] = _instructions.count(contender, plan.workloads, said)
            except KeyboardInterrupt:
                interrupted = True
                break
    head = _head(plan, argv, started, Placement(None, None, "not pinned: callgrind counts, not times"))
    head["kind"] = "instructions"
    head["interrupted"] = interrupted
    report = _bench_report.instructions_report(head, plan, counts)
    console.print(_bench_report.instructions_table(report))
    files = {}
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
        path = plan.out / f"{plan.stem}-instructions.json"
        _bench_report.write_json(report, path)
        md = plan.out / f"{plan.stem}-instructions.md"
        md.write_text(_bench_report.instructions_markdown(report), encoding="utf-8")
        files = {"report": path, "markdown": md}
    except OSError as error:
        err.print(f"spikard bench: the report could not be written: {error}", style="red")
    for what, path in files.items():
        console.print(f"{what}: {path}")
    if interrupted:
        err.print("spikard bench: interrupted; what was counted is above", style="yellow")
        return INTERRUPTED
    wrong = [v for per in counts.values() for v in per.values() if isinstance(v, str)]
    return FAILED if wrong else 0


def _settings(args: argparse.Namespace) -> tuple[Settings | None, str | None]:
    base = QUICK if args.quick else FULL

    def pick(name: str) -> Any:
        given = getattr(args, name)
        return base[name] if given is None else given

    duration, warmup, rounds = pick("duration"), pick("warmup"), pick("rounds")
    latency, stages = pick("latency_duration"), pick("stage_duration")
    if not (math.isfinite(duration) and duration >= 0.1):
        return None, "--duration must be at least 0.1 seconds"
    for name, value in (("--warmup", warmup), ("--latency-duration", latency), ("--stage-duration", stages)):
        if not (math.isfinite(value) and value >= 0):
            return None, f"{name} must be a number of seconds, 0 or more"
    if rounds < 1:
        return None, "--rounds must be at least 1"
    if args.connections is not None and args.connections < 1:
        return None, "--connections must be at least 1"
    for command in args.against:
        if "{port}" not in command:
            return None, f"--against {command!r} must contain {{port}}, where the server is told its port"
        try:
            shlex.split(command)
        except ValueError as error:
            return None, f"--against {command!r} cannot be split into words: {error}"
    if args.app is None and (args.url or args.requests):
        return None, "--url and --requests name requests to your app: give APP too"
    if args.app is not None and (args.workload or args.framework or args.suite):
        return None, "--workload, --framework and --suite choose from the suite: not with APP"
    if args.instructions:
        timing = ("--duration", "--warmup", "--rounds", "--connections", "--latency-duration", "--stage-duration")
        given = [f"--{name}" for name in ("quick", "compare", "no_chart") if getattr(args, name)]
        given += [option for option in timing if getattr(args, option[2:].replace("-", "_")) is not None]
        if given:
            return None, f"--instructions counts instructions, it does not time: {', '.join(given)} do not apply"
    connections = args.connections or CONNECTIONS
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if files != resource.RLIM_INFINITY and connections > files - 64:
        return None, f"--connections {connections}: oha may open only {files} files here (ulimit -n)"
    return Settings(duration, warmup, rounds, connections, latency, stages), None


def _names(values: list[str], option: str) -> list[str]:
    """The names given to a repeatable comma-separated option, each once, in order; a
    value that names nothing is refused (an empty shell variable must not mean all)."""
    names: list[str] = []
    for value in values:
        found = [name.strip() for name in value.split(",") if name.strip()]
        if not found:
            raise BadSuite(f"{option} {value!r} names nothing (leave {option} out for all)")
        names += [name for name in found if name not in names]
    return names


# ``--against NAME=COMMAND``: a name for the server (with a lower-case letter in it, so
# that an environment assignment, ``PYTHONPATH=.``, is not taken for one).
NAMED = re.compile(r"([A-Za-z][\w.-]*)=(?=\S)")
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
# Words of a command that say how it is run rather than what runs.
LAUNCHERS = re.compile(r"(python[\d.]*|.*/python[\d.]*|-m|env|taskset|nice)")


def _against(commands: list[str], taken: set[str]) -> list[Contender]:
    """The ``--against`` servers: named by their ``NAME=`` (or ``against``,
    ``against-2``...), labelled by what they run; leading ``VAR=value`` words set
    their environment, as a shell would."""
    contenders: list[Contender] = []
    for number, command in enumerate(commands, 1):
        named = NAMED.match(command)
        if named and not any(c.islower() for c in named.group(1)):
            named = None
        words = shlex.split(command[named.end() :] if named else command)
        env = {}
        while words and (assignment := ASSIGNMENT.fullmatch(words[0])):
            env[assignment.group(1)] = assignment.group(2)
            words.pop(0)
        if not words:
            raise BadSuite(f"--against {command!r} names no program to run")
        name = named.group(1) if named else ("against" if number == 1 else f"against-{number}")
        if name in taken or name in {c.name for c in contenders}:
            raise BadSuite(f"--against {command!r}: the name {name!r} is taken; give it another (NAME=COMMAND)")
        what = [word for word in words if not LAUNCHERS.fullmatch(word)][:2]
        contenders.append(Contender(name, name if named else " ".join(what), words, env=env))
    return contenders


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


# -- the suite -------------------------------------------------------------------


def _suite_plan(args: argparse.Namespace) -> Plan:
    suite = _suite.load(_suite.find(args.suite, Path.cwd()))
    workloads = _chosen(suite.workloads, _names(args.workload, "--workload"), "workload", lambda w: w.name)
    if not workloads:
        raise BadSuite(f"{suite.folder / _suite.WORKLOADS} lists no workload")
    notes: list[str] = []
    named = _names(args.framework, "--framework")
    frameworks = _chosen(suite.frameworks, named, "framework", lambda f: f.name) if named else suite.frameworks
    contenders, builds = [], []
    for framework in frameworks:
        wanted = bool(named) or framework.default is True or framework.default == "when installed"
        if not wanted:
            continue
        missing = framework.missing()
        if missing:
            optional = framework.default == "when installed" and not named
            notes.append(f"{framework.label}: {'left out' if optional else 'not measured'}: {missing}")
            continue
        contender = _contender(framework, suite)
        contenders.append(contender)
        if framework.build:
            builds.append((contender, framework.build, suite.root))
    names = {c.name for c in contenders}
    contenders += _against(args.against, taken={f.name for f in suite.frameworks})
    reference = suite.reference if suite.reference in names else None
    if reference is None and contenders:
        # Without FastAPI, ratios are to the first framework measured (spikard, for variants).
        reference = contenders[0].name
    return Plan(
        workloads=workloads,
        contenders=contenders,
        reference=reference,
        ceiling=suite.ceiling if suite.ceiling in names else None,
        out=args.out or suite.folder / "results",
        stem=_stamp() + ("-quick" if args.quick else ""),
        mode="suite",
        notes=notes,
        builds=builds,
    )


def _chosen(items: list[Any], names: list[str], what: str, name_of: Any) -> list[Any]:
    if not names:
        return items
    known = {name_of(item): item for item in items}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadSuite(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names]


def _contender(framework: Framework, suite: Suite) -> Contender:
    values = dict(suite.values)

    def fill(text: str) -> str:
        # {port} (and {stats}) stay for the start; the suite's paths are known now.
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    return Contender(
        name=framework.name,
        label=framework.label,
        command=[fill(part) for part in framework.command],
        cwd=fill(framework.cwd) if framework.cwd else None,
        env={k: fill(v) for k, v in framework.env},
        stages=framework.stages,
        workloads=frozenset(framework.workloads) if framework.workloads is not None else None,
        discard_output=framework.discard_output,
    )


def _build(plan: Plan) -> None:
    """Builds what must be built (the Rust ceiling: cargo, release); one that does
    not build is left out, said."""
    for contender, command, cwd in plan.builds:
        err.print(f"  building {contender.label}: {' '.join(command)}", style="dim")
        try:
            result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
        except OSError as error:
            plan.notes.append(f"{contender.label}: not measured: cannot run {command[0]}: {error.strerror or error}")
            plan.contenders.remove(contender)
            continue
        if result.returncode != 0:
            plan.notes.append(f"{contender.label}: not measured: the build failed: {result.stderr.strip()[-600:]}")
            plan.contenders.remove(contender)
    if plan.ceiling not in {c.name for c in plan.contenders}:
        plan.ceiling = None


# -- the user's app --------------------------------------------------------------


def _app_plan(args: argparse.Namespace) -> Plan | None:
    named = _named.from_args(args)
    target = find_app(args.app, Path.cwd(), "spikard bench")
    if absent := missing_file(target, Path.cwd()):
        raise NoApp(f"no such file: {absent}")
    try:
        routes = _routes.read(target, LOAD_TIMEOUT)
    except _routes.NotLoaded as error:
        err.print(f"spikard bench: {error}", style="bold red")
        if error.failure is not None:
            from spikard_devtools import _console

            _console.show_failure(error.failure)
        return None
    found = _named.requests_for(named, routes)
    probes = found.probes
    notes = [f"{route}: no request synthesised: {why}" for route, why in found.skipped.items()]
    if not probes:
        raise BadRequests("no request to send: name some with --url or --requests")
    # The user's requests name no expected answer: each server is held to the
    # status it gave first, and the servers' answers are compared.
    workloads: list[Workload] = []
    seen: dict[str, int] = {}
    for probe in probes:
        seen[probe.label] = seen.get(probe.label, 0) + 1
        name = probe.label if seen[probe.label] == 1 else f"{probe.label} #{seen[probe.label]}"
        workloads.append(Workload(name, name, probe, Expect(0)))
    spikard = Contender(
        "app",
        f"spikard ({target})",
        [sys.executable, "-m", "spikard", "run", target, "--port", "{port}", "--no-access-log"],
        stages=True,
    )
    against = _against(args.against, taken={"app"})
    location, _ = split_target(target)
    stem = Path(location).stem if location.endswith(".py") else location.rsplit(".", 1)[-1]
    return Plan(
        workloads=workloads,
        contenders=[spikard, *against],
        reference=against[0].name if against else None,
        ceiling=None,
        out=args.out or Path("bench") / "results",
        stem=f"{stem}-{_stamp()}",
        mode="app",
        notes=notes,
        builds=[],
    )


def _try_requests(bench: Bench, app: CommandServer) -> None:
    """Each request sent to the user's app before anything else, as ``spikard
    profile`` does: a synthesised request the app refuses with 422 is tried again
    with other ordinary values; one it still refuses (or answers 5xx, or another 4xx
    than 404) is not measured, with the app's answer shown; a named request is
    measured as it is, with a note when it fails."""
    results = [ProbeResult(w.probe) for w in bench.workloads]
    bench.notes.extend(_checking.check(results, app))
    kept = []
    for workload, result in zip(bench.workloads, results, strict=True):
        if result.skipped:
            bench.notes.append(f"{workload.title}: not measured: {result.skipped}")
            continue
        kept.append(dataclasses.replace(workload, probe=result.probe))
    bench.workloads[:] = kept


# -- after the run ---------------------------------------------------------------


def _say_start(bench: Bench) -> None:
    s = bench.settings
    err.print(
        Text.assemble(
            ("spikard bench", "bold cyan"),
            f"  {len(bench.workloads)} workload(s) × {len(bench.contenders)} server(s): "
            f"{', '.join(c.label for c in bench.contenders)}",
        )
    )
    err.print(
        f"  {s.rounds} round(s) of {s.warmup:g} s warm-up + {s.duration:g} s, {s.connections} connections; "
        f"about {_minutes(bench.planned_seconds())}",
        style="dim",
    )
    err.print(f"  {bench.placement.text}", style="dim")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s of load" if seconds < 120 else f"{seconds / 60:.0f} min of load"


def _head(plan: Plan, argv: list[str], started: datetime, placement: Placement) -> dict[str, Any]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now().isoformat(timespec="seconds"),
        "command": ["spikard", "bench", *argv],
        "mode": plan.mode,
        "machine": _fingerprint.machine(),
        "versions": _fingerprint.versions(),
        "placement": placement.text,
        "notes": plan.notes,
    }


def _frameworks(contenders: list[Contender]) -> list[dict[str, Any]]:
    """Each server as it was started: its command line with its port, folder and
    environment (what the report keeps to be run again by hand)."""
    return [
        {
            "name": c.name,
            "label": c.label,
            "command": c.started or c.command,
            "cwd": c.cwd,
            "env": c.env,
            "stages": c.stages,
        }
        for c in contenders
    ]


def _report(
    bench: Bench,
    plan: Plan,
    args: argparse.Namespace,
    argv: list[str],
    settings: Settings,
    oha: Path,
    started: datetime,
    interrupted: bool,
) -> dict[str, Any]:
    head = _head(plan, argv, started, bench.placement)
    head["interrupted"] = interrupted
    if interrupted:
        # What never had its turn says so, rather than looking measured or failed.
        for workload, contender in bench.pairs():
            cell = bench.results.cell(contender.name, workload.name)
            if not cell.samples and cell.failure is None:
                cell.failure = "not measured: interrupted before its turn"
    head["versions"]["oha"] = _tools.installed_version(_tools.OHA, oha)
    head["settings"] = {
        "duration_s": settings.duration,
        "warmup_s": settings.warmup,
        "rounds": settings.rounds,
        "connections": settings.connections,
        "latency_s": settings.latency,
        "latency_at": [f"{load:.0%}" for load in LATENCY_LOADS],
        "stage_s": settings.stages,
        "quick": bool(args.quick),
    }
    head["notes"] = bench.notes
    report = _bench_report.build(bench.results, head, _frameworks(bench.contenders), bench.workloads)
    if plan.mode == "app" and len(bench.contenders) > 1:
        report["answers_differ"] = _differing(bench)
    return report


def _differing(bench: Bench) -> list[dict[str, Any]]:
    """The requests the servers answered differently: another status, or another
    JSON body for a success (error bodies differ between frameworks by design)."""
    out = []
    for workload in bench.workloads:
        answers = {c.name: bench.answers.get((c.name, workload.name)) for c in bench.contenders}
        seen = set()
        for answer in answers.values():
            if answer is None:
                continue
            body: Any = answer.body
            with contextlib.suppress(ValueError):
                body = json.dumps(json.loads(answer.body), sort_keys=True)
            seen.add((answer.status, body if answer.status < 400 else None))
        if len(seen) > 1:
            out.append(
                {
                    "workload": workload.name,
                    "request": workload.probe.label,
                    "answers": {
                        name: {
                            "status": a.status if a else None,
                            "body": a.body[:300].decode("utf-8", "replace") if a else "",
                        }
                        for name, a in answers.items()
                    },
                }
            )
    return out


def _finish(report: dict[str, Any], plan: Plan, args: argparse.Namespace, old: dict[str, Any] | None) -> bool:
    """The files first (a long run's figures are never lost to a display error),
    then the tables; whether the report was written."""
    from spikard_devtools import _compare

    comparison, extra_md = None, ""
    if old is not None:
        try:
            comparison = _compare.compare(old, report)
            extra_md = "\n" + _compare.markdown(comparison)
        except (KeyError, TypeError, ValueError) as error:
            report["notes"].append(f"no comparison with {args.compare}: it could not be read ({error!r})")
    files = _write(report, plan, args, extra_md)
    console.print(_bench_report.table(report))
    console.print(_bench_report.legend(report), style="dim")
    for table in (_bench_report.stage_table(report), _bench_report.answers_table(report)):
        if table is not None:
            console.print(table)
    if comparison is not None:
        console.print(_compare.table(comparison))
    for note in report["notes"]:
        console.print(f"note: {note}", style="yellow")
    for what, path in files.items():
        console.print(f"{what}: {path}")
    return "report" in files


def _write(report: dict[str, Any], plan: Plan, args: argparse.Namespace, extra_md: str) -> dict[str, Path]:
    """The chart, the JSON report and the markdown; what cannot be written is said."""
    files: dict[str, Path] = {}
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        err.print(f"spikard bench: cannot create {plan.out}: {error.strerror or error}", style="red")
        return files
    chart = None
    if not args.no_chart and report["cells"]:
        try:
            from spikard_devtools import _chart

            chart = _chart.draw(report, plan.out / f"{plan.stem}.svg")
            files["chart"] = chart
        except Exception as error:  # the figures matter more than the picture
            report["notes"].append(f"no chart: {error}")
    try:
        json_path = plan.out / f"{plan.stem}.json"
        _bench_report.write_json(report, json_path)
        files["report"] = json_path
        md_path = plan.out / f"{plan.stem}.md"
        md_path.write_text(_bench_report.markdown(report, chart.name if chart else None) + extra_md, encoding="utf-8")
        files["markdown"] = md_path
    except OSError as error:
        err.print(f"spikard bench: the report could not be written: {error}", style="red")
    return files

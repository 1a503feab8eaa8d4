"""What ``spikard profile`` shows and keeps: ``rich`` tables of the load, of where
each route's time goes by stage, and of where the CPU goes; and the JSON report
beside the flamegraph."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from spikard.stats import STAGES, RouteStats, Snapshot, Summary
from spikard_devtools._findings import ProbeResult, Profile
from spikard_devtools._served import CpuTimes
from spikard_devtools._stacks import SIDE_TITLES, SIDES, CpuSplit

STAGE_COLOURS = {
    "parse": "cyan",
    "validate": "magenta",
    "ffi": "yellow",
    "handler": "green",
    "response": "blue",
    "other": "grey50",
}
SIDE_COLOURS = {
    "app": "green",
    "runtime": "cyan",
    "interpreter": "yellow",
    "libraries": "magenta",
    "kernel": "red",
}
BAR_WIDTH = 20
# Terminals at least this wide get the stacked bar beside the stage table.
WIDE = 140


def stage_shares(route: RouteStats) -> dict[str, float]:
    """Each stage's share of the route's total time (sums, so that stages some
    requests never reached weigh what they cost), and ``other`` for the rest."""
    total = route.total.mean * route.total.count
    if not total:
        return {name: 0.0 for name in (*STAGES, "other")}
    shares = {name: s.mean * s.count / total for name, s in route.stages.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def _bar(shares: dict[str, float], colours: dict[str, str], width: int = BAR_WIDTH) -> Text:
    """A stacked bar, one coloured run per part, rounded so that the runs fill ``width``."""
    text, filled, running = Text(), 0, 0.0
    for name, share in shares.items():
        running += share
        end = round(running * width)
        if end > filled:
            text.append("█" * (end - filled), style=colours.get(name, "white"))
            filled = end
    return text


def _micros(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}ms"
    if value >= 1000:
        return f"{value / 1000:.1f}ms"
    return f"{value:.0f}µs" if value >= 10 else f"{value:.1f}µs"


def _millis(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def load_table(results: Sequence[ProbeResult], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("request")
    table.add_column("answers")
    table.add_column("req/s", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for result in results:
        load = result.stage_load
        if load is None:
            why = result.skipped or ("interrupted" if result.started else "not run (interrupted before)")
            table.add_row(result.probe.label, Text(why, style="yellow"), "", "", "")
            continue
        answers = ", ".join(f"{status}: {n:,}" for status, n in sorted(load.statuses.items()))
        if load.errors:
            answers += ", " + ", ".join(f"{error}: {n:,}" for error, n in load.errors.items())
        if not load.statuses:
            answers = f"no answer in {load.seconds:.1f} s" + (f" ({answers.lstrip(', ')})" if answers else "")
            table.add_row(result.probe.label, Text(answers, style="red"), "0", "—", "—")
            continue
        style = "green" if load.ok == load.requests else "yellow"
        table.add_row(
            result.probe.label, Text(answers, style=style), f"{load.rate:,.0f}", _millis(load.p50), _millis(load.p99)
        )
    return table


def stage_table(snapshot: Snapshot, routes: Sequence[str], width: int) -> Table:
    """Per route: the total, then per stage its share of the total and p50/p99;
    the stacked bar of the shares when the terminal has room for it."""
    table = Table(
        title="Where each route's time goes (server side; per stage: share of the total, then p50/p99)",
        title_justify="left",
        show_edge=False,
    )
    table.add_column("route", overflow="fold")
    table.add_column("requests", justify="right")
    table.add_column("total\np50/p99", justify="right")
    for name in STAGES:
        table.add_column(Text(name, style=STAGE_COLOURS[name]), justify="right", no_wrap=True)
    with_bar = width >= WIDE
    if with_bar:
        table.add_column("shares", no_wrap=True)
    for name in routes:
        route = snapshot.routes.get(name)
        if route is None or not route.count:
            continue
        shares = stage_shares(route)
        cells = [_stage_cell(route.stages[stage], shares[stage]) for stage in STAGES]
        row = [name, f"{route.count:,}", f"{_micros(route.total.p50)}\n{_micros(route.total.p99)}", *cells]
        table.add_row(*row, *([_bar(shares, STAGE_COLOURS)] if with_bar else []))
    return table


def _stage_cell(summary: Summary, share: float) -> str:
    if not summary.count:
        return "—"
    return f"{share:.0%}\n{_micros(summary.p50)}/{_micros(summary.p99)}"


def legend(colours: dict[str, str], titles: dict[str, str] | None = None) -> Text:
    text = Text("  ")
    for name, colour in colours.items():
        text.append("█ ", style=colour)
        text.append((titles or {}).get(name, name) + "   ", style="dim")
    return text


def split_table(split: CpuSplit, times: CpuTimes | None) -> Table:
    table = Table(title="Where the CPU goes (sampled stacks)", title_justify="left", show_edge=False)
    table.add_column("side")
    table.add_column("share", justify="right")
    table.add_column("", no_wrap=True)
    for side in SIDES:
        share = split.share(side)
        table.add_row(SIDE_TITLES[side], f"{share:.0%}", Text("█" * round(share * BAR_WIDTH), style=SIDE_COLOURS[side]))
    caption = f"{split.busy:,} samples on the CPU"
    if split.idle:
        caption += f"; {split.idle:,} waiting (epoll, futex, sleep) left out"
    if times is not None and times.kernel_share is not None:
        caption += (
            f"; the kernel's share by the process's own accounting (/proc, stage phase): {times.kernel_share:.0%}"
        )
    table.caption = caption
    table.caption_justify = "left"
    return table


def top_table(split: CpuSplit, which: str, title: str, what: str = "function") -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("self", justify="right")
    table.add_column(what, overflow="fold")
    for name, share in split.top(which):
        table.add_row(f"{share:.1%}", name)
    return table


def show(
    console: Console,
    results: Sequence[ProbeResult],
    snapshot: Snapshot | None,
    routes: Sequence[str],
    split: CpuSplit | None,
    times: CpuTimes | None,
) -> None:
    console.print()
    console.print(load_table(results, "Load (stage phase, client side)"))
    if snapshot is not None:
        console.print()
        console.print(stage_table(snapshot, routes, console.width))
        console.print(legend({name: STAGE_COLOURS[name] for name in (*STAGES, "other")}))
    if split is not None and split.busy:
        console.print()
        console.print(split_table(split, times))
        console.print()
        console.print(top_table(split, "python", "Python functions by self time"))
        console.print()
        console.print(top_table(split, "native", "Native (Rust and C) functions by self time"))
        if split.system_calls:
            console.print()
            console.print(top_table(split, "kernel", "System calls", "call"))


def stages_json(snapshot: Snapshot, routes: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in routes:
        route = snapshot.routes.get(name)
        if route is None:
            continue
        shares = stage_shares(route)
        out[name] = {
            "requests": route.count,
            "statuses": route.statuses,
            "total_us": _summary_json(route.total),
            "stages": {
                stage: {**_summary_json(route.stages[stage]), "share": round(shares[stage], 4)} for stage in STAGES
            },
            "other_share": round(shares["other"], 4),
        }
    return out


def _summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "mean": round(summary.mean, 3),
        "p50": round(summary.p50, 3),
        "p90": round(summary.p90, 3),
        "p99": round(summary.p99, 3),
        "max": round(summary.max, 3),
    }


def write(profile: Profile, routes: Sequence[str]) -> None:
    """The JSON report, beside the flamegraph: ``<out>/<stem>.json``, with the stage
    figures of ``routes`` (those put under load)."""
    args = profile.args
    profile.out.mkdir(parents=True, exist_ok=True)
    path = profile.out / f"{profile.stem}.json"
    times = profile.times
    document = {
        "format": "spikard.profile",
        "version": 1,
        "app": profile.app,
        "command": profile.argv,
        "taken_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "connections": args.connections,
            "rate": args.rate,
            "workers": args.workers,
            "sample_rate_hz": args.sample_rate,
            "pinning": profile.placement.text,
        },
        "versions": profile.versions,
        "requests": [result.to_json() for result in profile.results],
        "unsynthesised_routes": profile.skipped_routes,
        "stages_unit": "microseconds",
        "stages": stages_json(profile.snapshot, routes) if profile.snapshot else None,
        "cpu": {
            "stage_phase_proc": None
            if times is None
            else {
                "user_s": round(times.user, 3),
                "system_s": round(times.system, 3),
                "kernel_share": None if times.kernel_share is None else round(times.kernel_share, 4),
            },
            "sampled": profile.split.to_json() if profile.split else None,
            "samples_with_runtime_and_app_in_one_stack": profile.together if profile.split else None,
        },
        "files": profile.files,
        "notes": profile.notes,
    }
    path.write_text(json.dumps(document, indent=1))
    profile.files["report"] = str(path)


def say_files(console: Console, profile: Profile) -> None:
    """What went wrong on the way, and where the files are."""
    console.print()
    for note in profile.notes:
        console.print(Text.assemble(("⚠ ", "yellow"), note))
    for route, why in profile.skipped_routes.items():
        console.print(Text.assemble(("⚠ ", "yellow"), f"{route}: no request synthesised ({why})"))
    labels = {"svg": "flamegraph", "speedscope": "speedscope profile", "stacks": "raw stacks", "report": "report"}
    for kind in ("svg", "speedscope", "report", "stacks"):
        if kind in profile.files:
            console.print(Text.assemble((f"{labels[kind]:>18}: ", "dim"), (profile.files[kind], "bold")))

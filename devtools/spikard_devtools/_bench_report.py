"""What ``spikard bench`` shows and keeps. The report is one JSON document
(``<timestamp>.json``: machine, versions, settings, command lines, every round of
every cell); the terminal tables, the markdown and the chart are all drawn from it,
so an old report can be shown or compared again as it was."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from spikard.stats import STAGES
from spikard_devtools._bench_results import GENERATOR_MARGIN, LATENCY_LOADS, Results

FORMAT = "spikard-bench/1"
STAGE_COLOURS = {"parse": "cyan", "validate": "magenta", "ffi": "yellow", "handler": "green", "response": "blue"}


def summary(results: Results, framework: str, workload: str) -> dict[str, Any] | None:
    cell = results.get(framework, workload)
    if cell is None:
        return None
    ratio = results.ratio(framework, results.reference, workload) if framework != results.reference else None
    share = results.ratio(framework, results.ceiling, workload) if framework != results.ceiling else None
    return {
        "requests_per_second": round(cell.rate(), 1),
        "spread": round(cell.spread(), 4),
        "p50_ms": round(cell.p50() * 1000, 3),
        "p99_ms": round(cell.p99() * 1000, 3),
        "ratio_to_reference": None if ratio is None else round(ratio, 3),
        "share_of_ceiling": None if share is None else round(share, 4),
        "generator_bound": results.generator_bound(framework, workload),
        "p99_ms_at": {
            share: round(p99 * 1000, 3)
            for share in (f"{load:.0%}" for load in LATENCY_LOADS)
            if (p99 := cell.p99_at(share)) is not None
        },
    }


def build(
    results: Results, head: dict[str, Any], frameworks: Sequence[dict[str, Any]], workloads: Sequence[Any]
) -> dict[str, Any]:
    """The report: ``head`` (format, times, command, machine, versions, settings,
    placement, notes...) with the frameworks, workloads and every cell."""
    cells = []
    for workload in workloads:
        for framework in frameworks:
            cell = results.cells.get((framework["name"], workload.name))
            if cell is not None:
                cells.append({**cell.to_json(), "summary": summary(results, framework["name"], workload.name)})
    return {
        "format": FORMAT,
        **head,
        "reference": results.reference,
        "ceiling": results.ceiling,
        "frameworks": list(frameworks),
        "workloads": [w.to_json() for w in workloads],
        "cells": cells,
    }


# -- reading a report ------------------------------------------------------------


def _cells(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["framework"], c["workload"]): c for c in report["cells"]}


def _labels(report: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["label"] for f in report["frameworks"]}


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _shown(report: dict[str, Any], columns: list[str]) -> list[str]:
    """``columns`` without the ratio and ceiling ones when there is nothing to show in
    them (no reference, no ceiling measured)."""
    drop = set()
    if not report["reference"]:
        drop.add(6)
    if not report["ceiling"]:
        drop.add(7)
    return [column for index, column in enumerate(columns) if index not in drop]


def _differs(report: dict[str, Any]) -> set[str]:
    return {entry.get("workload", entry["request"]) for entry in report.get("answers_differ") or []}


def _row(report: dict[str, Any], cell: dict[str, Any]) -> list[str]:
    """One cell's figures as text: req/s, ±, p50, p99, × reference, % ceiling,
    p99 at each offered load, and what to know (before ``_shown`` drops columns)."""
    s = cell["summary"]
    if s is None:
        return ["—"] * (6 + len(LATENCY_LOADS)) + [f"FAILED: {cell['failure'] or 'not measured'}"]
    ratio = s["ratio_to_reference"]
    share = s["share_of_ceiling"]
    latency = [
        _ms(s["p99_ms_at"][key]) if key in s.get("p99_ms_at", {}) else "—"
        for key in (f"{load:.0%}" for load in LATENCY_LOADS)
    ]
    notes = []
    if s["generator_bound"]:
        notes.append("generator-bound")
    if cell["framework"] == report["ceiling"]:
        notes.append("the limit")
    if cell["workload"] in _differs(report):
        notes.append("answers differ")
    return [
        _rate(s["requests_per_second"]),
        f"±{s['spread']:.0%}" if len(cell["rounds"]) > 1 else "—",
        _ms(s["p50_ms"]),
        _ms(s["p99_ms"]),
        f"{ratio:.2f}×" if ratio is not None else "",
        f"{share:.0%}" if share is not None else "",
        *latency,
        ", ".join(notes),
    ]


def _headers(report: dict[str, Any], compact: bool = False) -> list[str]:
    reference = report["reference"] or ""
    if not compact:
        reference = _labels(report).get(reference, reference)
    return [
        "workload",
        "framework",
        "req/s",
        "±",
        "p50 ms",
        "p99 ms",
        f"× {reference}" if reference else "×",
        "of ceiling",
        *(f"p99 ms at {load:.0%}" if not compact else f"p99@{load:.0%}" for load in LATENCY_LOADS),
        "note",
    ]


def table(report: dict[str, Any]) -> Table:
    """Rows by workload then framework, named short (the legend below the table
    gives the long names)."""
    out = Table(title="Requests per second and latency (medians over rounds)", title_justify="left")
    for index, header in enumerate(_shown(report, _headers(report, compact=True))):
        out.add_column(header, justify="left" if index < 2 or header == "note" else "right")
    cells = _cells(report)
    for workload in report["workloads"]:
        first = True
        for framework in report["frameworks"]:
            cell = cells.get((framework["name"], workload["name"]))
            if cell is None:
                continue
            row = _row(report, cell)
            style = "bold" if framework.get("stages") else ("dim" if framework["name"] == report["ceiling"] else "")
            if cell["summary"] is None:
                style = "red"
            out.add_row(workload["name"] if first else "", framework["name"], *_shown(report, row), style=style)
            first = False
        out.add_section()
    return out


def legend(report: dict[str, Any]) -> Text:
    """The workloads' and frameworks' long names, for the short ones of the table."""
    text = Text()
    for workload in report["workloads"]:
        text.append(f"{workload['name']}", style="bold").append(f": {workload['title']}   ")
    text.append("\n")
    for framework in report["frameworks"]:
        text.append(f"{framework['name']}", style="bold").append(f": {framework['label']}   ")
    return text


def stage_table(report: dict[str, Any]) -> Table | None:
    """spikard's own account of each workload: the server-side total and each
    stage's share of it, from the runtime's statistics."""
    rows = [c for c in report["cells"] if c.get("stages")]
    if not rows:
        return None
    out = Table(title="Where spikard's time goes (server side, from --stage-stats)", title_justify="left")
    for header in ("workload", "route", "total p50 µs", "total p99 µs", *STAGES):
        out.add_column(header, justify="left" if header in ("workload", "route") else "right")
    titles = {w["name"]: w["title"] for w in report["workloads"]}
    for cell in rows:
        stages = cell["stages"]
        shares = [Text(f"{stages['stages'][name]['share']:.0%}", style=STAGE_COLOURS[name]) for name in STAGES]
        out.add_row(
            titles.get(cell["workload"], cell["workload"]),
            cell["stage_route"] or "",
            f"{stages['total_us']['p50']:.1f}",
            f"{stages['total_us']['p99']:.1f}",
            *shares,
        )
    return out


def answers_table(report: dict[str, Any]) -> Table | None:
    """Where the compared servers answered one request differently (``--against``)."""
    differing = report.get("answers_differ") or []
    if not differing:
        return None
    out = Table(title="Answers that differ between the servers", title_justify="left")
    for header in ("request", *(_labels(report)[name] for name in differing[0]["answers"])):
        out.add_column(header, overflow="fold")
    for entry in differing:
        out.add_row(entry["request"], *(f"{a['status']} {a['body']}" for a in entry["answers"].values()))
    return out


# -- markdown --------------------------------------------------------------------


def markdown(report: dict[str, Any], chart: str | None = None) -> str:
    s, machine = report["settings"], report["machine"]
    state = " (interrupted: incomplete)" if report.get("interrupted") else ""
    lines = [
        f"# spikard bench, {report['started'][:16].replace('T', ' ')}{state}",
        "",
        f"`{' '.join(report['command'])}`",
        "",
        *(
            ["**`--quick`: one short round, to check the answers and the shape; the figures mean little.**", ""]
            if s.get("quick")
            else []
        ),
        f"Machine: {machine.get('cpu_model') or 'unknown CPU'}, {machine.get('cpus')} CPUs, "
        f"governor {machine.get('governor') or 'unknown'}, Linux {machine.get('kernel')}; "
        f"{report['versions'].get('python', '')}; oha {report['versions'].get('oha', '?')}. "
        f"{report['placement'][:1].upper() + report['placement'][1:]}.",
        "",
        f"Method: {s['rounds']} interleaved round(s) of {s['duration_s']:g} s per framework and workload, "
        f"each after {s['warmup_s']:g} s of warm-up, {s['connections']} connections; req/s, p50 and p99 are "
        "medians over rounds, ± half their range; ratios are the median of the ratios within each round. "
        + (
            "Every answer is checked before and after each timed run, and every status oha counted must be the "
            "expected one: a framework whose answers are wrong is reported failed, not fast. "
            if report.get("mode") != "app"
            else "Your requests name no expected answer: each server is held to the status it answered first "
            "(before and after each timed run, and every status oha counted), and where the servers answered a "
            "request differently it is marked. "
        )
        + "Figures taken with oha's CPU saturated"
        + (
            f", or within {GENERATOR_MARGIN:.0%} of the Rust ceiling's where the ceiling saturated oha,"
            if report["ceiling"]
            else ""
        )
        + " are generator-bound: the load generator's limit, not the framework's. "
        + (
            f"Latencies at {' and '.join(f'{x:.0%}' for x in LATENCY_LOADS)} of each framework's own maximum "
            f"are p99s from {s['latency_s']:g} s at that fixed offered rate after each timed run (the share of "
            "that run's rate), counted from when each request was due, medians over rounds."
            if s.get("latency_s")
            else ""
        ),
        "",
    ]
    if chart:
        lines += [f"![requests per second]({chart})", ""]
    headers = _shown(report, _headers(report))
    lines += ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * (len(headers) - 3) + "---|"]
    cells, labels = _cells(report), _labels(report)
    for workload in report["workloads"]:
        for framework in report["frameworks"]:
            cell = cells.get((framework["name"], workload["name"]))
            if cell is None:
                continue
            name = labels[framework["name"]]
            name = f"**{name}**" if framework.get("stages") else name
            row = [_escape(x) for x in _shown(report, _row(report, cell))]
            lines.append(f"| {_escape(workload['title'])} | {name} | " + " | ".join(row) + " |")
    stages = [c for c in report["cells"] if c.get("stages")]
    if stages:
        titles = {w["name"]: w["title"] for w in report["workloads"]}
        lines += [
            "",
            "Where spikard's time goes, server side (its `--stage-stats`, a separate run per workload):",
            "",
            "| workload | route | total p50 µs | total p99 µs | " + " | ".join(STAGES) + " |",
            "|---|---|---:|---:|" + "---:|" * len(STAGES),
        ]
        for cell in stages:
            st = cell["stages"]
            shares = " | ".join(f"{st['stages'][name]['share']:.0%}" for name in STAGES)
            lines.append(
                f"| {_escape(titles.get(cell['workload'], cell['workload']))} | `{cell['stage_route']}` "
                f"| {st['total_us']['p50']:.1f} | {st['total_us']['p99']:.1f} | {shares} |"
            )
    if report.get("notes"):
        lines += ["", "Notes:", "", *(f"- {_escape(note)}" for note in report["notes"])]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# -- instruction counts (--instructions) ---------------------------------------------


def instructions_report(head: dict[str, Any], plan: Any, counts: dict[str, dict[str, int | str]]) -> dict[str, Any]:
    reference = plan.reference if plan.reference in counts else None
    rows = []
    for workload in plan.workloads:
        for contender in plan.contenders:
            value = counts.get(contender.name, {}).get(workload.name)
            if value is None:
                continue
            base = counts.get(reference or "", {}).get(workload.name)
            ratio = value / base if isinstance(value, int) and isinstance(base, int) and base else None
            rows.append(
                {
                    "framework": contender.name,
                    "workload": workload.name,
                    "per_request": value if isinstance(value, int) else None,
                    "failure": value if isinstance(value, str) else None,
                    "ratio_to_reference": None if ratio is None else round(ratio, 4),
                }
            )
    return {
        "format": FORMAT,
        **head,
        "reference": reference,
        "ceiling": None,
        "frameworks": [{"name": c.name, "label": c.label, "command": c.command} for c in plan.contenders],
        "workloads": [w.to_json() for w in plan.workloads],
        "instructions": rows,
        "cells": [],
    }


def instructions_table(report: dict[str, Any]) -> Table:
    reference = report["reference"]
    out = Table(title="Instructions per request (callgrind)", title_justify="left")
    for header in ("workload", "framework", "instructions", f"÷ {reference}" if reference else "÷"):
        out.add_column(header, justify="left" if header in ("workload", "framework") else "right")
    for row in report["instructions"]:
        if row["per_request"] is None:
            out.add_row(row["workload"], row["framework"], "—", f"FAILED: {row['failure']}", style="red")
            continue
        ratio = row["ratio_to_reference"]
        out.add_row(row["workload"], row["framework"], f"{row['per_request']:,}", f"{ratio:.2f}" if ratio else "")
    return out


def instructions_markdown(report: dict[str, Any]) -> str:
    reference = report["reference"]
    lines = [
        f"# spikard bench --instructions, {report['started'][:16].replace('T', ' ')}",
        "",
        f"`{' '.join(report['command'])}`",
        "",
        "Instructions per request of each server process tree, counted by callgrind: the difference between "
        "1,000 and 200 requests sent one after another on one connection, over 800, every answer checked. "
        f"Machine: {report['machine'].get('cpu_model')}; {report['versions'].get('python', '')}.",
        "",
        f"| workload | framework | instructions/request | ÷ {reference or '—'} |",
        "|---|---|---:|---:|",
    ]
    for row in report["instructions"]:
        figure = f"{row['per_request']:,}" if row["per_request"] is not None else f"failed: {row['failure']}"
        ratio = f"{row['ratio_to_reference']:.2f}" if row["ratio_to_reference"] else ""
        lines.append(f"| {row['workload']} | {row['framework']} | {_escape(figure)} | {ratio} |")
    return "\n".join(lines) + "\n"

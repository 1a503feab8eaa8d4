"""``spikard bench --compare OLD.json``: the change in each framework's rate on each
workload from an earlier report, flagged only when Welch's t-test over the rounds
says it is beyond their noise; the change in the ratio to the reference; and what
differs between the two runs' machines and settings."""

from __future__ import annotations

import importlib
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from spikard_devtools._bench_report import FORMAT
from spikard_devtools._tools import BENCH_EXTRA

ALPHA = 0.05  # a change with p below this is flagged
# What makes two runs' figures not comparable as they stand.
MACHINE_KEYS = ("host", "cpu_model", "cpus", "kernel", "governor")
SETTING_KEYS = ("duration_s", "warmup_s", "connections", "rounds", "quick")
VERDICT_STYLES = {"faster": "green", "slower": "red", "within noise": "dim", "not testable": "dim"}


class BadReport(ValueError):
    """The file given to --compare is not a report ``spikard bench`` wrote."""


@dataclass(frozen=True)
class Change:
    """One framework on one workload, measured in both reports."""

    framework: str  # its label, as the new report gives it
    workload: str  # the workload's title
    old: float  # median req/s over the rounds
    new: float
    change: float  # new ÷ old - 1
    p: float | None  # Welch's t-test over the rounds' rates; None: not testable
    old_ratio: float | None = None  # to the reference, when both reports have the same one
    new_ratio: float | None = None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    @property
    def verdict(self) -> str:
        if self.p is None:
            return "not testable"
        if not self.significant:
            return "within noise"
        return "faster" if self.change > 0 else "slower"


@dataclass
class Comparison:
    old_started: str
    new_started: str
    reference: str | None  # the label ratios are to, when both reports have the same reference
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # machine and settings that differ, cells left out


def load(path: Path) -> dict[str, Any]:
    """An earlier report, checked to be one and to hold what ``compare`` reads."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadReport(f"cannot compare with {path}: no such file") from None
    except UnicodeDecodeError:
        raise BadReport(f"cannot compare with {path}: not a JSON report (not UTF-8 text)") from None
    except OSError as error:
        raise BadReport(f"cannot compare with {path}: {error.strerror or error}") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadReport(f"cannot compare with {path}: not JSON ({error.msg}, line {error.lineno})") from None
    found = report.get("format") if isinstance(report, dict) else None
    if found != FORMAT:
        raise BadReport(
            f"cannot compare with {path}: not a spikard bench report (format {found!r}, expected {FORMAT!r})"
        )
    if report.get("kind") == "instructions":
        raise BadReport(f"cannot compare with {path}: it counts instructions (--instructions), not requests per second")
    shape = {"cells": list, "frameworks": list, "workloads": list, "machine": dict, "settings": dict}
    for key, kind in shape.items():
        if not isinstance(report.get(key), kind):
            raise BadReport(f"cannot compare with {path}: its {key!r} is missing or not a {kind.__name__}")
    for cell in report["cells"]:
        if not (isinstance(cell, dict) and {"framework", "workload"} <= cell.keys()):
            raise BadReport(f"cannot compare with {path}: a cell without framework and workload")
        rounds = cell.get("rounds", [])
        if not isinstance(rounds, list) or not all(
            isinstance(r, dict) and isinstance(r.get("requests_per_second"), int | float) for r in rounds
        ):
            raise BadReport(f"cannot compare with {path}: a round without its requests_per_second")
    return report


def compare(old: dict[str, Any], new: dict[str, Any]) -> Comparison:
    """Every (framework, workload) measured in both, in the new report's order."""
    labels = {**_labels(old), **_labels(new)}
    titles = {**_titles(old), **_titles(new)}
    same_reference = old.get("reference") is not None and old.get("reference") == new.get("reference")
    comparison = Comparison(
        old_started=str(old.get("started", "?")),
        new_started=str(new.get("started", "?")),
        reference=labels.get(new["reference"], new["reference"]) if same_reference else None,
        warnings=_differences(old, new),
    )
    stats = _scipy_stats()
    if stats is None:
        comparison.warnings.append(f"no significance test (it needs scipy): {BENCH_EXTRA}")
    old_cells, new_cells = _cells(old), _cells(new)
    for key, now in new_cells.items():
        before = old_cells.get(key)
        if before is None:
            continue
        where = f"{labels.get(key[0], key[0])} on {titles.get(key[1], key[1])}"
        if not (_measured(before) and _measured(now)):
            if _measured(before):
                comparison.warnings.append(f"{where}: failed now ({now.get('failure') or 'not measured'})")
            elif _measured(now):
                comparison.warnings.append(f"{where}: failed before, so not compared")
            continue
        a, b = _rates(before), _rates(now)
        old_rate, new_rate = statistics.median(a), statistics.median(b)
        if old_rate <= 0:
            comparison.warnings.append(f"{where}: no rate before, so not compared")
            continue
        comparison.changes.append(
            Change(
                framework=labels.get(key[0], key[0]),
                workload=titles.get(key[1], key[1]),
                old=old_rate,
                new=new_rate,
                change=new_rate / old_rate - 1,
                p=_welch(stats, a, b) if stats is not None else None,
                old_ratio=_ratio(before) if same_reference else None,
                new_ratio=_ratio(now) if same_reference else None,
            )
        )
    if not comparison.changes:
        comparison.warnings.append("no framework and workload measured in both reports")
    return comparison


def _scipy_stats() -> Any | None:
    """scipy.stats, imported late: the rest of the tool runs without it (and it
    ships no type information, hence the import by name)."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError:
        return None


def _welch(stats: Any, a: list[float], b: list[float]) -> float | None:
    """Welch's p-value, or None when the rounds cannot say: fewer than two on a
    side, or none of them varying (no noise to measure the change against)."""
    if len(a) < 2 or len(b) < 2 or (statistics.variance(a) == 0 and statistics.variance(b) == 0):
        return None
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for section, keys in (("machine", MACHINE_KEYS), ("settings", SETTING_KEYS)):
        before, now = old.get(section) or {}, new.get(section) or {}
        for key in keys:
            if before.get(key) != now.get(key):
                out.append(f"different {section}: {key} was {_show(before.get(key))}, now {_show(now.get(key))}")
    for key in ("placement", "reference"):
        if old.get(key) != new.get(key):
            out.append(f"different {key}: was {_show(old.get(key))}, now {_show(new.get(key))}")
    return out


def _show(value: Any) -> str:
    return "unknown" if value is None else repr(value) if isinstance(value, str) else str(value)


def _cells(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The report's cells in its display order: by workload, then framework."""
    cells = {(c["framework"], c["workload"]): c for c in report["cells"]}
    order = [(f["name"], w["name"]) for w in report["workloads"] for f in report["frameworks"]]
    ordered = {key: cells[key] for key in order if key in cells}
    return {**ordered, **cells}


def _labels(report: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f.get("label", f["name"]) for f in report["frameworks"]}


def _titles(report: dict[str, Any]) -> dict[str, str]:
    return {w["name"]: w.get("title", w["name"]) for w in report["workloads"]}


def _measured(cell: dict[str, Any]) -> bool:
    return cell.get("failure") is None and cell.get("summary") is not None and bool(cell.get("rounds"))


def _rates(cell: dict[str, Any]) -> list[float]:
    return [float(r["requests_per_second"]) for r in cell["rounds"]]


def _ratio(cell: dict[str, Any]) -> float | None:
    value = cell["summary"].get("ratio_to_reference")
    return None if value is None else float(value)


# -- showing it ---------------------------------------------------------------------


def _percent(change: float) -> str:
    return f"{change:+.1%}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ratios(change: Change) -> str:
    if change.old_ratio is None or change.new_ratio is None:
        return ""
    return f"{change.old_ratio:.2f} → {change.new_ratio:.2f}"


def _row(change: Change) -> list[str]:
    return [
        change.workload,
        change.framework,
        f"{change.old:,.0f}",
        f"{change.new:,.0f}",
        _percent(change.change),
        _p(change.p),
        change.verdict,
        _ratios(change),
    ]


def _headers(comparison: Comparison) -> list[str]:
    ratio = f"× {comparison.reference}" if comparison.reference else "× reference"
    return ["workload", "framework", "old req/s", "new req/s", "change", "p", "verdict", ratio]


def table(comparison: Comparison) -> Table:
    """One row per framework and workload: faster in green, slower in red, and
    changes within the rounds' noise (or with too few rounds to tell) dimmed."""
    out = Table(
        title=f"Change from the report of {comparison.old_started} (Welch's t-test over rounds; flagged: p < {ALPHA})",
        title_justify="left",
    )
    for index, header in enumerate(_headers(comparison)):
        out.add_column(header, justify="left" if index < 2 or header == "verdict" else "right")
    previous = None
    for change in comparison.changes:
        row = _row(change)
        if change.workload == previous:
            row[0] = ""  # the workload named once per group, as in the report's table
        elif previous is not None:
            out.add_section()
        previous = change.workload
        out.add_row(*row, style=VERDICT_STYLES[change.verdict])
    if comparison.warnings:
        out.caption = Text("\n".join(f"⚠ {warning}" for warning in comparison.warnings), style="yellow")
        out.caption_justify = "left"
    return out


def markdown(comparison: Comparison) -> str:
    lines = [
        f"## Compared with the report of {comparison.old_started}",
        "",
        "Each change is tested with Welch's t-test over the rounds' rates; only a change with "
        f"p < {ALPHA} is called faster or slower, the rest are within the rounds' noise "
        "(not testable: fewer than two rounds on a side, or none varying).",
        "",
    ]
    if comparison.warnings:
        lines += [*(f"- ⚠ {_escape(warning)}" for warning in comparison.warnings), ""]
    if comparison.changes:
        headers = _headers(comparison)
        lines += ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * 4 + "---|---:|"]
        for change in comparison.changes:
            row = [_escape(x) for x in _row(change)]
            if change.significant:
                row[4], row[6] = f"**{row[4]}**", f"**{row[6]}**"
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

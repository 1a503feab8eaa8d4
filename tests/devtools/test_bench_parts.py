"""The pure parts of ``spikard bench`` on reports built here: the SVG chart drawn from
a report, and ``--compare``'s verdicts on the change from an earlier one."""

from __future__ import annotations

import copy
import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from spikard_devtools import _chart, _compare

FRAMEWORKS = [
    {"name": "spikard", "label": "spikard", "stages": True},
    {"name": "FastAPI", "label": "FastAPI + uvicorn", "stages": False},
    {"name": "ceiling", "label": "Rust ceiling", "stages": False},
]
WORKLOADS = [
    {"name": "hello", "title": "GET JSON hello"},
    {"name": "small-post", "title": "small validated JSON POST"},
]
MACHINE = {"cpu_model": "Test CPU 3000", "cpus": 2, "governor": "performance", "kernel": "6.8.0"}


def a_cell(framework: str, workload: str, rates: list[float], failure: str | None = None) -> dict[str, Any]:
    rounds = [
        {"requests_per_second": r, "p50_ms": 1.0, "p99_ms": 3.0, "statuses": {"200": int(r)}, "errors": {}}
        for r in rates
    ]
    summary = None
    if failure is None and rates:
        summary = {
            "requests_per_second": statistics.median(rates),
            "spread": (max(rates) - min(rates)) / 2 / statistics.median(rates),
            "p50_ms": 1.0,
            "p99_ms": 3.0,
            "ratio_to_reference": None,
            "share_of_ceiling": None,
            "generator_bound": False,
        }
    return {
        "framework": framework,
        "workload": workload,
        "failure": failure,
        "rounds": rounds if failure is None else [],
        "latency_at": {},
        "stage_route": None,
        "stages": None,
        "summary": summary,
    }


def a_report(rates: dict[tuple[str, str], list[float]], **changes: Any) -> dict[str, Any]:
    """A report with a cell per (framework, workload) in ``rates``; the ratios to
    FastAPI filled in from the rounds, as ``spikard bench`` gives them."""
    cells = [a_cell(framework, workload, values) for (framework, workload), values in rates.items()]
    for cell in cells:
        reference = rates.get(("FastAPI", cell["workload"]))
        if cell["summary"] and reference and cell["framework"] != "FastAPI":
            ratios = [a / b for a, b in zip(cell_rates(cell), reference, strict=True)]
            cell["summary"]["ratio_to_reference"] = statistics.median(ratios)
    report = {
        "format": "spikard-bench/1",
        "started": "2026-11-30T19:40:00",
        "finished": "2026-11-30T20:05:00",
        "command": ["spikard", "bench"],
        "mode": "suite",
        "machine": dict(MACHINE),
        "versions": {"python": "3.11.7", "oha": "1.16.0"},
        "settings": {"duration_s": 5, "warmup_s": 1, "rounds": 5, "connections": 64, "latency_s": 3, "quick": False},
        "placement": "server on CPU 0, oha on CPU 1 (taskset)",
        "reference": "FastAPI",
        "ceiling": "ceiling",
        "frameworks": copy.deepcopy(FRAMEWORKS),
        "workloads": copy.deepcopy(WORKLOADS),
        "cells": cells,
        "notes": [],
    }
    report.update(changes)
    return report


def cell_rates(cell: dict[str, Any]) -> list[float]:
    return [r["requests_per_second"] for r in cell["rounds"]]


def full_report() -> dict[str, Any]:
    return a_report(
        {
            ("spikard", "hello"): [40_000, 41_000, 40_500],
            ("FastAPI", "hello"): [4_400, 4_500, 4_450],
            ("ceiling", "hello"): [120_000, 121_000, 119_000],
            ("spikard", "small-post"): [30_000, 30_500, 29_800],
            ("FastAPI", "small-post"): [3_000, 3_100, 3_050],
            ("ceiling", "small-post"): [118_000, 119_000, 117_500],
        }
    )


# -- the chart ------------------------------------------------------------------------


def svg_texts(svg: str) -> str:
    """The text the SVG shows (matplotlib writes each string in a <text> element)."""
    return " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


def test_the_chart_is_an_svg_naming_every_framework_and_workload(tmp_path):
    report = full_report()
    path = _chart.draw(report, tmp_path / "chart.svg")
    assert path == tmp_path / "chart.svg"
    svg = path.read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "<svg" in svg
    assert "<pattern" in svg  # the ceiling's hatching: a limit, not a competitor
    shown = svg_texts(svg)
    for label in ("spikard", "FastAPI + uvicorn", "Rust ceiling"):
        assert label in shown
    for title in ("GET JSON hello", "small validated JSON POST"):
        assert title in shown
    # Each bar's rate, and spikard's ratio to FastAPI (40,500 / 4,450 within each round: 9.1).
    assert "40,500" in shown and "×9.1" in shown
    # What was measured, and on what.
    assert "Test CPU 3000" in shown and "64 connections" in shown


def test_the_same_report_draws_the_same_bytes(tmp_path):
    report = full_report()
    first = _chart.draw(report, tmp_path / "one.svg").read_bytes()
    second = _chart.draw(report, tmp_path / "two.svg").read_bytes()
    assert first == second
    assert b"<dc:date>" not in first


def test_a_failed_cell_is_drawn_as_failed_and_a_generator_bound_one_as_at_least(tmp_path):
    report = full_report()
    failed = next(c for c in report["cells"] if c["framework"] == "FastAPI" and c["workload"] == "small-post")
    failed.update(failure="answered 500 instead of 200", summary=None, rounds=[])
    bound = next(c for c in report["cells"] if c["framework"] == "spikard" and c["workload"] == "hello")
    bound["summary"]["generator_bound"] = True
    shown = svg_texts(_chart.draw(report, tmp_path / "chart.svg").read_text(encoding="utf-8"))
    assert "failed: answered 500 instead of 200" in shown
    assert "≥40,500" in shown and "generator-bound" in shown
    # The other cells are still drawn.
    assert "small validated JSON POST" in shown and "30,000" in shown


def test_without_matplotlib_the_chart_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(_chart.ChartUnavailable, match=re.escape("pip install 'spikard-devtools[bench]'")):
        _chart.draw(full_report(), tmp_path / "chart.svg")
    assert not (tmp_path / "chart.svg").exists()


# -- compare ---------------------------------------------------------------------------


def one_cell(rates: list[float], **changes: Any) -> dict[str, Any]:
    return a_report({("spikard", "hello"): rates}, **changes)


def the_change(old: dict[str, Any], new: dict[str, Any]) -> _compare.Change:
    (change,) = _compare.compare(old, new).changes
    return change


def test_a_clear_slowdown_over_tight_rounds_is_flagged_slower():
    old = one_cell([40_000, 40_100, 39_900, 40_050, 39_950])
    new = one_cell([36_000, 36_100, 35_900, 36_050, 35_950])
    change = the_change(old, new)
    assert (change.old, change.new) == (40_000, 36_000)
    assert change.change == pytest.approx(-0.10)
    assert change.p is not None and change.p < 0.001
    assert change.significant and change.verdict == "slower"
    # And the other way round: faster.
    assert the_change(new, old).verdict == "faster"


def test_a_one_percent_change_over_noisy_rounds_is_within_noise():
    old = one_cell([40_000, 36_000, 44_000, 38_000, 42_000])
    new = one_cell([40_400, 36_400, 44_400, 38_400, 42_400])
    change = the_change(old, new)
    assert change.change == pytest.approx(0.01)
    assert change.p is not None and change.p > _compare.ALPHA
    assert not change.significant and change.verdict == "within noise"


def test_the_test_is_welchs_not_students():
    # Unequal rounds and variances: Welch's t = 1.64 on 5.06 degrees of freedom,
    # p = 0.162 (Student's pooled variance would give 0.299).
    old = one_cell([38_000, 39_500, 41_000, 36_500, 40_500, 37_000])
    new = one_cell([40_000, 40_100, 39_900])
    assert the_change(old, new).p == pytest.approx(0.1617, abs=5e-4)


def test_single_rounds_or_no_variation_are_not_testable():
    old, new = one_cell([40_000]), one_cell([30_000])
    change = the_change(old, new)
    assert change.change == pytest.approx(-0.25)
    assert change.p is None and not change.significant and change.verdict == "not testable"
    # Rounds that do not vary at all on either side give no noise to test against.
    steady = the_change(one_cell([40_000, 40_000, 40_000]), one_cell([30_000, 30_000, 30_000]))
    assert steady.verdict == "not testable"


def test_the_ratio_to_the_reference_is_compared_when_both_reports_have_it():
    old = a_report({("spikard", "hello"): [40_000, 40_000, 40_000], ("FastAPI", "hello"): [4_000, 4_000, 4_000]})
    new = a_report({("spikard", "hello"): [44_000, 44_000, 44_000], ("FastAPI", "hello"): [4_000, 4_000, 4_000]})
    comparison = _compare.compare(old, new)
    assert comparison.reference == "FastAPI + uvicorn"
    spikard = next(c for c in comparison.changes if c.framework == "spikard")
    assert (spikard.old_ratio, spikard.new_ratio) == (pytest.approx(10.0), pytest.approx(11.0))
    # Without a reference in one of them: no ratio to compare.
    comparison = _compare.compare({**old, "reference": None}, new)
    assert comparison.reference is None
    assert all(c.old_ratio is None and c.new_ratio is None for c in comparison.changes)


def test_only_cells_measured_in_both_are_compared_and_a_new_failure_is_said():
    old = full_report()
    new = full_report()
    failed = next(c for c in new["cells"] if c["framework"] == "FastAPI" and c["workload"] == "hello")
    failed.update(failure="answered 500 instead of 200", summary=None, rounds=[])
    new["cells"] = [c for c in new["cells"] if c["workload"] != "small-post" or c["framework"] != "ceiling"]
    comparison = _compare.compare(old, new)
    compared = [(c.framework, c.workload) for c in comparison.changes]
    # In the new report's order: by workload, then framework.
    assert compared == [
        ("spikard", "GET JSON hello"),
        ("Rust ceiling", "GET JSON hello"),
        ("spikard", "small validated JSON POST"),
        ("FastAPI + uvicorn", "small validated JSON POST"),
    ]
    assert any("FastAPI + uvicorn on GET JSON hello" in w and "failed now" in w for w in comparison.warnings)


def test_a_different_machine_or_settings_is_warned_about():
    old = one_cell([40_000, 40_100, 39_900])
    same = _compare.compare(old, copy.deepcopy(old))
    assert same.warnings == []
    new = one_cell(
        [40_000, 40_100, 39_900],
        machine={**MACHINE, "cpu_model": "Other CPU 9000", "governor": None},
        settings={**old["settings"], "connections": 256},
    )
    warnings = _compare.compare(old, new).warnings
    assert any("cpu_model" in w and "Test CPU 3000" in w and "Other CPU 9000" in w for w in warnings)
    assert any("governor" in w and "unknown" in w for w in warnings)
    assert any("connections" in w and "64" in w and "256" in w for w in warnings)
    assert not any("kernel" in w or "rounds" in w for w in warnings)


def test_the_table_and_markdown_say_which_changes_are_beyond_noise():
    old = a_report(
        {
            ("spikard", "hello"): [40_000, 40_100, 39_900, 40_050, 39_950],
            ("FastAPI", "hello"): [4_000, 4_400, 3_600, 4_200, 3_800],
        }
    )
    new = a_report(
        {
            ("spikard", "hello"): [36_000, 36_100, 35_900, 36_050, 35_950],
            ("FastAPI", "hello"): [4_040, 4_440, 3_640, 4_240, 3_840],
        }
    )
    comparison = _compare.compare(old, new)
    table = _compare.table(comparison)
    verdicts = table.columns[[c.header for c in table.columns].index("verdict")]
    assert list(verdicts.cells) == ["slower", "within noise"]
    assert [row.style for row in table.rows] == ["red", "dim"]
    markdown = _compare.markdown(comparison)
    assert "| GET JSON hello | spikard | 40,000 | 36,000 | **-10.0%** |" in markdown
    assert "| **slower** |" in markdown
    assert "| FastAPI + uvicorn | 4,000 | 4,040 | +1.0% |" in markdown
    assert "within noise |" in markdown


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_an_old_report_is_loaded_and_checked(tmp_path):
    report = full_report()
    assert _compare.load(write(tmp_path / "old.json", json.dumps(report))) == report


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (json.dumps({"format": "spikard.profile", "version": 1}), "not a spikard bench report"),
        (json.dumps([1, 2]), "not a spikard bench report"),
        (json.dumps({"format": "spikard-bench/1", "cells": "x"}), "'cells'"),
    ],
)
def test_a_bad_report_is_refused_naming_the_file(tmp_path, content, said):
    path = tmp_path / "old.json"
    if content is not None:
        write(path, content)
    with pytest.raises(_compare.BadReport) as raised:
        _compare.load(path)
    assert str(path) in str(raised.value) and said in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what `spikard bench` turns into exit status 2

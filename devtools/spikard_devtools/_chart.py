"""The SVG chart of a ``spikard bench`` report: requests per second, one group per
workload and one horizontal bar per framework, each annotated with its rate and its
ratio to the reference; drawn the same, byte for byte, from the same report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikard_devtools._tools import BENCH_EXTRA

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SPIKARD = "#d9480f"  # what the chart is about: the one strong colour
CEILING = "#bdbdbd"  # a limit, not a competitor: grey and hatched
FAILED = "#c92a2a"
# The peers, muted, in the report's framework order (the same in every group).
PEERS = ("#4c72b0", "#55a868", "#8172b2", "#937860", "#64b5cd", "#8c8c8c", "#ccb974")
WIDTH_IN, DPI = 9.0, 100  # 900 px: a README's width
BAR_IN, GROUP_IN, HEAD_IN, FOOT_IN = 0.22, 0.35, 0.6, 0.5
FONT = 9
# Room right of the longest bar for its annotation, as a share of that bar.
ROOM = 0.45
# Fixed: matplotlib derives the SVG's element ids from this, and writes no date.
SALT = "spikard-bench"


class ChartUnavailable(Exception):
    """matplotlib is not installed."""


def draw(report: dict[str, Any], path: Path) -> Path:
    """Write the chart of ``report`` (as ``spikard bench`` writes it) to ``path``
    as SVG; return ``path``."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ChartUnavailable(f"the chart needs matplotlib: {BENCH_EXTRA}") from error

    groups = _groups(report)
    bars = sum(len(rows) for _, rows in groups)
    height = HEAD_IN + FOOT_IN + GROUP_IN * len(groups) + BAR_IN * max(bars, 1)
    with matplotlib.rc_context(
        {
            "svg.hashsalt": SALT,
            # Text stays text: searchable, smaller, and sharp at any width.
            "svg.fonttype": "none",
            "font.size": FONT,
            "axes.titlesize": FONT + 1,
            "hatch.color": "#8c8c8c",
        }
    ):
        # A figure of its own, off pyplot: no global state, no display needed.
        figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        title, subtitle = _titles(report)
        figure.suptitle(f"{title}\n{subtitle}", x=0.01, ha="left", fontsize=FONT + 1, linespacing=1.5)
        if groups:
            axes = figure.subplots(len(groups), 1, squeeze=False, height_ratios=[len(rows) for _, rows in groups])
            for ax, (heading, rows) in zip(axes[:, 0], groups, strict=True):
                _group(ax, heading, rows)
        footnote = _footnote(report, groups)
        if footnote:
            # supxlabel, not text: the constrained layout makes room for it.
            figure.supxlabel(footnote, x=0.01, ha="left", fontsize=FONT - 1, color="#555555")
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="svg", metadata={"Date": None})
    return path


Row = dict[str, Any]


def _groups(report: dict[str, Any]) -> list[tuple[str, list[Row]]]:
    """Per workload, in the report's order, its title and one row per framework
    measured on it (failed ones included), in the report's framework order."""
    cells = {(c["framework"], c["workload"]): c for c in report["cells"]}
    colours = _colours(report)
    groups = []
    for workload in report["workloads"]:
        rows = []
        for framework in report["frameworks"]:
            cell = cells.get((framework["name"], workload["name"]))
            if cell is None:
                continue
            rates = [r["requests_per_second"] for r in cell.get("rounds", [])]
            summary = cell.get("summary")
            rows.append(
                {
                    "label": _plain(framework.get("label", framework["name"])),
                    "colour": colours[framework["name"]],
                    "ceiling": framework["name"] == report.get("ceiling"),
                    "reference": framework["name"] == report.get("reference"),
                    "summary": summary,
                    "failure": cell.get("failure") or ("not measured" if summary is None else None),
                    "low": min(rates) if rates else None,
                    "high": max(rates) if rates else None,
                }
            )
        if rows:
            groups.append((_plain(workload.get("title", workload["name"])), rows))
    return groups


def _colours(report: dict[str, Any]) -> dict[str, str]:
    colours, peers = {}, iter(PEERS * len(report["frameworks"]))
    for framework in report["frameworks"]:
        name = framework["name"]
        if name == report.get("ceiling"):
            colours[name] = CEILING
        elif framework.get("stages") or name == "spikard":
            colours[name] = SPIKARD
        else:
            colours[name] = next(peers)
    return colours


def _group(ax: Axes, heading: str, rows: list[Row]) -> None:
    measured = [r for r in rows if r["summary"] is not None]
    top = max([max(r["high"] or 0, r["summary"]["requests_per_second"]) for r in measured], default=0) or 1.0
    for y, row in enumerate(rows):
        summary = row["summary"]
        if summary is None:
            # An outline with no fill: the framework was run here, and failed.
            ax.barh(y, top * 0.12, height=0.7, fill=False, edgecolor=FAILED, linestyle="--", linewidth=1)
            ax.text(top * 0.14, y, _failure(row["failure"]), va="center", color=FAILED, fontsize=FONT - 1)
            continue
        rate = summary["requests_per_second"]
        ax.barh(
            y,
            rate,
            height=0.7,
            color=row["colour"],
            hatch="///" if row["ceiling"] else None,
            edgecolor="#8c8c8c" if row["ceiling"] else "none",
            linewidth=0.6,
        )
        end = rate
        if row["low"] is not None and row["high"] > row["low"]:
            # The rounds' range around their median.
            ax.errorbar(
                rate,
                y,
                xerr=[[rate - row["low"]], [row["high"] - rate]],
                fmt="none",
                ecolor="#333333",
                elinewidth=0.8,
                capsize=2,
            )
            end = row["high"]
        ax.text(end + top * 0.015, y, _annotation(row), va="center", fontsize=FONT, color=_text_colour(row))
    ax.set_title(heading, loc="left", fontweight="bold", pad=3)
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows])
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        if row["colour"] == SPIKARD:
            tick.set_fontweight("bold")
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the report's order, top down
    ax.set_xlim(0, top * (1 + ROOM))
    # The figures are written on the bars; an axis per group would only clutter.
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#999999")


def _annotation(row: Row) -> str:
    summary = row["summary"]
    bound = "≥" if summary["generator_bound"] else ""  # the generator's limit: the framework may be faster
    text = f"{bound}{summary['requests_per_second']:,.0f}"
    ratio = summary.get("ratio_to_reference")
    if ratio is not None:
        text += f"   ×{ratio:.1f}"
    elif row["reference"]:
        text += "   ×1"
    if row["ceiling"]:
        text += "   (limit)"
    return text


def _text_colour(row: Row) -> str:
    if row["ceiling"]:
        return "#666666"
    return "#000000" if row["colour"] == SPIKARD else "#333333"


def _failure(why: str, limit: int = 60) -> str:
    why = " ".join(why.split())
    return _plain("failed: " + (why if len(why) <= limit else why[: limit - 1] + "…"))


def _plain(text: str) -> str:
    """Text from the report as it is: a pair of ``$`` would be typeset as maths."""
    return text.replace("$", r"\$")


def _titles(report: dict[str, Any]) -> tuple[str, str]:
    """What was measured, and on what."""
    settings, machine = report.get("settings", {}), report.get("machine", {})
    rounds = settings.get("rounds")
    title = "Requests per second"
    if rounds:
        title += f", median of {rounds} round{'s' if rounds != 1 else ''}"
        if settings.get("duration_s"):
            title += f" of {settings['duration_s']:g} s"
    if settings.get("connections"):
        title += f", {settings['connections']} connections"
    if settings.get("quick"):
        title += " (--quick: the shape, not the figures)"
    where = [machine.get("cpu_model") or "unknown CPU"]
    if report.get("placement"):
        where.append(report["placement"])
    return title, _plain("; ".join(where))


def _footnote(report: dict[str, Any], groups: list[tuple[str, list[Row]]]) -> str:
    rows = [r for _, group in groups for r in group]
    parts = []
    reference = next((r["label"] for r in rows if r["reference"]), report.get("reference"))
    if reference:
        parts.append(f"×N: times {reference}'s rate (median of the per-round ratios)")
    if any((r["high"] or 0) > (r["low"] or 0) for r in rows):
        parts.append("whiskers: the rounds' range")
    if any(r["summary"] is not None and r["summary"]["generator_bound"] for r in rows):
        parts.append("≥: generator-bound, the load generator's limit, not the framework's")
    return "\n".join(parts)

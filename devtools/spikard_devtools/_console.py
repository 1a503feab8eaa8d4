"""Everything ``spikard dev`` prints, through ``rich``: the banner, a line per reload,
load failures as tracebacks, and, in the serving processes (through the logging
configuration ``spikard dev`` hands to ``spikard run --log-config``), one coloured
line per request with its five stages, and handler exceptions as tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.traceback import Frame, Stack, Trace, Traceback

from spikard.stats import STAGES

# Devtools' own messages go to stderr; access lines to stdout, as `spikard run`'s.
console = Console(stderr=True, highlight=False)


def banner(url: str, app: str, watched: Sequence[Path], reload: bool) -> None:
    console.print(
        Text.assemble(("spikard dev", "bold cyan"), "  serving ", (app, "bold"), " on ", (url, "bold underline"))
    )
    if reload:
        folders = ", ".join(str(folder) for folder in watched)
        console.print(Text.assemble("  watching ", (folders, "bold"), " (Ctrl-C to stop)"), style="dim")
    else:
        console.print("  not watching for changes (--no-reload); Ctrl-C to stop", style="dim")
    console.print("  Server-Timing on every response; stages per request below", style="dim")


def reloading(files: str) -> None:
    console.print(Text.assemble(("↻ ", "cyan"), (files, "bold"), " changed; reloading"), style="dim")


def reloaded(files: str, millis: float) -> None:
    console.print(Text.assemble(("✓ ", "green"), "reloaded in ", (f"{millis:.0f} ms", "bold"), f" ({files})"))


def recovered() -> None:
    console.print(Text.assemble(("✓ ", "green"), "the code on disk loads again: responses are no longer marked stale"))


def show_failure(failure: dict[str, Any]) -> None:
    """An app that does not load (``AppLoadError.to_json()``), as a traceback."""
    trace = _trace(failure)
    if trace is not None:
        console.print(Traceback(trace, show_locals=False, width=min(console.width, 120)))
    else:
        console.print(Text(failure.get("message", "the app could not be loaded"), style="bold red"))


def load_failed(failure: dict[str, Any], stale: str | None) -> None:
    """The app on disk cannot be loaded: its traceback, once, and what serves meanwhile."""
    show_failure(failure)
    if stale:
        console.print(
            Text.assemble(
                ("⚠ stale: ", "bold yellow"),
                "the last good code keeps serving; every response carries ",
                (f"Spikard-Stale: {stale}", "bold"),
                " until a save loads",
            )
        )
    else:
        console.print(Text.assemble(("⚠ ", "bold yellow"), "nothing serves yet: waiting for a save that loads"))


def stopped_unexpectedly(status: int) -> None:
    console.print(Text(f"the server stopped (exit status {status}); waiting for a save to start it again", "yellow"))


def _trace(failure: dict[str, Any]) -> Trace | None:
    """A rich ``Trace`` from ``AppLoadError.to_json()``: the frames in the app's
    code, or for a syntax error the offending line."""
    kind = failure.get("kind")
    if not kind:
        return None
    frames = [
        Frame(filename=f["filename"], lineno=f["lineno"], name=f["name"], line=f["line"])
        for f in failure.get("frames", ())
    ]
    filename, lineno = failure.get("filename"), failure.get("lineno")
    if not frames and filename and lineno:
        frames = [Frame(filename=filename, lineno=lineno, name="<module>", line="")]
    return Trace(stacks=[Stack(exc_type=kind, exc_value=failure.get("detail", ""), frames=frames)])


# -- in the serving processes, through logging ------------------------------------------

_STATUS_STYLES = {2: "green", 3: "cyan", 4: "yellow", 5: "bold red"}


class AccessLines(logging.Handler):
    """``200 GET /items/1  1.24 ms  parse 0.012 · validate 0.003 · …`` for each
    ``spikard.access`` record (its documented attributes: ``status_code``,
    ``method``, ``target``, ``duration_ms``, ``cut``, ``stages_ms``)."""

    def __init__(self) -> None:
        super().__init__()
        self.out = Console(highlight=False, soft_wrap=True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.print(access_line(record.__dict__))
        except Exception:
            self.handleError(record)


def access_line(fields: dict[str, Any]) -> Text:
    status = int(fields.get("status_code", 0))
    line = Text.assemble(
        (str(status), _STATUS_STYLES.get(status // 100, "")),
        " ",
        (str(fields.get("method", "")), "bold"),
        " ",
        str(fields.get("target", "")),
        ("  cut" if fields.get("cut") else "", "bold red"),
        "  ",
        (f"{float(fields.get('duration_ms', 0.0)):.2f} ms", "bold"),
    )
    stages = fields.get("stages_ms") or {}
    shown = [f"{name} {stages[name]:.3f}" for name in STAGES if name in stages]
    if shown:
        line.append("  " + " · ".join(shown), style="dim")
    return line


class ServerMessages(logging.Handler):
    """``spikard.error`` records at warning and above, in colour, and exceptions as
    rich tracebacks. Records that repeat a supervisor event (``spikard_event``) are
    left out: ``spikard dev`` shows the event itself, once."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.out = Console(stderr=True, highlight=False)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "spikard_event", None):
            return
        try:
            if record.exc_info and record.exc_info[1] is not None:
                self.out.print(Text(record.getMessage(), style="bold red"))
                kind, value, traceback = record.exc_info
                assert kind is not None
                self.out.print(Traceback.from_exception(kind, value, traceback, width=min(self.out.width, 120)))
            else:
                style = "bold red" if record.levelno >= logging.ERROR else "yellow"
                self.out.print(Text(f"spikard: {record.getMessage()}", style=style))
        except Exception:
            self.handleError(record)


def log_config() -> dict[str, Any]:
    """The ``dictConfig`` ``spikard dev`` passes to ``spikard run --log-config``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "access": {"()": f"{__name__}.AccessLines"},
            "server": {"()": f"{__name__}.ServerMessages"},
        },
        "loggers": {
            "spikard.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "spikard.error": {"handlers": ["server"], "level": "INFO", "propagate": False},
            "spikard": {"handlers": ["server"], "level": "INFO", "propagate": False},
        },
    }

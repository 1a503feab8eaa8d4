"""The progress bar of long work (``spikard profile``, ``spikard bench``): on stderr,
gone when done, advanced by the seconds of load each run has driven."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(console: Console) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        yield progress


def ticker(progress: Progress, task: TaskID, seconds: float) -> Callable[[float], None]:
    """Advances the bar with the load's elapsed time, never past its share (the
    caller sets the bar at the share's end once the run is over)."""
    start = progress.tasks[task].completed

    def tick(elapsed: float) -> None:
        progress.update(task, completed=start + min(elapsed, seconds))

    return tick

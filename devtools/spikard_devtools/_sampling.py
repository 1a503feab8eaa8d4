"""The sampling phase's instrument: ``py-spy record --native`` attached to the serving
process, its raw stacks read back into a CPU split and drawn as flamegraphs."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from spikard_devtools import _flamegraph, _stacks

# How long py-spy may take to fail attaching before it is taken to be sampling.
ATTACH_WAIT = 1.0
PTRACE_HINT = (
    "Sampling needs ptrace: run as root, or allow it with 'sudo sysctl kernel.yama.ptrace_scope=0', "
    "or in Docker start the container with --cap-add SYS_PTRACE."
)


class SamplerFailed(Exception):
    """py-spy could not sample; the message says what it said and, when it is a
    matter of permissions, how to grant them."""


@dataclass
class Sampler:
    """A running py-spy, and the file its messages go to (a pipe nobody reads while
    it samples could fill)."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]

    def said(self) -> str:
        with self.output:
            self.output.seek(0)
            return self.output.read().decode(errors="replace")


def start(py_spy: Path, pid: int, raw: Path, *, rate: int, subprocesses: bool) -> Sampler:
    """py-spy recording ``pid`` (and its children with ``subprocesses``) into ``raw``."""
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--native",
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--full-filenames",
        "--output",
        str(raw),
    ]
    if subprocesses:
        command.append("--subprocesses")
    output = tempfile.TemporaryFile()  # noqa: SIM115 - read and closed by Sampler.said()
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    sampler = Sampler(process, output)
    # A py-spy that cannot attach exits at once; one still running after a moment samples.
    try:
        process.wait(ATTACH_WAIT)
    except subprocess.TimeoutExpired:
        return sampler
    said = sampler.said().strip()
    message = f"py-spy could not sample the serving process: {said[-400:]}"
    if "ermission" in said or "ptrace" in said.lower() or "not permitted" in said:
        message += f". {PTRACE_HINT}"
    raise SamplerFailed(message)


def stop(sampler: Sampler) -> str:
    """SIGINT, as Ctrl-C: py-spy writes what it sampled and exits. What it said."""
    process = sampler.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as stopped:
        process.kill()  # its session is its own: never left running
        process.wait()
        if isinstance(stopped, KeyboardInterrupt):
            raise
    said = sampler.said()
    if process.returncode not in (0, -signal.SIGINT):
        raise SamplerFailed(f"py-spy failed (exit status {process.returncode}): {said.strip()[-600:]}")
    return said


def runtime_folder() -> Path | None:
    """Where spikard's package is installed (or checked out) here."""
    spec = importlib.util.find_spec("spikard")
    locations = spec.submodule_search_locations if spec else None
    return Path(next(iter(locations))).resolve() if locations else None


@dataclass
class Drawn:
    """What the sampled stacks gave: the split, the proof that both sides were in one
    stack, the files written and what went wrong on the way."""

    split: _stacks.CpuSplit
    together: int
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def draw(raw: Path, app_folder: Path, stem: Path, *, fmt: str, inferno: Path | None, title: str, rate: int) -> Drawn:
    """Reads ``raw``; writes ``stem``.svg and/or ``stem``.speedscope.json (``fmt``)."""
    stacks = _stacks.read_stacks(raw.read_text(errors="replace"))
    classifier = _stacks.Classifier(app_folder, runtime_folder())
    split = _stacks.split(stacks, classifier)
    drawn = Drawn(split, _stacks.runtime_and_handler_together(stacks, classifier), {"stacks": str(raw)})
    # The pictures show the CPU, as the split does: threads waiting are left out.
    stacks = [(frames, count) for frames, count in stacks if not _stacks.waiting(frames)]
    subtitle = f"{split.busy:,} samples on the CPU at {rate} Hz (waiting threads left out), py-spy --native"
    if fmt in ("svg", "both") and inferno is not None:
        svg = stem.with_name(stem.name + ".svg")
        try:
            _flamegraph.svg(inferno, stacks, svg, title, subtitle)
            drawn.files["svg"] = str(svg)
        except subprocess.CalledProcessError as error:
            drawn.notes.append(f"inferno could not draw the SVG: {error.stderr.decode(errors='replace')[-300:]}")
        except (OSError, subprocess.SubprocessError) as error:
            drawn.notes.append(f"inferno could not draw the SVG: {error}")
    if fmt in ("speedscope", "both"):
        scope = stem.with_name(stem.name + ".speedscope.json")
        _flamegraph.speedscope(stacks, scope, title)
        drawn.files["speedscope"] = str(scope)
    return drawn

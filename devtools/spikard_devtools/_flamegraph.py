"""Sampled stacks to pictures: an SVG flamegraph (drawn by inferno, the renderer
py-spy itself uses) and a speedscope profile (speedscope's documented file format).

Both are made from py-spy's raw output, so one sampling run gives both and the CPU
split. Frame files are shortened (``tokio-1.54.1/src/...`` rather than the full path
into cargo's registry) so that names, not paths, fill the boxes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from spikard_devtools._stacks import Frame, short_path

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _label(frame: Frame) -> str:
    name = frame.readable_name
    return f"{name} ({short_path(frame.where)})" if frame.where else name


def collapsed(stacks: list[tuple[list[Frame], int]]) -> str:
    """Folded stacks (``a;b;c count`` per line), with shortened files."""
    return "".join(f"{';'.join(_label(f) for f in frames)} {count}\n" for frames, count in stacks if frames)


def svg(inferno: Path, stacks: list[tuple[list[Frame], int]], out: Path, title: str, subtitle: str) -> None:
    """Draws ``out``; ``subprocess.CalledProcessError`` (with inferno's message) on failure."""
    result = subprocess.run(
        [str(inferno), "--title", title, "--subtitle", subtitle, "--countname", "samples", "--minwidth", "0.05"],
        input=collapsed(stacks).encode(),
        capture_output=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    out.write_bytes(result.stdout)


def speedscope(stacks: list[tuple[list[Frame], int]], out: Path, name: str) -> None:
    """Writes ``out`` as a speedscope "sampled" profile: one sample per stack, weighted
    by how often it was seen."""
    frames: list[dict[str, object]] = []
    index: dict[tuple[str, str], int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in stacks:
        ids = []
        for frame in stack:
            key = (frame.name, frame.where)
            if key not in index:
                index[key] = len(frames)
                entry: dict[str, object] = {"name": frame.readable_name}
                file, _, line = frame.where.rpartition(":")
                if line.isdigit():
                    entry.update(file=short_path(file), line=int(line))
                elif frame.where:
                    entry["file"] = short_path(frame.where)
                frames.append(entry)
            ids.append(index[key])
        samples.append(ids)
        weights.append(count)
    document = {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": name,
        "exporter": "spikard profile",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
    }
    out.write_text(json.dumps(document))

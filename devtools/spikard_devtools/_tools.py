"""The programs ``spikard profile`` drives, at the versions it was built against, and
what to say when one is missing.

Each is looked for on PATH, beside the running interpreter (where ``pip`` puts
py-spy), and in cargo's ``bin`` folder (where ``cargo install`` puts oha and
inferno); an environment variable (``SPIKARD_OHA``, ``SPIKARD_PY_SPY``,
``SPIKARD_INFERNO``) names one explicitly. ``scripts/install-tools.sh`` in a spikard
checkout installs all three at these versions; it runs this file as a script, so it
imports only the standard library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    command: str
    pinned: str  # the version spikard profile is tested with
    purpose: str
    install: str
    env: str
    how: str  # "cargo" or "pip": how scripts/install-tools.sh installs it
    package: str  # the crate or the distribution

    def hint(self) -> str:
        return f"install it with: {self.install}  (or, in a spikard checkout: bash scripts/install-tools.sh)"


OHA = Tool(
    "oha",
    "1.16.0",
    "the load generator",
    "cargo install --locked oha@1.16.0",
    "SPIKARD_OHA",
    "cargo",
    "oha",
)
PY_SPY = Tool(
    "py-spy",
    "0.4.3",
    "the sampling profiler",
    "pip install 'spikard-devtools[profile]'  (py-spy==0.4.3)",
    "SPIKARD_PY_SPY",
    "pip",
    "py-spy",
)
INFERNO = Tool(
    "inferno-flamegraph",
    "0.12.8",
    "draws the SVG flamegraph",
    "cargo install --locked inferno@0.12.8",
    "SPIKARD_INFERNO",
    "cargo",
    "inferno",
)
TOOLS = (OHA, PY_SPY, INFERNO)


# What brings spikard bench's Python peers and its chart and statistics libraries.
BENCH_EXTRA = "pip install 'spikard-devtools[bench]'"


class ToolMissing(Exception):
    """The message says which tool, what it is for and how to install it."""


def find(tool: Tool) -> Path:
    """The tool's executable, or ``ToolMissing``."""
    named = os.environ.get(tool.env)
    if named is not None:
        path = Path(named)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ToolMissing(
            f"{tool.command} ({tool.purpose}): {tool.env}={named} is not an executable file; {tool.hint()}"
        )
    found = shutil.which(tool.command)
    if found:
        return Path(found)
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent, _cargo_bin()):
        candidate = folder / tool.command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolMissing(f"{tool.command} ({tool.purpose}) was not found; {tool.hint()}")


def _cargo_bin() -> Path:
    return Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"


def installed_version(tool: Tool, path: Path) -> str:
    """The tool's version as ``1.2.3``: what ``--version`` says, or for a crate whose
    programs have no such option (inferno), what cargo installed; '?' otherwise."""
    commands = [[str(path), "--version"]]
    if tool.how == "cargo" and path.parent == _cargo_bin():
        commands.append(["cargo", "install", "--list"])
    for command in commands:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        pattern = rf"^{re.escape(tool.package)} v(\d+\.\d+\.\d+)" if command[0] == "cargo" else r"(\d+\.\d+\.\d+)"
        match = re.search(pattern, out, re.MULTILINE)
        if match:
            return match.group(1)
    return "?"


if __name__ == "__main__":
    # For scripts/install-tools.sh: what to install, one tool per line.
    for tool in TOOLS:
        print(tool.command, tool.pinned, tool.how, tool.package)

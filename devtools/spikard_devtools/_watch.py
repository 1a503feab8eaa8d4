"""What ``spikard dev`` watches: ``.py`` files under the app's directories, plus
``--reload-include`` globs, never in the usual tool, environment and build folders
nor editor scratch files, minus ``--reload-exclude`` globs."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import Path

from watchfiles import Change

IGNORED_DIRS = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    "target",
    "build",
    "dist",
    "flamegraphs",
    "site-packages",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".idea",
    ".vscode",
)
# Bytecode, and the scratch files editors write beside the one being saved
# (vim swap and backup files, emacs locks and autosaves, JetBrains' safe-write copies).
IGNORED_FILES = ("*.pyc", "*.pyo", "*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "*.tmp", "*___jb_*___", "4913")


class SourceFilter:
    """Passes the changes that should reload the app (a ``watch_filter`` for watchfiles).
    Folders and globs apply to the path under the watched folder it is in, so a
    project that itself lives under a ``build`` folder still reloads."""

    def __init__(self, roots: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.roots = tuple(roots)
        self.include = ("*.py", *include)
        self.exclude = tuple(exclude)

    def __call__(self, change: Change, path: str) -> bool:
        relative = _under(Path(path), self.roots)
        parts = relative.parts
        if any(part in IGNORED_DIRS for part in parts[:-1]):
            return False
        name = parts[-1] if parts else path
        if any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED_FILES):
            return False
        if any(_matches(relative.as_posix(), name, pattern) for pattern in self.exclude):
            return False
        return any(_matches(relative.as_posix(), name, pattern) for pattern in self.include)


def _matches(path: str, name: str, pattern: str) -> bool:
    """A glob matches the file's name, or, when it names folders, its path under the watched folder."""
    return fnmatch.fnmatch(path, pattern) if "/" in pattern else fnmatch.fnmatch(name, pattern)


def _under(path: Path, roots: Sequence[Path]) -> Path:
    """``path`` relative to the watched folder it is in (the deepest, when nested)."""
    for root in sorted(roots, key=lambda r: len(r.parts), reverse=True):
        if path.is_relative_to(root):
            return path.relative_to(root)
    return path


def shown(paths: Iterable[str], roots: Sequence[Path], limit: int = 3) -> str:
    """The changed files, relative to the watched folder they are in, at most ``limit`` named."""
    names = sorted({str(_under(Path(path), roots)) for path in paths})
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")

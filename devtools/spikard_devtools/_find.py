"""Which app ``spikard dev`` serves when none is named, and where its code lives."""

from __future__ import annotations

from pathlib import Path

from spikard.loading import split_target

# Looked for in the working directory, in this order.
CANDIDATES = ("app.py", "main.py", "api.py", "app/main.py")


class NoApp(Exception):
    """No app was named and none of the usual files exists; the message says what was looked for."""


def find_app(named: str | None, here: Path, command: str = "spikard dev") -> str:
    """The app target to serve: ``named`` as given, or the first of the usual files."""
    if named:
        return named
    for candidate in CANDIDATES:
        if (here / candidate).is_file():
            return candidate
    looked = ", ".join(CANDIDATES)
    raise NoApp(f"no app named and none found in {here} (looked for {looked}); name one: {command} path/app.py")


def missing_file(target: str, here: Path) -> str | None:
    """The app file ``target`` names when it does not exist (for a clear error before
    anything starts); None when it exists or names a module."""
    location, _ = split_target(target)
    return location if location.endswith(".py") and not (here / location).is_file() else None


def app_directory(target: str, here: Path) -> Path:
    """Where the app's code lives: the file's folder, or for ``package.module`` the
    working directory (where it is imported from)."""
    location, _ = split_target(target)
    path = here / location
    if location.endswith(".py") or path.is_file():
        return path.resolve().parent
    return here.resolve()

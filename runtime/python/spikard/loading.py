"""Finding the app a command line names: ``path/app.py``, ``path/app.py:attr``,
``package.module:attr`` or ``package.module`` (attribute ``app`` by default)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from spikard.app import Spikard


@dataclass(frozen=True)
class FailedFrame:
    """One frame of the traceback of an app that failed to import."""

    filename: str
    lineno: int
    name: str
    line: str


class AppLoadError(Exception):
    """The app could not be loaded; the message is one line that says why.

    When the app's own code failed (a syntax error, an exception while importing),
    ``kind`` is the exception's type name, ``detail`` its message, ``filename`` and
    ``lineno`` where it happened (for a syntax error, the offending line), and
    ``frames`` the traceback from the app's module inward; ``kind`` is None for
    failures that are not the code's (no such file, no such attribute)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        detail: str = "",
        filename: str | None = None,
        lineno: int | None = None,
        frames: tuple[FailedFrame, ...] = (),
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail
        self.filename = filename
        self.lineno = lineno
        self.frames = frames

    def to_json(self) -> dict[str, Any]:
        """Everything said about the failure, as plain JSON values."""
        return {
            "message": str(self),
            "kind": self.kind,
            "detail": self.detail,
            "filename": self.filename,
            "lineno": self.lineno,
            "frames": [dataclasses.asdict(frame) for frame in self.frames],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppLoadError:
        frames = tuple(FailedFrame(**frame) for frame in data.get("frames", ()))
        return cls(
            data["message"],
            kind=data.get("kind"),
            detail=data.get("detail", ""),
            filename=data.get("filename"),
            lineno=data.get("lineno"),
            frames=frames,
        )


def _code_failure(message: str, error: BaseException) -> AppLoadError:
    """An ``AppLoadError`` for an exception the app's code raised while importing."""
    # The import machinery's own frames say nothing about the app.
    frames = tuple(
        FailedFrame(f.filename, f.lineno or 0, f.name, f.line or "")
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<frozen ") and f.filename != __file__
    )
    if isinstance(error, SyntaxError) and error.filename:
        filename, lineno = error.filename, error.lineno
        detail = error.msg
    elif frames:
        filename, lineno, detail = frames[-1].filename, frames[-1].lineno, str(error)
    else:
        filename, lineno, detail = None, None, str(error)
    return AppLoadError(
        message, kind=type(error).__name__, detail=detail, filename=filename, lineno=lineno, frames=frames
    )


def split_target(target: str) -> tuple[str, str]:
    """``"app.py:api"`` -> ``("app.py", "api")``; the attribute defaults to ``app``."""
    location, _, attribute = target.partition(":")
    if not location:
        raise AppLoadError(f"'{target}' does not name a module or file")
    return location, attribute or "app"


def _import(location: str) -> ModuleType:
    path = Path(location)
    if location.endswith(".py") or path.is_file():
        if not path.is_file():
            raise AppLoadError(f"no such file: {location}")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise AppLoadError(f"cannot import {location}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(location)


def _where(error: BaseException) -> str:
    if isinstance(error, SyntaxError) and error.filename:
        return f" ({error.filename}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


def load_app(target: str) -> Spikard:
    """Imports the module and returns its ``Spikard`` app, or raises ``AppLoadError``."""
    location, attribute = split_target(target)
    try:
        module = _import(location)
    except AppLoadError:
        raise
    except ModuleNotFoundError as error:
        if error.name and location.startswith(error.name):
            raise AppLoadError(f"no module named '{location}' (nor a file of that name)") from None
        message = f"cannot import '{location}': {type(error).__name__}: {error}{_where(error)}"
        raise _code_failure(message, error) from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        text = error.msg if isinstance(error, SyntaxError) else error
        message = f"cannot import '{location}': {type(error).__name__}: {text}{_where(error)}"
        raise _code_failure(message, error) from None
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise AppLoadError(f"'{location}' has no attribute '{attribute}'") from None
    if not isinstance(app, Spikard):
        kind = type(app).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise AppLoadError(f"'{location}:{attribute}' is {article} {kind}, not a spikard.Spikard app")
    return app

"""Finding the app a command line names: ``path/app.py``, ``path/app.py:attr``,
``package.module:attr`` or ``package.module`` (attribute ``app`` by default)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from spikard.app import Spikard


class AppLoadError(Exception):
    """The app could not be loaded; the message is one line that says why."""


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
        raise AppLoadError(f"cannot import '{location}': {type(error).__name__}: {error}{_where(error)}") from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        message = error.msg if isinstance(error, SyntaxError) else error
        raise AppLoadError(f"cannot import '{location}': {type(error).__name__}: {message}{_where(error)}") from None
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise AppLoadError(f"'{location}' has no attribute '{attribute}'") from None
    if not isinstance(app, Spikard):
        raise AppLoadError(f"'{location}:{attribute}' is a {type(app).__name__}, not a spikard.Spikard app")
    return app

"""``python -m spikard_devtools._routes APP``: the app's routes as JSON on stdout,
read from its plans (``app.routes``) in a process of their own, so that importing
the app runs none of its code in the tool that profiles it.

Prints ``{"routes": [...]}``, each route with its method, path, parameters (source,
key, scalar type, list or not, required, JSON Schema, default) and body; or, when the
app does not load, ``{"error": ...}`` as ``AppLoadError.to_json`` gives it, exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from spikard.loading import AppLoadError, load_app
from spikard.routing import BodyPlan, ParamPlan, RoutePlan


def _plain(value: Any) -> bool:
    """Whether ``value`` is sent as it is in a URL (a default of a parameter)."""
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, str | int | float | bool)


def _param(plan: ParamPlan) -> dict[str, Any]:
    plain = _plain(plan.default)
    return {
        "name": plan.name,
        "source": plan.source,
        "key": plan.key,
        "scalar": plan.scalar,
        "is_list": plan.is_list,
        "required": plan.required,
        "schema": plan.schema,
        "has_plain_default": plain and not plan.required,
        "default": plan.default if plain and not plan.required else None,
    }


def _body(plan: BodyPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "schema": plan.schema,
        "required": plan.required,
        "fields": [{"key": f.key, "required": f.required} for f in plan.fields],
    }


def describe(routes: list[RoutePlan]) -> list[dict[str, Any]]:
    return [
        {"method": r.method, "path": r.path, "params": [_param(p) for p in r.params], "body": _body(r.body)}
        for r in routes
    ]


class NotLoaded(Exception):
    """The app's routes could not be read; ``failure`` is the app's load failure
    (``AppLoadError.to_json``) when it did not import, for the caller to show."""

    def __init__(self, message: str, failure: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.failure = failure


def read(target: str, timeout: float) -> list[dict[str, Any]]:
    """The routes of the app ``target``, read by this module run in a process of its own."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "spikard_devtools._routes", target],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise NotLoaded(f"importing {target} took more than {timeout:.0f} s") from None
    try:
        document = json.loads(result.stdout)
    except ValueError:
        raise NotLoaded(f"could not read the app's routes:\n{result.stderr.strip()}") from None
    if "error" in document:
        raise NotLoaded("the app does not load", document["error"])
    routes: list[dict[str, Any]] = document["routes"]
    return routes


def main(argv: list[str]) -> int:
    # The app may print at import: its output goes to stderr, the JSON alone to stdout.
    out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    with out:
        try:
            app = load_app(argv[0])
        except AppLoadError as error:
            out.write(json.dumps({"error": error.to_json()}))
            return 1
        out.write(json.dumps({"routes": describe(app.routes)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The requests ``spikard profile`` sends: synthesised for every route from the
JSON Schemas of its plan (``app.routes``), or named with ``--url`` or
``--requests FILE``.

A synthesised request fills every path parameter and every required query, header,
cookie and body value with an ordinary valid value (``_examples``); optional
parameters go with their defaults when those are plain values, so that parsing and
validation do their usual work while the handler behaves as it does by default.
Routes that create (POST, PUT, PATCH) come before those that read, and DELETE last,
so that ``GET /items/1`` may find what ``POST /items`` made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from spikard_devtools._examples import FORMATS, Unsatisfiable, example

# Creating routes first, removing ones last; others in the app's order between.
METHOD_ORDER = {"POST": 0, "PUT": 1, "PATCH": 2, "DELETE": 9}
PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


@dataclass(frozen=True)
class Probe:
    """One request to send under load. ``route`` is the route it reaches, named as the
    runtime's statistics name it (``GET /items/{item_id}``), or None when it
    matches no route of the app."""

    method: str
    target: str  # path and query string
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    route: str | None = None
    source: str = "synthesised"

    @property
    def label(self) -> str:
        return f"{self.method} {self.target}"

    def to_json(self) -> dict[str, Any]:
        body = None if self.body is None else self.body.decode("utf-8", "replace")
        return {
            "method": self.method,
            "target": self.target,
            "headers": [list(pair) for pair in self.headers],
            "body": body,
            "route": self.route,
            "source": self.source,
        }


@dataclass
class RequestSet:
    probes: list[Probe] = field(default_factory=list)
    # Routes no request could be synthesised for: route -> why.
    skipped: dict[str, str] = field(default_factory=dict)


def route_name(route: dict[str, Any]) -> str:
    """The route as the runtime's statistics name it: method and template, without
    the parameters' converters (``GET /items/{item_id}``)."""
    return f"{route['method']} {PATH_PARAMETER.sub(lambda m: '{' + m.group(1) + '}', route['path'])}"


def synthesise(routes: list[dict[str, Any]]) -> RequestSet:
    """A request per route, from the plans ``_routes`` describes."""
    found = RequestSet()
    ordered = sorted(routes, key=lambda route: METHOD_ORDER.get(route["method"], 5))
    for route in ordered:
        if route["method"] in ("HEAD", "OPTIONS"):
            continue  # answered alongside GET, or by the runtime itself
        try:
            found.probes.append(_synthesise_one(route))
        except Unsatisfiable as why:
            found.skipped[route_name(route)] = str(why)
    return found


def _synthesise_one(route: dict[str, Any]) -> Probe:
    params = route["params"]
    path_values = {p["key"]: p for p in params if p["source"] == "path"}

    def fill(match: re.Match[str]) -> str:
        name, converter = match.group(1), match.group(2)
        plan = path_values.get(name)
        if converter == "path":
            return "example/path"
        if converter == "uuid":
            return FORMATS["uuid"]
        text = _text(_value_for(plan)) if plan else "1"
        return quote(text, safe="")

    path = PATH_PARAMETER.sub(fill, route["path"])
    query: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    for plan in params:
        if plan["source"] == "path":
            continue
        values = _param_values(plan)
        if plan["source"] == "query":
            query += [(plan["key"], value) for value in values]
        elif plan["source"] == "header":
            headers += [(plan["key"], value) for value in values]
        elif plan["source"] == "cookie":
            cookies += [f"{plan['key']}={value}" for value in values[:1]]
    if cookies:
        headers.append(("cookie", "; ".join(cookies)))
    body = None
    if route["body"] is not None:
        value = _body_value(route["body"])
        if value is not _ABSENT:
            body = json.dumps(value).encode()
            headers.append(("content-type", "application/json"))
    target = path + ("?" + urlencode(query) if query else "")
    return Probe(route["method"], target, tuple(headers), body, route_name(route))


_ABSENT = object()


def _value_for(plan: dict[str, Any]) -> Any:
    if plan.get("schema") is not None:
        value = example(plan["schema"])
        return value[0] if plan["is_list"] and isinstance(value, list) and value else value
    return {"int": 1, "float": 1.5, "bool": True}.get(plan["scalar"], "example")


def _param_values(plan: dict[str, Any]) -> list[str]:
    """The texts to send for a query, header or cookie parameter (none: left out)."""
    if not plan["required"]:
        if not plan.get("has_plain_default") or plan["default"] is None:
            return []
        default = plan["default"]
        return [_text(item) for item in default] if isinstance(default, list) else [_text(default)]
    if plan["is_list"] and plan.get("schema") is not None:
        value = example(plan["schema"])
        return [_text(item) for item in (value if isinstance(value, list) else [value])]
    return [_text(_value_for(plan))]


def _body_value(body: dict[str, Any]) -> Any:
    if body["schema"] is not None:
        return example(body["schema"])
    if body["fields"]:
        return {f["key"]: "example" for f in body["fields"] if f["required"]}
    return {} if body["required"] else _ABSENT


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)

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

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from spikard_devtools._examples import FORMATS, Unsatisfiable, example

# Creating routes first, removing ones last; others in the app's order between.
METHOD_ORDER = {"POST": 0, "PUT": 1, "PATCH": 2, "DELETE": 9}
# What a refused string is replaced with next, in turn: a schema may say only
# "string" of a value its type reads as a date, a time or an address (msgspec's
# schema of a datetime has no format, for one).
RETRY_STRINGS = (
    FORMATS["date-time"],
    FORMATS["date"],
    FORMATS["time"],
    FORMATS["uuid"],
    FORMATS["email"],
    FORMATS["uri"],
    FORMATS["ipv4"],
    FORMATS["duration"],
    "1",
    "2",
    "10",
    "1.5",
    "true",
)
# A path converter's pattern, for matching a named request to its route.
CONVERTER_PATTERNS = {"int": r"-?\d+", "float": r"-?\d+(?:\.\d+)?", "path": r".+", "uuid": r"[0-9a-fA-F-]{32,36}"}
PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


class BadRequests(ValueError):
    """A ``--url`` or ``--requests`` entry that cannot be sent; the message says which and why."""


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


def retried(probe: Probe, errors: list[dict[str, Any]], attempts: dict[str, int]) -> Probe | None:
    """``probe`` with each value the app refused (the ``loc`` of each error of its
    422 answer) replaced by the next value to try: other numbers for a number, other
    ordinary strings (``RETRY_STRINGS``) for a string; None when a refused value has
    had them all, or is not one this can change. ``attempts`` counts per location."""
    body = json.loads(probe.body) if probe.body else None
    path, _, query_text = probe.target.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    headers = list(probe.headers)
    for error in errors:
        loc = [str(part) if not isinstance(part, int) else part for part in error.get("loc", [])]
        if len(loc) < 2:
            return None
        where = loc[0]
        refused = _get_in(body, loc[1:]) if where == "body" else None
        candidates = _retry_values(refused)
        key = json.dumps(loc)
        attempt = attempts.get(key, 0)
        if attempt >= len(candidates):
            return None
        attempts[key] = attempt + 1
        value = candidates[attempt]
        if where == "body" and isinstance(body, dict | list):
            if not _set_in(body, loc[1:], value):
                return None
        elif where == "query":
            query = [(k, str(value) if k == loc[1] else v) for k, v in query]
        elif where == "header":
            headers = [(k, str(value) if k.lower() == str(loc[1]).lower() else v) for k, v in headers]
        else:
            return None
    new_body = json.dumps(body).encode() if body is not None else None
    target = path + ("?" + urlencode(query) if query else "")
    return dataclasses.replace(probe, target=target, headers=tuple(headers), body=new_body)


def _retry_values(refused: Any) -> tuple[Any, ...]:
    """What to try instead of a refused value: of its own type when it is a number
    (a validator may want it even, or large), else ordinary strings."""
    if isinstance(refused, bool):
        return (not refused,)
    if isinstance(refused, int):
        return (2, 10, 0, 100, 3, -1, 1000)
    if isinstance(refused, float):
        return (0.5, 2.0, 10.0, 0.1, 100.0)
    return RETRY_STRINGS


def _get_in(document: Any, loc: list[Any]) -> Any:
    for part in loc:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def _set_in(document: Any, loc: list[Any], value: Any) -> bool:
    for part in loc[:-1]:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return False
    try:
        document[loc[-1]] = value
    except (IndexError, TypeError):
        return False
    return True


# -- named requests -------------------------------------------------------------


def from_urls(pairs: list[list[str]]) -> list[Probe]:
    """``--url METHOD PATH`` pairs."""
    probes = []
    for method, target in pairs:
        _check(method, target, f"--url {method} {target}")
        probes.append(Probe(method.upper(), encoded(target), source="--url"))
    return probes


def from_file(path: Path) -> list[Probe]:
    """``--requests FILE``: a JSON list of objects with ``method`` and ``path``, and
    optionally ``headers`` (an object, or a list of [name, value] pairs) and ``body``
    (a string sent as it is, or any other JSON value sent as JSON)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BadRequests(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise BadRequests(f"{path} is not JSON: {error}") from None
    if not isinstance(entries, list) or not entries:
        raise BadRequests(f"{path}: expected a non-empty JSON list of requests, like {EXAMPLE_ENTRY}")
    return [_entry(entry, f"{path} entry {index}") for index, entry in enumerate(entries, 1)]


EXAMPLE_ENTRY = '[{"method": "POST", "path": "/items", "headers": {"x-token": "t"}, "body": {"name": "a"}}]'


def _entry(entry: Any, where: str) -> Probe:
    if not isinstance(entry, dict):
        raise BadRequests(f"{where}: expected an object with 'method' and 'path', got {type(entry).__name__}")
    unknown = set(entry) - {"method", "path", "headers", "body"}
    if unknown:
        raise BadRequests(f"{where}: unknown keys {sorted(unknown)} (known: method, path, headers, body)")
    method, target = entry.get("method", "GET"), entry.get("path")
    if not isinstance(method, str) or not isinstance(target, str):
        raise BadRequests(f"{where}: 'method' and 'path' must be strings")
    _check(method, target, where)
    raw_headers = entry.get("headers", {})
    if isinstance(raw_headers, dict):
        pairs = list(raw_headers.items())
    elif isinstance(raw_headers, list) and all(isinstance(p, list) and len(p) == 2 for p in raw_headers):
        pairs = [tuple(p) for p in raw_headers]
    else:
        raise BadRequests(f"{where}: 'headers' must be an object or a list of [name, value] pairs")
    headers = [(str(name), str(value)) for name, value in pairs]
    body = None
    if "body" in entry:
        if isinstance(entry["body"], str):
            body = entry["body"].encode()
        else:
            body = json.dumps(entry["body"]).encode()
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("content-type", "application/json"))
    return Probe(method.upper(), encoded(target), tuple(headers), body, source=where.split(" entry ")[0])


def _check(method: str, target: str, where: str) -> None:
    if not re.fullmatch(r"[A-Za-z]+", method):
        raise BadRequests(f"{where}: '{method}' is not an HTTP method")
    if not target.startswith("/"):
        raise BadRequests(f"{where}: the path must start with '/' (got '{target}')")
    if any(ord(c) < 0x20 or c == "\x7f" for c in target) or "#" in target:
        raise BadRequests(f"{where}: the path holds a control character or a fragment ('#')")


def encoded(target: str) -> str:
    """``target`` as sent on the wire: spaces and non-ASCII characters percent-encoded,
    what is already encoded left as it is."""
    return quote(target, safe="/?&=%:@!$'()*+,;~-._[]")


def assign_routes(probes: list[Probe], routes: list[dict[str, Any]]) -> list[Probe]:
    """Names the route each named request reaches, as the router would match it."""
    patterns = [(route, _template_pattern(route["path"])) for route in routes]
    assigned = []
    for probe in probes:
        path = probe.target.split("?", 1)[0]
        route = next(
            (route_name(r) for r, pattern in patterns if r["method"] == probe.method and pattern.fullmatch(path)),
            None,
        )
        assigned.append(Probe(probe.method, probe.target, probe.headers, probe.body, route, probe.source))
    return assigned


def _template_pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in PATH_PARAMETER.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        parts.append(f"(?:{CONVERTER_PATTERNS.get(match.group(2) or '', r'[^/]+')})")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))

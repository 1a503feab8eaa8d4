"""Requests named by the user: ``--url METHOD PATH`` and ``--requests FILE``, checked
before anything runs, and matched to the route each reaches as the router would."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from spikard_devtools._requests import PATH_PARAMETER, Probe, RequestSet, route_name, synthesise

# A path converter's pattern, for matching a named request to its route.
CONVERTER_PATTERNS = {"int": r"-?\d+", "float": r"-?\d+(?:\.\d+)?", "path": r".+", "uuid": r"[0-9a-fA-F-]{32,36}"}


class BadRequests(ValueError):
    """A ``--url`` or ``--requests`` entry that cannot be sent; the message says which and why."""


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """``--url`` and ``--requests``, as every command that sends requests to an app
    takes them."""
    group.add_argument(
        "--url",
        nargs=2,
        action="append",
        default=[],
        metavar=("METHOD", "PATH"),
        help="send METHOD PATH (repeatable), e.g. --url GET '/items/1?q=a'",
    )
    group.add_argument("--requests", type=Path, metavar="FILE", help="send the requests listed in FILE (JSON)")


def from_args(args: argparse.Namespace) -> list[Probe]:
    """``--url`` and ``--requests``, read (and refused when bad) before anything runs."""
    named = from_urls(args.url)
    if args.requests is not None:
        named += from_file(args.requests)
    return named


def requests_for(named: list[Probe], routes: list[dict[str, Any]]) -> RequestSet:
    """The named requests matched to their routes or, when none is named, one
    synthesised for every route."""
    return RequestSet(assign_routes(named, routes)) if named else synthesise(routes)


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
    return [_entry(entry, f"{path} entry {index}", str(path)) for index, entry in enumerate(entries, 1)]


# RFC 9110's token: what a header's name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
EXAMPLE_ENTRY = '[{"method": "POST", "path": "/items", "headers": {"x-token": "t"}, "body": {"name": "a"}}]'


def _entry(entry: Any, where: str, source: str) -> Probe:
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
    for name, value in headers:
        if not HEADER_NAME.fullmatch(name) or "\r" in value or "\n" in value:
            raise BadRequests(f"{where}: the header {name!r}: {value!r} cannot be sent (bad name, or a line break)")
    body = None
    if "body" in entry:
        if isinstance(entry["body"], str):
            body = entry["body"].encode()
        else:
            body = json.dumps(entry["body"]).encode()
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("content-type", "application/json"))
    return Probe(method.upper(), encoded(target), tuple(headers), body, source=source)


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
    """Names the route each named request reaches, as the router would match it: of
    the templates that match, the most specific, segment by segment (a fixed segment
    before a parameter, a parameter before a catch-all ``{p:path}``)."""
    patterns = sorted(
        ((route, _template_pattern(route["path"])) for route in routes),
        key=lambda pair: _specificity(pair[0]["path"]),
    )
    assigned = []
    for probe in probes:
        path = probe.target.split("?", 1)[0]
        route = next(
            (route_name(r) for r, pattern in patterns if r["method"] == probe.method and pattern.fullmatch(path)),
            None,
        )
        assigned.append(dataclasses.replace(probe, route=route))
    return assigned


def _specificity(template: str) -> list[int]:
    """Per segment: 0 fixed, 1 a parameter, 2 a catch-all; lower sorts first."""
    ranks = []
    for segment in template.strip("/").split("/"):
        match = PATH_PARAMETER.search(segment)
        ranks.append(0 if match is None else 2 if match.group(2) == "path" else 1)
    return ranks


def _template_pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in PATH_PARAMETER.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        parts.append(f"(?:{CONVERTER_PATTERNS.get(match.group(2) or '', r'[^/]+')})")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))

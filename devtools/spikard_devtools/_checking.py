"""Each request sent once before the load: an answer to show, a synthesised request
the app refuses tried again with other ordinary values, and a request still refused
left out (its load would profile the refusal)."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from spikard_devtools._examples import FORMATS
from spikard_devtools._findings import ProbeResult
from spikard_devtools._requests import Probe
from spikard_devtools._served import Serving

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


def retried(probe: Probe, errors: list[dict[str, Any]], attempts: dict[str, int]) -> Probe | None:
    """``probe`` with each value the app refused (the ``loc`` of each error of its
    422 answer) replaced by the next value to try: other numbers for a number, other
    ordinary strings (``RETRY_STRINGS``) for a string; None when a refused value has
    had them all, or is not one this can change. ``attempts`` counts per location."""
    if not errors:
        return None  # a 422 that names no value (the handler's own): nothing to change
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
    changed = dataclasses.replace(probe, target=target, headers=tuple(headers), body=new_body)
    return None if changed == probe else changed


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
    parent = _get_in(document, loc[:-1])  # None, where the path leads nowhere
    try:
        parent[loc[-1]] = value
    except (IndexError, TypeError):
        return False
    return True


# How many times one request is sent before the load, retries included.
MAX_TRIES = 40
# The last line of a logged traceback: ``RuntimeError: kaboom``.
EXCEPTION_LINE = re.compile(r"^\w[\w.]*(?:Error|Exception)\b")


def check(results: list[ProbeResult], server: Serving) -> list[str]:
    """Checks every request in ``results`` (updating each); returns notes for the
    report about requests profiled although they failed (a named request's 404 may
    be what its user wants to see)."""
    notes = []
    for result in results:
        _check_one(result, server)
        if result.skipped or result.check is None:
            continue
        status = result.check.status
        if status >= 400:
            said = _reason(result.check.body, status, server)
            notes.append(f"{result.probe.label} answered {status} before the load ({said}); loaded as it is")
    return notes


def _check_one(result: ProbeResult, server: Serving) -> None:
    attempts: dict[str, int] = {}
    first_refusal: bytes | None = None
    original = result.probe
    for _ in range(MAX_TRIES):
        try:
            result.check = server.send(result.probe)
        except (OSError, http.client.HTTPException, ValueError) as error:
            result.skipped = f"not answered: {error}"
            return
        if result.check.status != 422 or result.probe.source != "synthesised":
            break
        if first_refusal is None:
            first_refusal = result.check.body
        retry = retried(result.probe, problem(result.check.body).get("errors") or [], attempts)
        if retry is None:
            break
        result.probe = retry
    if result.check is None:
        return
    status = result.check.status
    if status == 422 and first_refusal is not None:
        # What the app said of the request as first synthesised, not of the last guess.
        result.probe = original
        result.skipped = f"answered 422 before the load: {detail(first_refusal)}"
    elif status >= 400 and result.probe.source == "synthesised" and status != 404:
        result.skipped = f"answered {status} before the load: {_reason(result.check.body, status, server)}"


def _reason(body: bytes, status: int, server: Serving) -> str:
    """The answer's detail; for a 500, the exception the server logged, when it did."""
    said = detail(body)
    if status >= 500:
        lines = server.output().splitlines()
        logged = [line.strip() for line in lines if EXCEPTION_LINE.match(line)]
        if logged:
            said += f"; the server logged {logged[-1][:300]}"
    return said


def problem(body: bytes) -> dict[str, Any]:
    """The answer as a JSON object (a problem document), or empty."""
    with contextlib.suppress(ValueError):
        document = json.loads(body)
        if isinstance(document, dict):
            return document
    return {}


def detail(body: bytes) -> str:
    found = problem(body)
    if not found:
        return body[:200].decode("utf-8", "replace")
    said = str(found.get("detail") or found.get("title") or "")
    errors = found.get("errors")
    return f"{said} {json.dumps(errors)[:300]}" if errors else said[:300]

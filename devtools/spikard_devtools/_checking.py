"""Each request sent once before the load: an answer to show, a synthesised request
the app refuses tried again with other ordinary values, and a request still refused
left out (its load would profile the refusal)."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from spikard_devtools import _requests
from spikard_devtools._profile_report import ProbeResult
from spikard_devtools._served import ServedApp

# The last line of a logged traceback: ``RuntimeError: kaboom``.
EXCEPTION_LINE = re.compile(r"^\w[\w.]*(?:Error|Exception)\b")


def check(results: list[ProbeResult], server: ServedApp) -> list[str]:
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
            notes.append(f"{result.probe.label} answered {status} before the load ({said}); profiled as it is")
    return notes


def _check_one(result: ProbeResult, server: ServedApp) -> None:
    attempts: dict[str, int] = {}
    first: tuple[ProbeResult, bytes] | None = None
    original = result.probe
    while True:
        try:
            result.check = server.send(result.probe)
        except OSError as error:
            result.skipped = f"not answered: {error}"
            return
        if result.check.status != 422 or result.probe.source != "synthesised":
            break
        if first is None:
            first = (result, result.check.body)
        retry = _requests.retried(result.probe, problem(result.check.body).get("errors") or [], attempts)
        if retry is None:
            break
        result.probe = retry
    status = result.check.status
    if status == 422 and first is not None:
        # What the app said of the request as first synthesised, not of the last guess.
        result.probe = original
        result.skipped = f"answered 422 before the load: {detail(first[1])}"
    elif status >= 400 and result.probe.source == "synthesised" and status != 404:
        result.skipped = f"answered {status} before the load: {_reason(result.check.body, status, server)}"


def _reason(body: bytes, status: int, server: ServedApp) -> str:
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

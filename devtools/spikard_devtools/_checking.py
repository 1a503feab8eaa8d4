"""Each request sent once before the load: an answer to show, a synthesised request
the app refuses tried again with other ordinary values, and a request still refused
left out (its load would profile the refusal)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from spikard_devtools import _requests
from spikard_devtools._profile_report import ProbeResult
from spikard_devtools._served import ServedApp


def check(results: list[ProbeResult], server: ServedApp) -> list[str]:
    """Checks every request in ``results`` (updating each); returns notes for the
    report about requests profiled although they failed (a named request's 404 may
    be what its user wants to see)."""
    notes = []
    for result in results:
        attempts: dict[str, int] = {}
        while True:
            try:
                result.check = server.send(result.probe)
            except OSError as error:
                result.skipped = f"not answered: {error}"
                break
            if result.check.status != 422 or result.probe.source != "synthesised":
                break
            errors = problem(result.check.body).get("errors") or []
            retry = _requests.retried(result.probe, errors, attempts)
            if retry is None:
                break
            result.probe = retry
        if result.skipped or result.check is None:
            continue
        status = result.check.status
        if status == 422 or (status >= 400 and result.probe.source == "synthesised" and status != 404):
            result.skipped = f"answered {status} before the load: {detail(result.check.body)}"
        elif status >= 400:
            said = detail(result.check.body)
            notes.append(f"{result.probe.label} answered {status} before the load ({said}); profiled as it is")
    return notes


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

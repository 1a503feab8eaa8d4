"""Exceptions a handler raises to answer with an error, and the one the runtime
raises (to an app's own handler) for a request that failed validation."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class HTTPException(Exception):
    """``raise HTTPException(404, "Item not found")``: the request is answered with
    that status as ``application/problem+json``, ``detail`` kept as given, with
    ``headers`` added."""

    def __init__(self, status_code: int, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class RequestValidationError(Exception):
    """A request whose parameters or body failed validation. ``errors()`` lists
    ``{"loc", "msg", "type", "input"?}`` per failing field, as the 422 does.

    Raised only to an app's own ``@app.exception_handler(RequestValidationError)``;
    without one, the runtime answers the 422 itself without entering Python."""

    def __init__(self, errors: list[dict[str, Any]], body: Any = None) -> None:
        super().__init__(errors)
        self._errors = errors
        self.body = body

    def errors(self) -> list[dict[str, Any]]:
        return self._errors

    def __str__(self) -> str:
        lines = [f"{len(self._errors)} validation error(s):"]
        lines += [f"  {list(e.get('loc', []))}: {e.get('msg')}" for e in self._errors]
        return "\n".join(lines)

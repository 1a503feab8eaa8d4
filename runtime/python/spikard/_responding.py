"""The Python half of answering, called by the runtime only where a route needs it:
merging a handler's ``response: Response`` parameter into its result, an app's
handler for validation errors, and the objects the runtime builds per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from spikard._exception_handling import bind_handler, find_handler
from spikard.exceptions import HTTPException, RequestValidationError
from spikard.responses import JSONResponse, Response

if TYPE_CHECKING:
    from spikard.app import Spikard
    from spikard.requests import Request


def new_sub_response() -> Response:
    """The ``response: Response`` a handler may take to set status, headers and
    cookies on the response its return value becomes."""
    response = Response()
    response.status_code = None  # type: ignore[assignment]  # None: the route's own
    return response


def finish_response(result: Any, sub: Response, status_code: int, serialize: Callable[[Any], Any] | None) -> Response:
    """The handler's result with what it set on its ``response`` parameter."""
    if isinstance(result, Response):
        response = result
    else:
        if serialize is not None:
            result = serialize(result)
        response = JSONResponse(result, status_code=status_code)
    if sub.status_code is not None:
        response.status_code = sub.status_code
    for name, value in sub.headers.raw():
        if name == "set-cookie":
            response.headers.append(name, value)
        else:
            response.headers[name] = value
    return response


def validation_error_handler(app: Spikard) -> Callable[[list[dict[str, Any]], Any], Any] | None:
    """When the app handles ``RequestValidationError`` itself: ``(errors, body) ->
    (request -> awaitable Response)``; otherwise ``None`` and the runtime answers
    invalid requests without entering Python."""
    handler = find_handler(app.exception_handlers, RequestValidationError([]))
    if handler is None:
        return None

    def for_errors(errors: list[dict[str, Any]], body: Any) -> Callable[[Request], Awaitable[Response]]:
        return bind_handler(handler, RequestValidationError(errors, body=body))

    return for_errors


def status_handler(app: Spikard) -> Callable[[int, list[str]], Any] | None:
    """When the app registered handlers that apply to requests no route takes
    (``@app.exception_handler(404)``, or for ``HTTPException``): ``(status,
    allowed methods) -> (request -> awaitable Response) | None``."""
    handlers = app.exception_handlers
    if not any(isinstance(key, int) or key is HTTPException for key in handlers):
        return None

    def for_status(status: int, allowed: list[str]) -> Callable[[Request], Awaitable[Response]] | None:
        headers = {"allow": ", ".join(allowed)} if allowed else None
        exc = HTTPException(status, headers=headers)
        handler = find_handler(handlers, exc)
        return bind_handler(handler, exc) if handler is not None else None

    return for_status

"""What a handler's exception becomes: an app's own exception handler, the
problem response of an ``HTTPException``, or (``None``) a 500 reported by the
runtime. Called by the runtime only when a handler raised."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from spikard.encoding import encode_json
from spikard.exceptions import HTTPException, RequestValidationError
from spikard.responses import Response

if TYPE_CHECKING:
    from spikard.requests import Request

# Exceptions with an answer of their own (a problem response), unless the app
# registers a handler for them or a subclass.
_ANSWERED_BY_DEFAULT = (HTTPException, RequestValidationError)

ExceptionHandler = Callable[["Request", Any], "Response | Awaitable[Response]"]


def problem_response(status_code: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem, as the runtime's own errors are."""
    try:
        title = HTTPStatus(status_code).phrase
    except ValueError:
        title = "Error"
    body = {"type": "about:blank", "title": title, "status": status_code, "detail": detail}
    response = Response(encode_json(body), status_code=status_code, headers=headers)
    response.media_type = "application/problem+json"
    return response


def find_handler(handlers: dict[Any, ExceptionHandler], exc: BaseException) -> ExceptionHandler | None:
    """The handler registered for the exception's class or nearest base; for an
    ``HTTPException`` a handler registered for its status code comes first."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
        if cls in _ANSWERED_BY_DEFAULT:
            # As in FastAPI: a handler for Exception does not take these over.
            return None
    return None


def for_exception(handlers: dict[Any, ExceptionHandler], exc: BaseException) -> Any:
    """``Response``: answer with it. A callable: the runtime calls it with the
    request and answers with what it returns. ``None``: a fault (500)."""
    handler = find_handler(handlers, exc)
    if handler is not None:
        return bind_handler(handler, exc)
    if isinstance(exc, HTTPException):
        return problem_response(exc.status_code, exc.detail, exc.headers)
    return None


def bind_handler(handler: ExceptionHandler, exc: BaseException) -> Callable[[Request], Awaitable[Any]]:
    async def run(request: Request) -> Any:
        result = handler(request, exc)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(
                f"exception handler {getattr(handler, '__qualname__', handler)!r} returned "
                f"{type(result).__name__}, not a Response"
            )
        return result

    return run

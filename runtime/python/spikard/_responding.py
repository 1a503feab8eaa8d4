"""The Python half of answering: ``Answers``, what the runtime calls into for one app
(encoding results, building requests and responses, exceptions, the app's own error
handlers), each part called only where a request needs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from spikard import encoding
from spikard._errors import report_error
from spikard._exception_handling import bind_handler, find_handler, for_exception
from spikard._rejections import rejection_errors
from spikard.exceptions import HTTPException, RequestValidationError
from spikard.requests import Request
from spikard.responses import JSONResponse, Response

if TYPE_CHECKING:
    from spikard.app import Spikard

# (errors, body) -> (request -> awaitable Response)
ValidationErrorHandler = Callable[[list[dict[str, Any]], Any], Callable[[Request], Awaitable[Response]]]
# (status, allowed methods) -> (request -> awaitable Response) | None
StatusHandler = Callable[[int, list[str]], Callable[[Request], Awaitable[Response]] | None]


@dataclass(frozen=True)
class Answers:
    """What the runtime (``convert.rs``, ``failures.rs``) calls into to answer the
    requests of one app. ``Answers.for_app`` makes it."""

    app: Spikard
    # Where a proxy mounts the app (``--root-path``), for ``request.url``.
    root_path: str
    # exception -> a Response to send | (request -> awaitable Response) | None (a 500).
    for_exception: Callable[[BaseException], Any]
    # When the app handles RequestValidationError itself; None: the runtime answers 422.
    validation_error_handler: ValidationErrorHandler | None
    # When the app answers requests no route takes; None: the runtime's own 404/405.
    for_status: StatusHandler | None
    # Results the runtime found free of bytes, and any result, as JSON bytes.
    encode: Callable[[Any], bytes] = encoding.encode_plain
    encode_json: Callable[[Any], bytes] = encoding.encode_json
    # Called with (method, path, query, headers, client, body, path_params, app,
    # scheme, root_path) for a handler that takes the request.
    request_type: type[Request] = Request
    response_type: type[Response] = Response
    # (exception, where) -> its traceback, after logging it to ``spikard.error``.
    report_error: Callable[[BaseException, str], str] = report_error
    # (exception, loc) -> the 422's ``errors`` for a value a Python type refused.
    rejection_errors: Callable[[BaseException, list[Any]], list[dict[str, Any]]] = rejection_errors

    @classmethod
    def for_app(cls, app: Spikard, root_path: str = "") -> Answers:
        return cls(
            app=app,
            root_path=root_path.rstrip("/"),
            for_exception=partial(for_exception, app.exception_handlers),
            validation_error_handler=validation_error_handler(app),
            for_status=status_handler(app),
        )

    @staticmethod
    def new_sub_response() -> Response:
        """The ``response: Response`` a handler may take to set status, headers and
        cookies on the response its return value becomes."""
        response = Response()
        response.status_code = None  # type: ignore[assignment]  # None: the route's own
        return response

    @staticmethod
    def finish_response(
        result: Any, sub: Response, status_code: int, serialize: Callable[[Any], Any] | None
    ) -> Response:
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


def validation_error_handler(app: Spikard) -> ValidationErrorHandler | None:
    """When the app handles ``RequestValidationError`` itself: ``(errors, body) ->
    (request -> awaitable Response)``; otherwise ``None`` and the runtime answers
    invalid requests without entering Python."""
    handler = find_handler(app.exception_handlers, RequestValidationError([]))
    if handler is None:
        return None

    def for_errors(errors: list[dict[str, Any]], body: Any) -> Callable[[Request], Awaitable[Response]]:
        return bind_handler(handler, RequestValidationError(errors, body=body))

    return for_errors


def status_handler(app: Spikard) -> StatusHandler | None:
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

"""The application object: routes registered with decorators or routers, exception
handlers, lifecycle hooks, ``app.state`` and ``run()``."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from spikard._exception_handling import ExceptionHandler
from spikard._plan import RoutePlan
from spikard.datastructures import State
from spikard.routers import Router

Hook = TypeVar("Hook", bound=Callable[..., Any])
Lifespan = Callable[["Spikard"], contextlib.AbstractAsyncContextManager[Any]]


class Spikard(Router):
    """A spikard application.

    ``app = Spikard()``; ``@app.get("/items/{item_id:int}")`` registers a handler;
    ``app.include_router(router)`` adds a router's routes; ``app.run()`` serves it
    (``spikard run app.py`` does the same from a shell).

    Startup and shutdown work (database pools, HTTP clients) goes in
    ``@app.on_startup`` / ``@app.on_shutdown`` functions or a ``lifespan`` async
    context manager; they run on the event loop the handlers run on, in every
    worker process, and keep what they make in ``app.state``.
    """

    complete_paths = True

    def __init__(
        self,
        *,
        debug: bool = False,
        lifespan: Lifespan | None = None,
        on_startup: list[Callable[[], Any]] | None = None,
        on_shutdown: list[Callable[[], Any]] | None = None,
        exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
    ) -> None:
        super().__init__()
        self.debug = debug
        self.state = State()
        self.lifespan = lifespan
        self.startup_hooks: list[Callable[[], Any]] = list(on_startup or [])
        self.shutdown_hooks: list[Callable[[], Any]] = list(on_shutdown or [])
        self.exception_handlers: dict[Any, ExceptionHandler] = dict(exception_handlers or {})
        self._lifespan_exit: contextlib.AsyncExitStack | None = None

    @property
    def routes(self) -> list[RoutePlan]:
        """Every route's plan, as the runtime serves them."""
        return self.plans()

    # Lifecycle -------------------------------------------------------------

    def on_startup(self, hook: Hook) -> Hook:
        """``@app.on_startup``: run ``hook`` (sync or async) before serving."""
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """``@app.on_shutdown``: run ``hook`` after the last request is answered."""
        self.shutdown_hooks.append(hook)
        return hook

    def on_event(self, event: str) -> Callable[[Hook], Hook]:
        """FastAPI's ``@app.on_event("startup" | "shutdown")``."""
        if event == "startup":
            return self.on_startup
        if event == "shutdown":
            return self.on_shutdown
        raise ValueError(f"unknown event {event!r}: use 'startup' or 'shutdown'")

    async def startup(self) -> None:
        """Runs the lifespan's entry, then the startup hooks, in order."""
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        self._lifespan_exit = stack
        try:
            if self.lifespan is not None:
                state = await stack.enter_async_context(self.lifespan(self))
                if isinstance(state, Mapping):
                    self.state.__dict__.update(state)
            for hook in self.startup_hooks:
                await _call(hook)
        except BaseException:
            self._lifespan_exit = None
            await stack.aclose()
            raise

    async def shutdown(self) -> None:
        """Runs the shutdown hooks, then the lifespan's exit."""
        try:
            for hook in self.shutdown_hooks:
                await _call(hook)
        finally:
            stack, self._lifespan_exit = self._lifespan_exit, None
            if stack is not None:
                await stack.aclose()

    # Errors ----------------------------------------------------------------

    def exception_handler(self, exc_class_or_status: type[BaseException] | int) -> Callable[[Hook], Hook]:
        """``@app.exception_handler(ItemMissing)``: ``handler(request, exc)`` returns
        the ``Response`` for that exception (or an ``HTTPException`` status code)."""

        def register(handler: Hook) -> Hook:
            self.add_exception_handler(exc_class_or_status, handler)
            return handler

        return register

    def add_exception_handler(self, exc_class_or_status: type[BaseException] | int, handler: ExceptionHandler) -> None:
        if not (isinstance(exc_class_or_status, int) or issubclass(exc_class_or_status, BaseException)):
            raise TypeError("exception_handler takes an exception class or an HTTP status code")
        self.exception_handlers[exc_class_or_status] = handler

    # Serving ---------------------------------------------------------------

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        debug: bool | None = None,
        log_level: str = "info",
        **options: Any,
    ) -> None:
        """Serves the app on the calling (main) thread until Ctrl-C or SIGTERM;
        in-flight requests finish first. ``options`` are ``spikard run``'s connection,
        log and proxy settings by their option names (``keep_alive=5.0``,
        ``access_log=False``, ``proxy_headers=True``, ``root_path="/api"``, ...).
        ``spikard run`` does the same from a shell."""
        from spikard import _logging
        from spikard._server import ServeOptions, bind_socket, serve_main

        _logging.configure_logging(log_level)
        settings = ServeOptions(debug=self.debug if debug is None else debug, **options)
        with bind_socket(host, port) as sock:
            serve_main(self, sock, settings)


async def _call(hook: Callable[[], Any]) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result

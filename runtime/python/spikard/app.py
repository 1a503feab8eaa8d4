"""The application object: routes registered with decorators, and ``run()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from spikard._plan import RoutePlan
from spikard.routing import plan_route

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Spikard:
    """A spikard application.

    ``app = Spikard()``; ``@app.get("/items/{item_id:int}")`` registers a handler;
    ``app.run()`` serves it (``spikard run app.py`` does the same from a shell).
    """

    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self.routes: list[RoutePlan] = []

    def route(self, path: str, *, methods: list[str], status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            for method in methods:
                self.routes.append(plan_route(method.upper(), path, endpoint, status_code))
            return endpoint

        return register

    def get(self, path: str, *, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["GET"], status_code=status_code)

    def post(self, path: str, *, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["POST"], status_code=status_code)

    def put(self, path: str, *, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["PUT"], status_code=status_code)

    def patch(self, path: str, *, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["PATCH"], status_code=status_code)

    def delete(self, path: str, *, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["DELETE"], status_code=status_code)

    def run(self, host: str = "127.0.0.1", port: int = 8000, *, debug: bool | None = None) -> None:
        """Serves the app on the calling (main) thread until Ctrl-C or SIGTERM;
        in-flight requests finish first. ``spikard run`` does the same from a shell."""
        from spikard._server import ServeOptions, bind_socket, serve_main

        with bind_socket(host, port) as sock:
            serve_main(self, sock, ServeOptions(debug=self.debug if debug is None else debug))

"""``Router``: a group of routes under a common prefix, registered with the same
decorators as the app and added to it with ``app.include_router(router)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from spikard._plan import RoutePlan
from spikard.routing import UNSET, plan_route

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteDef:
    """A route as it was declared, before prefixes are applied."""

    method: str
    path: str
    endpoint: Callable[..., Any]
    status_code: int | None
    response_model: Any
    tags: tuple[str, ...]


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"a router prefix must start with '/' and not end with '/': {prefix!r}")
    return prefix


def _join(prefix: str, path: str) -> str:
    """As FastAPI joins them: ``/items`` + ``/`` is ``/items/``."""
    return prefix + path


class Router:
    """``router = Router(prefix="/items", tags=["items"])``; ``@router.get("/{item_id}")``;
    ``app.include_router(router)`` serves it at ``/items/{item_id}``."""

    # A router's paths are complete only once it is included in the app (an outer
    # prefix may declare path parameters its handlers read), so its handlers are
    # checked then; the app checks its own where they are declared.
    complete_paths = False

    def __init__(self, *, prefix: str = "", tags: Sequence[str] | None = None) -> None:
        self.prefix = _check_prefix(prefix)
        self.tags = tuple(tags or ())
        self.route_defs: list[RouteDef] = []

    def route(
        self,
        path: str,
        *,
        methods: Sequence[str],
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            for method in methods:
                route = RouteDef(
                    method.upper(), path, endpoint, status_code, response_model, (*self.tags, *(tags or ()))
                )
                if self.complete_paths:
                    # Planned now so that a handler spikard cannot serve fails where it is declared.
                    _plan(route, _join(self.prefix, path))
                self.route_defs.append(route)
            return endpoint

        return register

    def get(
        self,
        path: str,
        *,
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["GET"], status_code=status_code, response_model=response_model, tags=tags)

    def post(
        self,
        path: str,
        *,
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["POST"], status_code=status_code, response_model=response_model, tags=tags)

    def put(
        self,
        path: str,
        *,
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["PUT"], status_code=status_code, response_model=response_model, tags=tags)

    def patch(
        self,
        path: str,
        *,
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["PATCH"], status_code=status_code, response_model=response_model, tags=tags)

    def delete(
        self,
        path: str,
        *,
        status_code: int | None = None,
        response_model: Any = UNSET,
        tags: Sequence[str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, methods=["DELETE"], status_code=status_code, response_model=response_model, tags=tags)

    def include_router(self, router: Router, *, prefix: str = "", tags: Sequence[str] | None = None) -> None:
        """Adds ``router``'s routes under ``prefix`` + the router's own prefix."""
        outer = _check_prefix(prefix)
        for route in router.route_defs:
            full = replace(
                route,
                path=_join(outer, _join(router.prefix, route.path)),
                tags=(*(tags or ()), *route.tags),
            )
            if self.complete_paths:
                _plan(full, _join(self.prefix, full.path))
            self.route_defs.append(full)

    def plans(self) -> list[RoutePlan]:
        """The plans the runtime serves, each path under this router's prefix."""
        return [_plan(route, _join(self.prefix, route.path)) for route in self.route_defs]


def _plan(route: RouteDef, path: str) -> RoutePlan:
    return plan_route(route.method, path, route.endpoint, route.status_code, route.response_model)

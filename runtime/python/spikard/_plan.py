"""Route plans: what the runtime is told about each route, derived once at startup.

The native module reads these attributes (``runtime/python/src/plan.rs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# Where a parameter is read from, and what its text is coerced to; plan.rs matches
# these strings (the stub _spikard.pyi types them the same).
ParamSource = Literal["path", "query", "header", "cookie"]
Scalar = Literal["str", "int", "float", "bool"]


@dataclass(frozen=True, slots=True)
class ParamPlan:
    """A path, query, header or cookie parameter."""

    name: str
    source: ParamSource
    key: str  # the query key, header name, cookie name or path parameter read
    scalar: Scalar  # what the text is coerced to
    is_list: bool
    required: bool
    schema: dict[str, Any] | None  # constraints checked in Rust after coercion
    default: Any
    converter: Callable[[Any], Any] | None  # JSON value -> annotated type


@dataclass(frozen=True, slots=True)
class BodyField:
    """One parameter filled from a key of an object body (embedded bodies)."""

    name: str
    key: str
    required: bool
    default: Any
    converter: Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """The JSON body: one parameter receives it whole, or (``fields``) each of
    several parameters receives one key of it."""

    name: str
    schema: dict[str, Any] | None
    required: bool
    default: Any
    converter: Callable[[Any], Any] | None
    fields: tuple[BodyField, ...] = ()
    # The body's JSON numbers made as this type in Rust (a body of ``float``, ``int``
    # or a list or str-keyed dict of one), so no converter copies it; None: as written.
    numbers: Literal["int", "float"] | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    method: str
    path: str
    endpoint: Callable[..., Any]
    is_async: bool
    status_code: int
    params: tuple[ParamPlan, ...]
    body: BodyPlan | None
    # The handler's parameters that receive the Request / a Response to amend.
    request_param: str | None = None
    response_param: str | None = None
    # Result -> the response model's value (drops undeclared fields); None: as returned.
    serialize: Callable[[Any], Any] | None = None
    # A result of exactly this type needs no ``serialize``.
    model_type: type | None = None
    # False when the response model proves the value sent holds no bytes.
    result_may_hold_bytes: bool = True

"""Response models: a route's declared return type (``-> Item``) or
``response_model=``. The result is converted to it before it is sent, so fields
the model does not declare are dropped, as in FastAPI; a result that cannot be
converted is a fault (500)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from spikard._bodies import PLAIN_KEPT, converter_for, is_nested, may_hold_bytes
from spikard.pydantic_support import pydantic_serializer
from spikard.responses import Response

# Returned as they are: converting to these would drop nothing.
_AS_RETURNED = {None, type(None), Any, object, dict, list, str, int, float, bool, bytes}


@dataclass(frozen=True)
class ResponseModel:
    """How a route's result becomes the value sent."""

    # result -> value to send; None: sent as returned.
    serialize: Callable[[Any], Any] | None = None
    # A result of exactly this type is sent as it is (the runtime checks, in Rust).
    exact_type: type | None = None
    # Whether the value sent may hold bytes (which need FastAPI's text encoding).
    may_hold_bytes: bool = True


def response_model(model: Any, where: str) -> ResponseModel:
    """The plan for a route whose response model is ``model``."""
    if model in _AS_RETURNED or _is_response_class(model):
        return ResponseModel()
    if typing.get_origin(model) in (typing.Union, types.UnionType) and any(
        _is_response_class(m) for m in typing.get_args(model)
    ):
        return ResponseModel()  # -> Response | dict: FastAPI leaves such results alone too
    serializer = pydantic_serializer(model)
    if serializer is not None:
        return ResponseModel(serializer, may_hold_bytes=False)  # pydantic sends bytes as text itself
    convert = converter_for(model, from_attributes=True)
    if convert is None:
        return ResponseModel()
    holds_bytes = may_hold_bytes(model)
    if not is_nested(model):
        # An instance of exactly a model whose fields hold no models carries
        # nothing undeclared.
        exact = model if isinstance(model, type) else None
        return ResponseModel(convert, exact, holds_bytes)

    def nested_model(result: Any) -> Any:
        # A field may hold an instance of a model's subclass, with more fields:
        # rebuild the value from plain data so only declared fields remain.
        converted = convert(result)
        return convert(msgspec.to_builtins(converted, builtin_types=PLAIN_KEPT))

    return ResponseModel(nested_model, None, holds_bytes)


def _is_response_class(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, Response)

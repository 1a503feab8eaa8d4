"""Response models: a route's declared return type (``-> Item``) or
``response_model=``. The result is converted to it before it is sent, so fields
the model does not declare are dropped, as in FastAPI; a result that cannot be
converted is a fault (500)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from spikard._bodies import PLAIN_KEPT, converter_for, is_nested
from spikard.pydantic_support import pydantic_serializer
from spikard.responses import Response

# Returned as they are: converting to these would drop nothing.
_AS_RETURNED = {None, type(None), Any, object, dict, list, str, int, float, bool, bytes}


def response_serializer(model: Any, where: str) -> Callable[[Any], Any] | None:
    """``result -> value to send`` for a route whose response model is ``model``;
    ``None`` when the result is sent as returned."""
    if model in _AS_RETURNED or _is_response_class(model):
        return None
    if typing.get_origin(model) in (typing.Union, types.UnionType) and any(
        _is_response_class(m) for m in typing.get_args(model)
    ):
        return None  # -> Response | dict: FastAPI leaves such results alone too
    serializer = pydantic_serializer(model)
    if serializer is not None:
        return serializer
    convert = converter_for(model, from_attributes=True)
    if convert is None:
        return None
    if not is_nested(model):
        if isinstance(model, type):

            def flat_model(result: Any) -> Any:
                # An instance of exactly a model whose fields hold no models
                # carries nothing undeclared.
                return result if type(result) is model else convert(result)

            return flat_model
        return convert

    def nested_model(result: Any) -> Any:
        # A field may hold an instance of a model's subclass, with more fields:
        # rebuild the value from plain data so only declared fields remain.
        converted = convert(result)
        return convert(msgspec.to_builtins(converted, builtin_types=PLAIN_KEPT))

    return nested_model


def _is_response_class(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, Response)

"""pydantic v2 models, when pydantic is installed: as bodies (their JSON Schema is
checked in Rust; validators JSON Schema cannot express then run in Python) and
as response models. Nothing here imports pydantic unless an app uses it."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import Any


def _pydantic() -> Any:
    """The pydantic module if the app has imported it (a model can only exist then)."""
    return sys.modules.get("pydantic")


def uses_pydantic(tp: Any) -> bool:
    """Whether ``tp`` is, or is built from, a pydantic model."""
    pydantic = _pydantic()
    if pydantic is None:
        return False
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return True
    return any(uses_pydantic(arg) for arg in typing.get_args(tp))


def pydantic_body(tp: Any) -> tuple[dict[str, Any], Callable[[Any], Any]] | None:
    """``(JSON Schema, converter)`` for a body of a pydantic type; ``None`` otherwise."""
    if not uses_pydantic(tp):
        return None
    adapter = _pydantic().TypeAdapter(tp)
    return adapter.json_schema(), adapter.validate_python


def pydantic_serializer(model: Any) -> Callable[[Any], Any] | None:
    """``result -> JSON-ready value`` for a pydantic response model; ``None`` otherwise."""
    if not uses_pydantic(model):
        return None
    adapter = _pydantic().TypeAdapter(model)

    def serialize(result: Any) -> Any:
        # Serialising with the declared type leaves out what it does not declare,
        # also for an instance of a subclass.
        return adapter.dump_python(adapter.validate_python(result, from_attributes=True), mode="json")

    return serialize


def validation_errors(error: BaseException) -> list[dict[str, Any]] | None:
    """A pydantic ``ValidationError``'s errors as ``{loc, msg, type, input}``; ``None``
    for any other exception."""
    pydantic = _pydantic()
    if pydantic is None or not isinstance(error, pydantic.ValidationError):
        return None
    return [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"], "input": item.get("input")}
        for item in error.errors(include_url=False, include_context=False)
    ]

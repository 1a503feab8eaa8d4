"""The JSON body of a route: its JSON Schema (checked in Rust) and how the
validated value becomes the handler's argument(s).

One body parameter receives the whole body. With ``Body(embed=True)``, or with
several body parameters (as in FastAPI), the body is an object with one key per
parameter and each parameter receives its key's value."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import inspect
import types
import typing
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import msgspec
import msgspec.inspect

from spikard._plan import BodyField, BodyPlan
from spikard.params import Body
from spikard.pydantic_support import pydantic_body

if typing.TYPE_CHECKING:
    from spikard.routing import _Arg

# Values that arrive from JSON already as the annotated Python type.
_NATIVE = (str, int, float, bool, Any)
# JSON numbers arrive as written (`2.0` a float, `2` an int): a body of these
# types is converted, to ints for `int` (`2.0`, `1e2` -> 2, 100, as pydantic
# does; `2.5` fails the schema) and floats for `float`.
_NUMBERS = (int, float)


def plan_body(args: list[_Arg], where: str) -> BodyPlan | None:
    if not args:
        return None
    embed = len(args) > 1 or any(isinstance(a.marker, Body) and a.marker.embed for a in args)
    if not embed:
        arg = args[0]
        schema, converter = _schema_and_converter(arg, where)
        numbers = _numbers_made_in_rust(strip_optional(arg.annotation)[0])
        return BodyPlan(
            name=arg.name,
            schema=schema,
            required=arg.default is ...,
            default=None if arg.default is ... else arg.default,
            converter=None if numbers else converter,
            fields=(),
            numbers=numbers,
        )
    fields = []
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for arg in args:
        key = arg.marker.alias if isinstance(arg.marker, Body) and arg.marker.alias else arg.name
        schema, converter = _schema_and_converter(arg, where)
        if schema is not None:
            defs.update(schema.pop("$defs", {}))
        properties[key] = schema if schema is not None else {}
        fields.append(
            BodyField(
                name=arg.name,
                key=key,
                required=arg.default is ...,
                default=None if arg.default is ... else arg.default,
                converter=converter,
            )
        )
    combined: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [f.key for f in fields if f.required],
    }
    if defs:
        combined["$defs"] = defs
    return BodyPlan(
        name="",
        schema=combined,
        required=any(f.required for f in fields),
        default=None,
        converter=None,
        fields=tuple(fields),
    )


def _schema_and_converter(arg: _Arg, where: str) -> tuple[dict[str, Any] | None, Callable[[Any], Any] | None]:
    annotation = arg.annotation
    if annotation is inspect.Parameter.empty:
        annotation = Any
    inner, optional = strip_optional(annotation)
    if inner is Any:
        return None, None
    from_pydantic = pydantic_body(inner)
    converter: Callable[[Any], Any] | None
    if from_pydantic is not None:
        schema, converter = from_pydantic
    else:
        try:
            schema = _as_fastapi_reads(msgspec.json.schema(inner))
        except (TypeError, ValueError) as error:
            raise TypeError(f"{where}: body parameter '{arg.name}': {error}") from None
        converter = _body_converter(annotation, inner)
    # `X | None`: a JSON null is the value None, as FastAPI validates it.
    return (_or_null(schema) if optional else schema), converter


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or null; its ``$defs`` stay at the root, where its ``$ref``s point."""
    rest = dict(schema)
    defs = rest.pop("$defs", None)
    either: dict[str, Any] = {"anyOf": [rest, {"type": "null"}]}
    if defs is not None:
        either["$defs"] = defs
    return either


def _body_converter(annotation: Any, inner: Any) -> Callable[[Any], Any] | None:
    """``converter_for(inner)``, but also for numbers and plain containers of them;
    those are converted as annotated (``int | None`` keeps a ``null``)."""
    args = typing.get_args(inner)
    holds_numbers = inner in _NUMBERS or (typing.get_origin(inner) in (list, dict) and any(a in _NUMBERS for a in args))
    if holds_numbers:
        return partial(msgspec.convert, type=annotation, strict=False)
    return converter_for(inner)


def _numbers_made_in_rust(inner: Any) -> Literal["int", "float"] | None:
    """For a body of ``int`` or ``float``, or a list or str-keyed dict of one of them,
    the type the runtime makes every JSON number as (``2.0`` -> 2 for ``int``; the
    schema has required it integral), instead of a converter copying the body."""
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is list and len(args) == 1:
        inner = args[0]
    elif origin is dict and len(args) == 2 and args[0] is str:
        inner = args[1]
    if inner is int:
        return "int"
    if inner is float:
        return "float"
    return None


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; ``X | Y | None`` -> ``(X | Y, True)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) < len(typing.get_args(tp)):
            inner = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
            return inner, True
    return tp, False


def converter_for(tp: Any, *, from_attributes: bool = False) -> Callable[[Any], Any] | None:
    """Turns a validated JSON value (or, for response models, any result) into the
    annotated type, where they differ."""
    if tp in _NATIVE or tp is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(tp)
    if origin in (list, dict) and all(a in _NATIVE for a in typing.get_args(tp)):
        return None
    if tp in (list, dict):
        return None
    options = {"from_attributes": True} if from_attributes else {}
    convert = partial(msgspec.convert, type=tp, strict=False, **options)
    if not _has_dataclass_defaults(msgspec.inspect.type_info(tp)):
        return convert
    return lambda value: _fill_defaults(convert(value))


# Types kept as they are when a value is turned into plain data and back.
PLAIN_KEPT = (bytes, bytearray, memoryview, decimal.Decimal, datetime.datetime, datetime.date, datetime.time, uuid.UUID)


def _children(info: Any) -> list[Any]:
    """The type infos directly inside ``info``."""
    kids = [getattr(info, attr) for attr in ("item_type", "key_type", "value_type") if hasattr(info, attr)]
    kids += list(getattr(info, "item_types", ()) or ()) + list(getattr(info, "types", ()) or ())
    kids += [field.type for field in getattr(info, "fields", ()) or ()]
    return kids


def _walk(info: Any, seen: set[int] | None = None) -> list[Any]:
    seen = set() if seen is None else seen
    if id(info) in seen:
        return []
    seen.add(id(info))
    found = [info]
    for child in _children(info):
        found += _walk(child, seen)
    return found


def is_nested(tp: Any) -> bool:
    """Whether a model's fields (at any depth) hold models of their own."""
    models = (msgspec.inspect.StructType, msgspec.inspect.DataclassType, msgspec.inspect.TypedDictType)
    top = msgspec.inspect.type_info(tp)
    return any(isinstance(info, models) for info in _walk(top)[1:] if info is not top)


def may_hold_bytes(tp: Any) -> bool:
    """Whether a value of type ``tp`` can hold bytes anywhere (or anything unknown)."""
    loose = (
        msgspec.inspect.BytesType,
        msgspec.inspect.ByteArrayType,
        msgspec.inspect.MemoryViewType,
        msgspec.inspect.AnyType,
        msgspec.inspect.CustomType,
    )
    return any(isinstance(info, loose) for info in _walk(msgspec.inspect.type_info(tp)))


def _has_dataclass_defaults(info: Any) -> bool:
    return any(
        isinstance(found, msgspec.inspect.DataclassType)
        and any(f.default is not msgspec.NODEFAULT for f in found.fields)
        for found in _walk(info)
    )


def _fill_defaults(value: Any) -> Any:
    """msgspec leaves a dataclass field that was not sent to its class-level default,
    which it then leaves out when encoding: set such fields on the instance."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name not in value.__dict__ and field.default is not dataclasses.MISSING:
                value.__dict__[field.name] = field.default
            _fill_defaults(value.__dict__.get(field.name))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _fill_defaults(item)
    elif isinstance(value, dict):
        for item in value.values():
            _fill_defaults(item)
    return value


def _as_fastapi_reads(schema: Any) -> Any:
    """msgspec's schema, loosened where FastAPI accepts more: a ``Decimal`` may be
    sent as a number, and a ``set`` may repeat items (they are merged)."""
    if isinstance(schema, list):
        return [_as_fastapi_reads(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "string" and schema.get("format") == "decimal":
        return {"anyOf": [{"type": "number"}, schema]}
    loosened = {key: _as_fastapi_reads(value) for key, value in schema.items() if key != "uniqueItems"}
    return loosened

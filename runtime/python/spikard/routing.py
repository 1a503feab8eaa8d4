"""From a handler's signature to its route plan: where each argument is read from,
what its text is coerced to, and the JSON Schema it must satisfy.

All of this happens once, when the decorator runs; a signature spikard cannot serve
is a ``TypeError`` naming the handler and the parameter.

The plans are public: ``app.routes`` lists a ``RoutePlan`` per route, whose
``params`` (``ParamPlan``) and ``body`` (``BodyPlan``) carry the JSON Schemas the
runtime validates against, for tools that document or exercise an app.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec

from spikard import _spikard
from spikard._bodies import converter_for, plan_body, strip_optional
from spikard._plan import BodyField, BodyPlan, ParamPlan, ParamSource, RoutePlan, Scalar
from spikard.params import Body, Header, Param
from spikard.pydantic_support import uses_pydantic
from spikard.requests import Request
from spikard.response_models import response_model as plan_response_model
from spikard.responses import Response

__all__ = ["BodyField", "BodyPlan", "ParamPlan", "ParamSource", "RoutePlan", "Scalar", "plan_route"]

_JSON_SCALARS: dict[str, Scalar] = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}
_PATH_CONVERTER_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "path": str,
    "uuid": uuid.UUID,
}


@dataclasses.dataclass
class _Arg:
    name: str
    annotation: Any
    marker: Param | Body | None
    default: Any


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# ``response_model`` not given: the return annotation decides.
UNSET: Any = _Unset()


def plan_route(
    method: str,
    path: str,
    endpoint: Callable[..., Any],
    status_code: int | None = None,
    response_model: Any = UNSET,
) -> RoutePlan:
    where = f"{getattr(endpoint, '__qualname__', endpoint)!s} ({method} {path})"
    try:
        path_params = dict(_spikard.parse_path(path))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    params: list[ParamPlan] = []
    body_args: list[_Arg] = []
    request_param: str | None = None
    response_param: str | None = None
    for arg in _arguments(endpoint, where):
        if _is_class(arg.annotation, Request):
            request_param = arg.name
            continue
        if _is_class(arg.annotation, Response):
            response_param = arg.name
            continue
        source = _source_of(arg, path_params)
        if source == "body":
            body_args.append(arg)
        else:
            params.append(_param_plan(arg, source, path_params, where))
    if response_model is UNSET:
        response_model = _return_annotation(endpoint)
    model = plan_response_model(response_model, where)
    return RoutePlan(
        method=method,
        path=path,
        endpoint=endpoint,
        is_async=_is_async(endpoint),
        status_code=200 if status_code is None else status_code,
        params=tuple(params),
        body=plan_body(body_args, where),
        request_param=request_param,
        response_param=response_param,
        serialize=model.serialize,
        model_type=model.exact_type,
        result_may_hold_bytes=model.may_hold_bytes,
    )


def _is_class(annotation: Any, cls: type) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, cls)


def _return_annotation(endpoint: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(endpoint).get("return")
    except Exception:  # unresolvable: the result is sent as returned
        return None


def _is_async(endpoint: Callable[..., Any]) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(type(endpoint).__call__)


def _arguments(endpoint: Callable[..., Any], where: str) -> list[_Arg]:
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except Exception as error:  # a forward reference that cannot be resolved
        raise TypeError(f"{where}: cannot resolve type annotations: {error}") from None
    args = []
    for param in inspect.signature(endpoint).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: *{param.name} / **{param.name} cannot be filled from a request")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"{where}: parameter '{param.name}' is positional-only; handlers are called by keyword")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        marker: Param | Body | None = None
        if typing.get_origin(annotation) is Annotated:
            base, *extras = typing.get_args(annotation)
            markers = [x for x in extras if isinstance(x, (Param, Body))]
            if len(markers) > 1:
                raise TypeError(f"{where}: parameter '{param.name}' has more than one marker")
            marker = markers[0] if markers else None
            annotation = base
        default = param.default
        if isinstance(default, (Param, Body)):
            if marker is not None:
                raise TypeError(f"{where}: parameter '{param.name}' has a marker both in Annotated and as default")
            marker, default = default, default.default
        elif marker is not None and default is inspect.Parameter.empty:
            default = marker.default
        if default is inspect.Parameter.empty:
            default = ...
        args.append(_Arg(param.name, annotation, marker, default))
    return args


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and (
        issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp) or uses_pydantic(tp)
    )


def _is_body_type(tp: Any) -> bool:
    tp, _ = strip_optional(tp)
    origin = typing.get_origin(tp) or tp
    if _is_model(tp) or origin in (dict, Mapping) or typing.is_typeddict(tp):
        return True
    if origin in (list, set, frozenset, tuple):
        items = typing.get_args(tp)
        return bool(items) and _is_body_type(items[0])
    return False


def _source_of(arg: _Arg, path_params: dict[str, str | None]) -> ParamSource | Literal["body"]:
    if isinstance(arg.marker, Body):
        return "body"
    if isinstance(arg.marker, Param):
        return arg.marker.source
    if arg.name in path_params:
        return "path"
    if _is_body_type(arg.annotation):
        return "body"
    return "query"


def _param_plan(arg: _Arg, source: ParamSource, path_params: dict[str, str | None], where: str) -> ParamPlan:
    marker = arg.marker if isinstance(arg.marker, Param) else None
    annotation = arg.annotation
    key = marker.alias if marker and marker.alias else arg.name
    if source == "path":
        if key not in path_params:
            raise TypeError(f"{where}: parameter '{arg.name}' reads path parameter '{key}', which the path lacks")
        converter_name = path_params[key]
        declared = _PATH_CONVERTER_TYPES.get(converter_name) if converter_name else None
        if annotation is inspect.Parameter.empty:
            annotation = declared or str
        elif declared is not None and strip_optional(annotation)[0] is not declared:
            raise TypeError(
                f"{where}: path parameter '{key}' is declared '{{{key}:{converter_name}}}' "
                f"but annotated {_type_name(annotation)}"
            )
    elif annotation is inspect.Parameter.empty:
        annotation = str
    if source == "header" and not (marker and marker.alias):
        convert = getattr(marker, "convert_underscores", True) if isinstance(marker, Header) else True
        key = key.replace("_", "-") if convert else key
    inner, _ = strip_optional(annotation)
    item, is_list = inner, False
    origin = typing.get_origin(inner)
    if origin in (list, set, frozenset, tuple) or inner in (list, set, frozenset, tuple):
        if source == "path":
            raise TypeError(f"{where}: path parameter '{arg.name}' cannot be a list")
        is_list = True
        item_args = typing.get_args(inner)
        item = item_args[0] if item_args else str
    constraints = marker.constraints() if marker else {}
    scalar, item_schema = _scalar_of(item, constraints, arg.name, where)
    schema: dict[str, Any] | None = {"type": "array", "items": item_schema} if is_list else item_schema
    # Coercion already guarantees the bare type; only further rules need a check.
    if schema == {"type": _json_type(scalar)} or (is_list and item_schema == {"type": _json_type(scalar)}):
        schema = None
    default = arg.default
    return ParamPlan(
        name=arg.name,
        source=source,
        key=key,
        scalar=scalar,
        is_list=is_list,
        required=default is ...,
        schema=schema,
        default=None if default is ... else default,
        converter=_param_converter(inner),
    )


def _param_converter(tp: Any) -> Callable[[Any], Any] | None:
    """Text parameters: ``bytes`` are the text's UTF-8 bytes, as in FastAPI."""
    if tp is bytes:
        return str.encode
    return converter_for(tp)


def _json_type(scalar: Scalar) -> str:
    return {v: k for k, v in _JSON_SCALARS.items()}[scalar]


def _scalar_of(item: Any, constraints: dict[str, Any], name: str, where: str) -> tuple[Scalar, dict[str, Any]]:
    """The JSON type a parameter's text is coerced to, and its schema with constraints."""
    annotated = Annotated[item, msgspec.Meta(**constraints)] if constraints else item
    try:
        schema = msgspec.json.schema(annotated)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: parameter '{name}': {error}") from None
    resolved = schema
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        resolved = schema.get("$defs", {}).get(ref, {})
    json_type = resolved.get("type")
    if json_type is None and "enum" in resolved:
        kinds = {type(v) for v in resolved["enum"]}
        names = {str: "string", int: "integer", float: "number", bool: "boolean"}
        json_type = names.get(kinds.pop()) if len(kinds) == 1 else None
    if json_type not in _JSON_SCALARS:
        raise TypeError(
            f"{where}: parameter '{name}' is annotated {_type_name(item)}, which cannot be read "
            "from a path, query, header or cookie (use str, int, float, bool, uuid.UUID, an Enum, "
            "a Literal, or a list of these; a model belongs in the body)"
        )
    return _JSON_SCALARS[json_type], schema


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)

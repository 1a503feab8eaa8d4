"""Ordinary values that satisfy a JSON Schema: what ``spikard profile`` sends to a
route when the user names no requests.

The aim is a typical request, not an adversarial one: the first enum member, a
number inside its bounds, a short string of an allowed length or format, one item
per array, every property of an object (optional ones at their defaults). A schema
this cannot satisfy raises ``Unsatisfiable`` saying which keyword; the runtime's
answer (2xx, or a 422 naming the field) is the final word on each value.
"""

from __future__ import annotations

import math
import re
from typing import Any

try:  # The parser of the re module: how a pattern is made gives a string it matches.
    from re import _parser as regex_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another Python: the candidates only
    regex_parser = None

# Strings for the formats JSON Schema names (and msgspec and pydantic emit).
FORMATS: dict[str, str] = {
    "date-time": "2026-01-02T03:04:05Z",
    "date": "2026-01-02",
    "time": "03:04:05",
    "duration": "P1D",
    "uuid": "6f1c5e2a-8d3b-4c1e-9a7f-2b4d6e8f0a1c",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/example",
    "iri-reference": "/example",
    "uri-template": "/items/{id}",
    "json-pointer": "/example",
    "relative-json-pointer": "0",
    "regex": "^[a-z]+$",
    "binary": "ZXhhbXBsZQ==",
    "byte": "ZXhhbXBsZQ==",
    "base64": "ZXhhbXBsZQ==",
    "decimal": "1.5",
    "multi-host-uri": "https://example.com/",
    "password": "example",
}
# Tried in order against a ``pattern``, each also padded or cut to the length allowed.
PATTERN_CANDIDATES = (
    "example",
    "abc",
    "ABC",
    "Example",
    "a",
    "A",
    "123",
    "1",
    "abc123",
    "ABC123",
    "a-b",
    "a_b",
    "a.b",
    "2026-01-02",
    "user@example.com",
    "https://example.com/",
    "+15555550123",
    "#a1b2c3",
)
# Deeper than this, optional properties and array items are left out (schemas may
# recurse); deeper than the second, a required recursion has no ordinary value.
MAX_DEPTH = 8
HARD_DEPTH = 32


class Unsatisfiable(ValueError):
    """No ordinary value satisfies the schema; the message says which keyword."""


def example(schema: dict[str, Any] | bool | None, defs: dict[str, Any] | None = None) -> Any:
    """A typical value valid against ``schema`` (``$ref``s resolved in ``defs`` or
    the schema's own ``$defs``/``definitions``)."""
    if isinstance(schema, dict):
        defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    return _Examples(defs or {}).value(schema, 0)


class _Examples:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen: set[str] = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                raise Unsatisfiable(f"$ref {ref} refers to itself")
            seen.add(ref)
            target = self.defs.get(ref.rsplit("/", 1)[-1])
            if target is None:
                raise Unsatisfiable(f"$ref {ref} is not defined in the schema")
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **siblings}
        return schema

    def value(self, schema: dict[str, Any] | bool | None, depth: int) -> Any:
        if schema is None or schema is True:
            return "example"
        if schema is False:
            raise Unsatisfiable("the schema is false: no value is valid")
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise Unsatisfiable("the enum is empty")
            return schema["enum"][0]
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.first_of(schema[keyword], keyword, depth)
        if "allOf" in schema:
            merged = {key: value for key, value in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self.resolve(part))
            return self.value(merged, depth)
        kind = _type_of(schema)
        if kind == "null":
            return None
        if kind == "boolean":
            return True
        if kind == "integer":
            return _integer(schema)
        if kind == "number":
            return _number(schema)
        if kind == "string":
            return _string(schema)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "object":
            return self.object(schema, depth)
        return "example"

    def first_of(self, options: list[Any], keyword: str, depth: int) -> Any:
        """The first satisfiable option, null only when nothing else is."""
        ordered = sorted(options, key=lambda option: isinstance(option, dict) and option.get("type") == "null")
        reasons = []
        for option in ordered:
            try:
                return self.value(option, depth)
            except Unsatisfiable as error:
                reasons.append(str(error))
        raise Unsatisfiable(f"no option of {keyword} is satisfiable: {'; '.join(reasons)}")

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        if depth > HARD_DEPTH:
            raise Unsatisfiable("the schema nests deeper than any ordinary value")
        prefix = [self.value(item, depth + 1) for item in schema.get("prefixItems", [])]
        # One item per array, but as few as allowed once deep (a recursive list).
        least = schema.get("minItems", 0) if depth >= MAX_DEPTH else max(schema.get("minItems", 0), 1)
        most = schema.get("maxItems", least)
        if most < len(prefix):
            return prefix[:most]
        wanted = min(max(least, len(prefix)), most)
        items = schema.get("items", {})
        if items is False:
            return prefix
        one = self.value(items, depth + 1)
        values = prefix + [one] * (wanted - len(prefix))
        if schema.get("uniqueItems") and len(values) - len(prefix) > 1:
            raise Unsatisfiable("uniqueItems with more than one item required")
        return values

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        if depth > HARD_DEPTH:
            raise Unsatisfiable("the schema nests deeper than any ordinary value")
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        value: dict[str, Any] = {}
        for name, sub in properties.items():
            sub_resolved = self.resolve(sub) if isinstance(sub, dict) else sub
            if name not in required:
                if isinstance(sub_resolved, dict) and "default" in sub_resolved:
                    value[name] = sub_resolved["default"]
                    continue
                if depth >= MAX_DEPTH:
                    continue
            value[name] = self.value(sub, depth + 1)
        for name in required - value.keys():
            extra = schema.get("additionalProperties", True)
            value[name] = self.value(extra if isinstance(extra, dict) else True, depth + 1)
        return value


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left and "properties" in right:
        merged["properties"] = {**left["properties"], **right["properties"]}
    if "required" in left and "required" in right:
        merged["required"] = sorted(set(left["required"]) | set(right["required"]))
    return merged


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        others = [k for k in kind if k != "null"]
        return others[0] if others else "null"
    if kind is not None:
        return str(kind)
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(key in schema for key in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return None


def _bounds(schema: dict[str, Any]) -> tuple[float, float, bool, bool]:
    """(low, high, low excluded, high excluded), from either draft's keywords."""
    low, high = -math.inf, math.inf
    low_open = high_open = False
    if "minimum" in schema:
        low = schema["minimum"]
    if "maximum" in schema:
        high = schema["maximum"]
    exclusive_min, exclusive_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(exclusive_min, bool):  # draft 4: a flag on minimum
        low_open = exclusive_min
    elif exclusive_min is not None and exclusive_min >= low:
        low, low_open = exclusive_min, True
    if isinstance(exclusive_max, bool):
        high_open = exclusive_max
    elif exclusive_max is not None and exclusive_max <= high:
        high, high_open = exclusive_max, True
    return low, high, low_open, high_open


def _integer(schema: dict[str, Any]) -> int:
    low, high, low_open, high_open = _bounds(schema)
    least = None if low == -math.inf else math.floor(low) + 1 if low_open else math.ceil(low)
    most = None if high == math.inf else math.ceil(high) - 1 if high_open else math.floor(high)
    candidate = 1
    if least is not None:
        candidate = max(candidate, least)
    if most is not None:
        candidate = min(candidate, most)
    step = schema.get("multipleOf")
    if step:
        candidate = math.ceil(candidate / step) * step
        if most is not None and candidate > most:
            candidate -= step
        candidate = int(candidate)
    if (least is not None and candidate < least) or (most is not None and candidate > most):
        raise Unsatisfiable(f"no integer between {low} and {high}")
    return candidate


def _number(schema: dict[str, Any]) -> float | int:
    if schema.get("multipleOf"):
        return _integer(schema) if float(schema["multipleOf"]).is_integer() else _stepped(schema)
    low, high, low_open, high_open = _bounds(schema)
    candidate = 1.5
    if candidate < low or (low_open and candidate == low):
        candidate = low + 1 if high - low > 1 else (low + high) / 2 if high < math.inf else low + 1
    if candidate > high or (high_open and candidate == high):
        candidate = high - 1 if high - low > 1 else (low + high) / 2 if low > -math.inf else high - 1
    if not (low <= candidate <= high) or (low_open and candidate == low) or (high_open and candidate == high):
        raise Unsatisfiable(f"no number between {low} and {high}")
    return candidate


def _stepped(schema: dict[str, Any]) -> float:
    step = float(schema["multipleOf"])
    low, high, low_open, _ = _bounds(schema)
    count = 1 if low == -math.inf else math.floor(low / step) + 1 if low_open else math.ceil(low / step)
    value = round(count * step, 12)
    if value > high:
        raise Unsatisfiable(f"no multiple of {step} between {low} and {high}")
    return value


def _string(schema: dict[str, Any]) -> str:
    least = schema.get("minLength", 0)
    most = schema.get("maxLength", max(least, 64))
    if least > most:
        raise Unsatisfiable(f"minLength {least} exceeds maxLength {most}")
    form = schema.get("format")
    if schema.get("contentEncoding") == "base64":
        form = "base64"
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise Unsatisfiable(
                f"the pattern {pattern!r} is not one Python's re reads ({error}); "
                "name a request with --url or --requests"
            ) from None
    candidates = [FORMATS[form]] if form in FORMATS else []
    if pattern:
        made = _matching(pattern)
        candidates += ([made] if made is not None else []) + list(PATTERN_CANDIDATES)
    else:
        candidates.append("example")
    for candidate in candidates:
        for fitted in _fitted(candidate, least, most):
            if pattern is None or re.search(pattern, fitted):
                return fitted
    if pattern:
        raise Unsatisfiable(
            f"no ordinary string matches the pattern {pattern!r} (name a request with --url or --requests)"
        )
    raise Unsatisfiable(f"no string of length {least}..{most} in format {form!r}")


def _matching(pattern: str) -> str | None:
    """A short string ``pattern`` matches, built from its parse (literals as they are,
    a class's first member, each repeat at its least but once); None for what this
    does not follow (look-arounds, back references)."""
    if regex_parser is None:
        return None
    try:
        return _build(regex_parser.parse(pattern))
    except (re.error, _Unfollowed, TypeError, ValueError, IndexError, AttributeError):
        return None


class _Unfollowed(Exception):
    pass


_CATEGORY_CHARS = {"CATEGORY_DIGIT": "1", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " "}


def _build(parsed: Any) -> str:
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_class_member(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            least, _, item = arg
            out.append(_build(item) * max(least, 1))
        elif name == "SUBPATTERN":
            out.append(_build(arg[-1]))
        elif name == "ATOMIC_GROUP":
            out.append(_build(arg))
        elif name == "BRANCH":
            out.append(_build(arg[1][0]))
        elif name == "AT":
            continue
        elif name == "CATEGORY":
            out.append(_CATEGORY_CHARS.get(str(arg), "a"))
        else:
            raise _Unfollowed(name)
    return "".join(out)


def _class_member(items: list[Any]) -> str:
    if items and str(items[0][0]) == "NEGATE":
        excluded = {chr(arg) for op, arg in items[1:] if str(op) == "LITERAL"}
        allowed = next((c for c in "aA1-_.xZ9" if c not in excluded), None)
        if allowed is None:
            raise _Unfollowed("NEGATE")
        return allowed
    op, arg = items[0]
    name = str(op)
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(arg[0])
    if name == "CATEGORY":
        return _CATEGORY_CHARS.get(str(arg), "a")
    raise _Unfollowed(name)


def _fitted(text: str, least: int, most: int) -> list[str]:
    """``text`` itself, or padded (by repeating its last character) or cut to fit."""
    if least <= len(text) <= most:
        return [text]
    if len(text) > most:
        return [text[:most]] if most > 0 else [""]
    return [text + text[-1:] * (least - len(text)) if text else "x" * least]

"""A value that passed its JSON Schema in Rust but that the annotated Python type
refused (a pydantic validator, a rule only the type knows): the exception as the
422's ``errors`` entries, located like the runtime's own."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from spikard.pydantic_support import validation_errors

# msgspec ends its messages with the path of the failing value: " - at `$.tags[1]`".
_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[([^\]]*)\]")


def _msgspec_loc(path: str) -> list[str | int]:
    loc: list[str | int] = []
    for name, index, key in _PATH_STEP.findall(path):
        loc.append(name if name else int(index) if index else key.strip("'\""))
    return loc


def rejection_errors(exc: BaseException, loc: list[str | int]) -> list[dict[str, Any]]:
    pydantic_errors = validation_errors(exc)
    if pydantic_errors is not None:
        return [{**error, "loc": [*loc, *error["loc"]]} for error in pydantic_errors]
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _MSGSPEC_PATH.match(message)
        if match:
            return [{"loc": [*loc, *_msgspec_loc(match["path"])], "msg": match["msg"], "type": "value_error"}]
    return [{"loc": loc, "msg": message or type(exc).__name__, "type": "value_error"}]

"""Handler results as JSON bytes, with FastAPI's choices: datetimes, dates and times
in ISO 8601, UUIDs as strings, ``Decimal`` as a number, enums by value, sets as
lists, ``bytes`` as UTF-8 text, pydantic models and dataclasses by their fields.

msgspec does the encoding. Two cases need a pass first, both rare: ``bytes``
(msgspec would send base64) and types msgspec does not know (``enc_hook``).
Whether a result holds bytes is checked by the runtime in Rust, so the common
result pays nothing for the rule."""

from __future__ import annotations

import decimal
from typing import Any

import msgspec


def _unknown(value: Any) -> Any:
    """Types msgspec cannot encode natively."""
    dump = getattr(value, "model_dump", None)
    if dump is not None:  # a pydantic model
        return _decode_bytes(dump(mode="python"))
    for base in (str, int, float):  # subclasses, such as a URL
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"Object of type {type(value).__name__} cannot be sent as JSON")


# Left for the encoder: bytes to turn into text, and Decimal to send as a number.
_KEPT = (bytes, bytearray, memoryview, decimal.Decimal)
_encoder = msgspec.json.Encoder(enc_hook=_unknown, decimal_format="number")


def _decode_bytes(value: Any) -> Any:
    """``value`` as builtins, with every bytes value as UTF-8 text."""
    builtins = msgspec.to_builtins(value, builtin_types=_KEPT, enc_hook=_unknown)
    return _text_for_bytes(builtins)


def _text_for_bytes(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {key: _text_for_bytes(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_for_bytes(item) for item in value]
    return value


def encode_json(value: Any) -> bytes:
    """Any result as JSON bytes (the slow, general path)."""
    return _encoder.encode(_decode_bytes(value))


# The runtime's fast path, for results it found free of bytes.
encode_plain = _encoder.encode

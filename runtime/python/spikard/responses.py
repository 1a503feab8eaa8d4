"""Explicit responses, for when a handler needs to choose the status, headers or
media type itself. Anything else a handler returns is sent as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

_json = msgspec.json.Encoder(decimal_format="number")


class Response:
    """``Response(content, status_code=200, headers=None, media_type=None)``.

    ``content`` may be ``bytes`` (sent as is), ``str`` (UTF-8 text) or any value
    msgspec can encode (sent as JSON). Without a ``media_type`` it is
    ``application/octet-stream``, ``text/plain`` or ``application/json`` accordingly.
    """

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.headers: dict[str, str] = dict(headers or {})
        self.body = self.render(content)

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            if self.media_type is None:
                self.media_type = "application/octet-stream"
            return bytes(content)
        if isinstance(content, str):
            if self.media_type is None:
                self.media_type = "text/plain"
            return content.encode(self.charset)
        if self.media_type is None:
            self.media_type = "application/json"
        return _json.encode(content)

    @property
    def raw_headers(self) -> list[tuple[str, str]]:
        """Header pairs as sent, the content type included."""
        pairs = list(self.headers.items())
        if self.media_type and self.body and not any(k.lower() == "content-type" for k, _ in pairs):
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            pairs.append(("content-type", content_type))
        return pairs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, media_type={self.media_type!r})"

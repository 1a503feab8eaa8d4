"""Explicit responses, for when a handler chooses the status, headers, cookies or
media type itself. Anything else a handler returns is sent as JSON
(``spikard.encoding``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import quote

from spikard.datastructures import MutableHeaders
from spikard.encoding import encode_json

# Statuses whose responses never carry a body (RFC 9110): no content type is sent for
# them (the runtime drops the body itself, spikard_http::framing).
NO_BODY_STATUSES = frozenset({204, 205, 304})


class Response:
    """``Response(content, status_code=200, headers=None, media_type=None)``.

    ``content`` may be ``bytes`` (sent as is), ``str`` (encoded with ``charset``)
    or any other value, sent as JSON. Without a ``media_type``, bytes are
    ``application/octet-stream``, text ``text/plain`` and values ``application/json``.
    Headers may repeat: ``response.headers.append("set-cookie", ...)``, or
    ``set_cookie`` / ``delete_cookie``.
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
        self.headers = MutableHeaders((headers or {}).items())
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
        return encode_json(content)

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Adds a ``Set-Cookie`` header; several cookies make several headers."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime):
                morsel["expires"] = format_datetime(expires.astimezone(UTC), usegmt=True)
            elif isinstance(expires, int):
                when = datetime.now(UTC) + timedelta(seconds=expires)
                morsel["expires"] = format_datetime(when, usegmt=True)
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be 'strict', 'lax' or 'none'")
            morsel["samesite"] = samesite
        self.headers.append("set-cookie", cookie.output(header="").strip())

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Tells the client to drop a cookie (an expired ``Set-Cookie``)."""
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    @property
    def raw_headers(self) -> list[tuple[str, str]]:
        """Header pairs as sent, the content type included (read by the runtime)."""
        pairs = self.headers.raw()
        if self.status_code in NO_BODY_STATUSES:
            return [(k, v) for k, v in pairs if k != "content-type"]
        if self.media_type and "content-type" not in self.headers:
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            pairs.append(("content-type", content_type))
        return pairs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, media_type={self.media_type!r})"


class JSONResponse(Response):
    """Any value sent as JSON, encoded as a handler's return value is."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class RedirectResponse(Response):
    """``RedirectResponse(url, status_code=307)``: sends the client to ``url``."""

    def __init__(self, url: str, status_code: int = 307, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(None, status_code=status_code, headers=headers)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")

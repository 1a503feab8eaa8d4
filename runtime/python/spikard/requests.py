"""``Request``: what a handler that declares a ``request: Request`` parameter
receives. Built by the runtime only for such handlers; every part is decoded
on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from spikard.datastructures import URL, Address, Headers, QueryParams, State

if TYPE_CHECKING:
    from spikard.app import Spikard


def parse_cookies(header: str) -> dict[str, str]:
    """``a=1; b="two"`` -> ``{"a": "1", "b": "two"}``; a later repeat wins, as browsers send them."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


class Request:
    """The HTTP request: ``method``, ``url``, ``headers``, ``query_params``,
    ``path_params``, ``cookies``, ``client``, and the body through
    ``await request.body()`` / ``await request.json()``."""

    __slots__ = (
        "_body",
        "_cookies",
        "_headers",
        "_query",
        "_raw_headers",
        "_state",
        "app",
        "client",
        "method",
        "path_params",
        "query_string",
        "root_path",
        "scheme",
        "url_path",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: list[tuple[str, str]],
        client: tuple[str, int] | None = None,
        body: bytes | None = None,
        path_params: dict[str, str] | None = None,
        app: Spikard | None = None,
        scheme: str = "http",
        root_path: str = "",
    ) -> None:
        self.method = method
        self.url_path = path
        self.query_string = query_string
        self._raw_headers = headers
        self.client = Address(*client) if client else None
        self._body = body
        self.path_params = path_params or {}
        self.app = app
        self.scheme = scheme
        # The prefix a proxy serves the app under (``--root-path``); part of ``url``.
        self.root_path = root_path
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._state: State | None = None

    @property
    def path(self) -> str:
        return self.url_path

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = {}
            for header in self.headers.getlist("cookie"):
                self._cookies.update(parse_cookies(header))
        return self._cookies

    @property
    def base_url(self) -> URL:
        host = self.headers.get("host") or "localhost"
        return URL(f"{self.scheme}://{host}{self.root_path}/")

    @property
    def url(self) -> URL:
        query = f"?{self.query_string}" if self.query_string else ""
        return URL(f"{self.base_url[:-1]}{self.url_path}{query}")

    @property
    def state(self) -> State:
        """Per-request attributes (``request.state.user = ...``)."""
        if self._state is None:
            self._state = State()
        return self._state

    async def body(self) -> bytes:
        return self._body or b""

    async def json(self) -> Any:
        """The body decoded as JSON; ``msgspec.DecodeError`` if it is not JSON."""
        return msgspec.json.decode(self._body or b"")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url_path}>"

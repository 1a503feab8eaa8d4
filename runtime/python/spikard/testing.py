"""``TestClient``: serves an app on a free loopback port inside this process and
sends it real HTTP requests, answering with the names FastAPI users' tests use
(``status_code``, ``headers``, ``content``, ``text``, ``json()``).

Usable as a context manager, or directly: it starts on the first request and
stops with ``close()`` (or when it is garbage-collected). It can be started and
stopped any number of times in one process.
"""

from __future__ import annotations

import contextlib
import http.client
import json as jsonlib
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from spikard import _spikard
from spikard._server import ServeOptions, bind_socket, serve_socket
from spikard.app import Spikard


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive; a repeated header joins with ", "
    (``get_list`` returns each value)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get_list(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._pairs if key.lower() == wanted]

    def __getitem__(self, name: str) -> str:
        values = self.get_list(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_list(name))

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for key, _ in self._pairs:
            seen.setdefault(key.lower(), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self._pairs})

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class Response:
    """A response as the client received it."""

    def __init__(self, status_code: int, reason_phrase: str, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        content_type = self.headers.get("content-type", "")
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> Response:
        if not self.is_success:
            raise AssertionError(f"HTTP {self.status_code} {self.reason_phrase}: {self.text[:500]}")
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


class _Serving:
    """One run of the app on a background thread."""

    def __init__(self, app: Spikard, options: ServeOptions) -> None:
        self.sock = bind_socket("127.0.0.1", 0)
        self.port: int = self.sock.getsockname()[1]
        self.server = _spikard.Server()
        self.error: BaseException | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(app, options), name="spikard-testclient", daemon=True)
        self.thread.start()
        self._started.wait()
        if self.error is not None:
            self.thread.join()
            self.sock.close()
            raise self.error

    def _run(self, app: Spikard, options: ServeOptions) -> None:
        try:
            serve_socket(app, self.sock, options, server=self.server, handle_signals=False, ready=self._started.set)
        except BaseException as error:  # reported to the thread that started us
            self.error = error
        finally:
            self._started.set()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.sock.close()


class TestClient:
    """``TestClient(app)``: real HTTP requests to ``app`` served in this process."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Spikard, *, timeout: float = 30.0, graceful_timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout
        self._options = ServeOptions(
            debug=app.debug, graceful_timeout=graceful_timeout, access_log=False, proxy_headers=False
        )
        self._serving: _Serving | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def base_url(self) -> str:
        self.start()
        assert self._serving is not None
        return f"http://127.0.0.1:{self._serving.port}"

    def start(self) -> TestClient:
        with self._lock:
            if self._serving is None:
                self._serving = _Serving(self.app, self._options)
                self._finalizer = weakref.finalize(self, _Serving.stop, self._serving)
        return self

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._serving = None
            self._finalizer = None

    def __enter__(self) -> TestClient:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
    ) -> Response:
        self.start()
        assert self._serving is not None
        target = url
        if urlsplit(url).scheme:
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        send_headers = dict(headers or {})
        body: bytes | None = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            send_headers.setdefault("content-type", "application/json")
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        if cookies:
            send_headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self._serving.port, timeout=timeout or self.timeout)
        try:
            # A server that answers before taking the whole body (a 413) may close
            # while we still send: read its answer all the same.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method.upper(), target, body=body, headers=send_headers)
            raw = connection.getresponse()
            data = raw.read()
            return Response(raw.status, raw.reason, Headers(raw.getheaders()), data)
        finally:
            connection.close()

    def get(self, url: str, **options: Any) -> Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> Response:
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Any) -> Response:
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Any) -> Response:
        return self.request("PATCH", url, **options)

    def delete(self, url: str, **options: Any) -> Response:
        return self.request("DELETE", url, **options)

    def head(self, url: str, **options: Any) -> Response:
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Any) -> Response:
        return self.request("OPTIONS", url, **options)

"""Type stubs for the native module ``spikard._spikard`` (runtime/python/src)."""

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__version__: str

def parse_path(path: str) -> list[tuple[str, str | None]]:
    """Splits a route path into its parameters: ``[(name, converter or None), ...]``.

    Raises ``ValueError`` for a malformed path."""

def check_forwarded_allow_ips(list: str) -> None:
    """Raises ``ValueError`` for a ``--forwarded-allow-ips`` list the server would refuse
    (an IP network that is not one, such as ``10.0.0.0/99``)."""

class _RoutePlan(Protocol):
    """``spikard._plan.RoutePlan``: read by attribute."""

    method: str
    path: str
    endpoint: Callable[..., Any]
    is_async: bool
    status_code: int
    params: Sequence[Any]
    body: Any | None

class _ServeContext(Protocol):
    """``spikard._server.ServeContext``: read by attribute."""

    loop: Any
    enter_task: Callable[..., Any]
    leave_task: Callable[..., Any]
    task_refs: set[Any]
    task_type: type
    executor: Any
    submit_sync: Callable[..., Any]
    encode: Callable[[Any], bytes]
    response_type: type
    report_error: Callable[[BaseException, str], str]
    root_path: str
    write_access: Callable[[list[tuple[str | None, str, str, str, int, float, bool]]], None]
    access_console: Callable[[], Callable[[list[str]], None] | None]
    warn: Callable[[str], None]

class _ServeOptions(Protocol):
    """``spikard._server.ServeOptions``: read by attribute."""

    debug: bool
    max_body_size: int
    graceful_timeout: float
    header_read_timeout: float
    keep_alive: float
    write_timeout: float
    max_connections: int
    max_requests: int
    access_log: bool
    proxy_headers: bool
    forwarded_allow_ips: str
    peers_fd: int
    peer_slot: int

class Server:
    """Serves route plans on a listening socket, on the calling thread."""

    def __init__(self) -> None: ...
    def serve(
        self,
        routes: Sequence[_RoutePlan],
        fd: int,
        context: _ServeContext,
        options: _ServeOptions,
        signal_fd: int | None = None,
        ready: Callable[[], object] | None = None,
        on_max_requests: Callable[[], object] | None = None,
        unix: bool = False,
    ) -> int:
        """Serves on the listening socket ``fd`` (a Unix socket when ``unix``), which it
        takes over (``socket.detach()``) and closes as soon as shutdown starts, until
        ``shutdown()`` or, with
        ``signal_fd`` (the read end of Python's signal wake-up descriptor),
        SIGINT/SIGTERM; a second signal stops at once. ``ready`` is called once
        connections are accepted, ``on_max_requests`` once ``options.max_requests``
        requests were answered. Returns the number of requests cut short. Raises
        ``ValueError`` for routes that cannot be served together and ``OSError`` for
        an unusable socket."""
    def shutdown(self) -> None:
        """Stops accepting; in-flight requests finish within the grace period."""

class Completion:
    """Done-callback of a suspended handler's task; hands it to the waiting request."""

    def __call__(self, finished: Any) -> None: ...

"""Serving an app on a socket: binding, the event loop and thread pool a serve needs,
and stop signals. Used by ``Spikard.run``, ``spikard run`` and the TestClient."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spikard import _asyncio_bridge as bridge
from spikard import _logging as logs
from spikard import _spikard
from spikard._responding import Answers
from spikard._sync_pool import SyncPool

if TYPE_CHECKING:
    from spikard._spikard import _ServerLog as ServerLog
    from spikard.app import Spikard

DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
DEFAULT_SYNC_WORKERS = 40
DEFAULT_BACKLOG = 2048
DEFAULT_MAX_HEAD_SIZE = 64 * 1024
MIN_MAX_HEAD_SIZE = 8 * 1024  # hyper's smallest read buffer


@dataclass(frozen=True)
class ServeOptions:
    """How a server serves; the defaults are ``spikard run``'s."""

    debug: bool = False
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    graceful_timeout: float = 30.0
    header_read_timeout: float = 10.0  # seconds for a request head to arrive (0: no limit)
    keep_alive: float = 5.0  # seconds an idle connection stays open (0: no keep-alive)
    write_timeout: float = 60.0  # seconds a response being written may make no progress (0: no limit)
    max_connections: int = 10_000  # open at once; more wait in the listen queue (0: no limit)
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE  # bytes a request head may take (431 past it)
    sync_workers: int = DEFAULT_SYNC_WORKERS
    max_requests: int = 0  # after this many requests, tell the supervisor (0: never)
    access_log: bool = True  # through logger ``spikard.access``, when it is enabled for INFO
    proxy_headers: bool = True  # believe Forwarded / X-Forwarded-* from forwarded_allow_ips
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""  # where a proxy mounts the app, for ``request.url``
    # Set by the supervisor: its table of connections per worker, and this worker's slot.
    peers_fd: int = -1
    peer_slot: int = 0
    server_timing: bool = False  # stage times in a Server-Timing header on every response
    stage_stats: bool = False  # stage statistics per route, for spikard.stats (1-1.5% more work per request)
    access_log_stages: bool = False  # stage times in each access line
    stats_dir: str = ""  # set by the supervisor: keep the statistics in a file there, for it to read


@dataclass(frozen=True)
class ServeContext:
    """The Python objects the runtime works with during one serve (``server.rs``): the
    asyncio bridge, what answers the app's requests, and the logs (this is the
    ``spikard._logging`` module itself, whose ``write_access``, ``access_console`` and
    ``warn`` the runtime calls). The stub ``_spikard.pyi`` types each."""

    bridge: bridge.Bridge
    answers: Answers
    log: ServerLog


def bind_socket(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """Binds and listens; ``OSError`` says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


def bind_unix(path: str, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """Binds a Unix socket at ``path``, readable and writable by every local user (a
    proxy often runs as another user; restrict access with the directory's mode).
    A socket file left by a server that is gone is replaced; a live one is not."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)
            else:
                raise OSError(errno.EADDRINUSE, f"a server is already listening on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def unix_identity(path: str) -> tuple[int, int] | None:
    """Which file is at ``path`` now (device, inode), if any."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def remove_unix(path: str, bound: tuple[int, int] | None) -> None:
    """Removes the socket file a server bound, at its end; not a file that a newer
    server bound at the same path meanwhile (after this one stopped accepting)."""
    if bound is not None and unix_identity(path) == bound:
        with contextlib.suppress(OSError):
            os.unlink(path)


def describe(sock: socket.socket) -> str:
    """``http://127.0.0.1:8000``, ``http://[::1]:8000`` or ``unix:/run/app.sock``."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ignore_signal(signum: int, frame: Any) -> None:
    """Python-level stand-in: the runtime reads the signal from the wake-up descriptor."""


@contextlib.contextmanager
def _stop_signals() -> Iterator[int | None]:
    """Routes SIGINT/SIGTERM to the runtime through Python's signal wake-up descriptor,
    and restores the previous handlers afterwards. Only possible on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield reader.fileno()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()


def serve_socket(
    app: Spikard,
    sock: socket.socket,
    options: ServeOptions,
    *,
    server: _spikard.Server | None = None,
    handle_signals: bool = True,
    ready: Callable[[], object] | None = None,
    on_max_requests: Callable[[], object] | None = None,
) -> int:
    """Serves ``app`` on a listening socket on the calling thread until shutdown;
    ``ready`` is called once requests are being accepted, ``on_max_requests`` once
    ``options.max_requests`` have been answered. The runtime takes the socket over
    and closes it as soon as shutdown starts, so that new connections are refused
    while in-flight requests finish. Returns how many requests were cut short at
    the end of the grace period."""
    server = server or _spikard.Server()
    loop = bridge.DrivenLoop()
    executor = SyncPool(max_workers=options.sync_workers, thread_name_prefix="spikard-sync")
    context = ServeContext(
        bridge=bridge.Bridge(loop, executor),
        answers=Answers.for_app(app, options.root_path),
        log=logs,
    )
    # With the access logger off (``--log-level warning``), nothing is recorded.
    options = dataclasses.replace(options, access_log=options.access_log and logs.access_enabled())
    unix = sock.family == socket.AF_UNIX
    routes = list(app.routes)
    signals = _stop_signals() if handle_signals else contextlib.nullcontext(None)
    try:
        # Startup work runs on the loop handlers will run on, so that what it
        # makes (pools, clients) is usable inside them.
        loop.run_until_complete(app.startup())
        loop.enter()
        try:
            with signals as signal_fd:
                return server.serve(
                    routes, sock.detach(), context, options, signal_fd, ready, on_max_requests, unix=unix
                )
        finally:
            loop.leave()
            loop.run_until_complete(app.shutdown())
    finally:
        loop.finish()
        executor.shutdown()


def serve_main(
    app: Spikard,
    sock: socket.socket,
    options: ServeOptions,
    name: str = "",
    *,
    label: str = "",
    ready: Callable[[], object] | None = None,
    on_max_requests: Callable[[], object] | None = None,
    server: _spikard.Server | None = None,
) -> int:
    """Serves on the main thread with stop signals, saying so on stderr; for
    ``Spikard.run``, ``spikard run`` and supervised workers (``label``). Returns the
    number of requests cut short."""
    address = describe(sock)
    what = f"{name} " if name else ""
    who = f"{label}: " if label else ""

    def announce() -> None:
        if label:
            logs.info(f"{who}serving")
        else:
            logs.info(f"serving {what}on {address} (Ctrl-C to stop)")
        if ready is not None:
            ready()

    # What exists now (modules, routes, schemas) lives as long as the process:
    # keep it out of every later garbage collection.
    gc.collect()
    gc.freeze()
    cut = serve_socket(app, sock, options, server=server, ready=announce, on_max_requests=on_max_requests)
    logs.info(f"{who}stopped{f'; {cut} request(s) were cut short' if cut else ''}")
    return cut

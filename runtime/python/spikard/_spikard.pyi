"""Type stubs for the native module ``spikard._spikard`` (runtime/python/src): the whole
contract between the runtime and the Python package.

The public part is what the module exports. The private protocols describe what the
package hands to the runtime and everything the runtime reads or calls on it (each
names the Rust file that does); mypy checks the package's objects against them where
``Server.serve`` is called, and ``python -m mypy.stubtest spikard._spikard`` checks
the exports against the built extension."""

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal, Protocol, final

__all__ = [
    "STAGES",
    "STATUS_CLASSES",
    "UNROUTED",
    "Completion",
    "Server",
    "StatsSources",
    "__version__",
    "check_forwarded_allow_ips",
    "parse_path",
    "stats_reset",
    "stats_snapshot",
]

__version__: str

STAGES: tuple[str, ...]
"""The stages of a request, in order: ``parse``, ``validate``, ``ffi``, ``handler``,
``response`` (``runtime/http/src/stages.rs``)."""

STATUS_CLASSES: tuple[str, ...]
"""How the statistics count responses: ``1xx`` … ``5xx``."""

UNROUTED: str
"""The statistics' name for requests no route takes."""

# (count, mean, p50, p90, p99, max), in nanoseconds
_SummaryRow = tuple[int, float, int, int, int, int]
# (route, one summary per stage in STAGES order, the total's summary, responses per
# status class 1xx..5xx)
_RouteRow = tuple[str, list[_SummaryRow], _SummaryRow, list[int]]

def stats_snapshot() -> list[_RouteRow] | None:
    """Every route's stage statistics in the app this process serves (the latest
    started), one row per route template and a last one, ``unrouted``; ``None``
    when nothing here has served with statistics on."""

def stats_reset() -> None:
    """Forgets everything the statistics counted so far."""

def parse_path(path: str) -> list[tuple[str, str | None]]:
    """Splits a route path into its parameters: ``[(name, converter or None), ...]``.

    Raises ``ValueError`` for a malformed path."""

def check_forwarded_allow_ips(list: str) -> None:
    """Raises ``ValueError`` for a ``--forwarded-allow-ips`` list the server would refuse
    (an IP network that is not one, such as ``10.0.0.0/99``)."""

# -- Route plans (spikard/_plan.py), read by attribute in plan.rs --------------------

# Matched as strings by plan.rs; anything else is refused at startup.
_ParamSource = Literal["path", "query", "header", "cookie"]
_Scalar = Literal["str", "int", "float", "bool"]

class _ParamPlan(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> _ParamSource: ...
    @property
    def key(self) -> str: ...
    @property
    def scalar(self) -> _Scalar: ...
    @property
    def is_list(self) -> bool: ...
    @property
    def required(self) -> bool: ...
    @property
    def schema(self) -> dict[str, Any] | None: ...
    @property
    def default(self) -> Any: ...
    @property
    def converter(self) -> Callable[[Any], Any] | None: ...

class _BodyField(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def default(self) -> Any: ...
    @property
    def converter(self) -> Callable[[Any], Any] | None: ...

class _BodyPlan(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def schema(self) -> dict[str, Any] | None: ...
    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> Any: ...
    @property
    def converter(self) -> Callable[[Any], Any] | None: ...
    @property
    def fields(self) -> Sequence[_BodyField]: ...
    @property
    def numbers(self) -> Literal["int", "float"] | None: ...

class _RoutePlan(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def endpoint(self) -> Callable[..., Any]: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def status_code(self) -> int: ...
    @property
    def params(self) -> Sequence[_ParamPlan]: ...
    @property
    def body(self) -> _BodyPlan | None: ...
    @property
    def request_param(self) -> str | None: ...
    @property
    def response_param(self) -> str | None: ...
    @property
    def serialize(self) -> Callable[[Any], Any] | None: ...
    @property
    def model_type(self) -> type | None: ...
    @property
    def result_may_hold_bytes(self) -> bool: ...

# -- What a serve works with (spikard/_server.py ServeContext) ----------------------

class _DrivenLoop(Protocol):
    """``spikard._asyncio_bridge.DrivenLoop``, driven by bridge.rs."""

    @property
    def ready_queue(self) -> Any: ...  # has len(): callbacks ready to run
    @property
    def timer_heap(self) -> Any: ...  # has len(): timers scheduled
    def selector_fd(self) -> int: ...
    def run_once(self) -> float | None: ...

class _RequestTask(Protocol):
    """``spikard._asyncio_bridge.RequestTask``: made with ``tp_new`` by bridge.rs, which
    sets ``_request_coro`` and ``_request_context`` and, if the handler suspends, calls
    ``_continue`` and ``add_done_callback``."""

    _request_coro: Any
    _request_context: Any
    def _continue(self, loop: asyncio.AbstractEventLoop, coro: Any, pending: Any) -> None: ...

class _Bridge(Protocol):
    """``spikard._asyncio_bridge.Bridge``, used by bridge.rs."""

    @property
    def loop(self) -> _DrivenLoop: ...
    @property
    def task_type(self) -> type[_RequestTask]: ...
    @property
    def enter_task(self) -> Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None]: ...
    @property
    def leave_task(self) -> Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None]: ...
    @property
    def listed_tasks(self) -> set[Any]: ...
    @property
    def lists_weakly(self) -> bool: ...
    def start_sync(self, handler: Callable[..., Any], kwargs: dict[str, Any], /) -> Future[Any]: ...

class _Response(Protocol):
    """``spikard.Response``, read by convert.rs when a handler returns one."""

    @property
    def status_code(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def raw_headers(self) -> list[tuple[str, str]]: ...

class _Answers(Protocol):
    """``spikard._responding.Answers``, used by convert.rs, failures.rs and handler.rs."""

    @property
    def app(self) -> Any: ...
    @property
    def root_path(self) -> str: ...
    @property
    def encode(self) -> Callable[[Any], bytes]: ...
    @property
    def encode_json(self) -> Callable[[Any], bytes]: ...
    @property
    def request_type(self) -> Callable[..., Any]: ...
    @property
    def response_type(self) -> type[_Response]: ...
    @property
    def report_error(self) -> Callable[[BaseException, str], str]: ...
    @property
    def rejection_errors(self) -> Callable[[BaseException, list[Any]], list[dict[str, Any]]]: ...
    @property
    def for_exception(self) -> Callable[[BaseException], Any]: ...
    @property
    def validation_error_handler(self) -> Callable[[list[dict[str, Any]], Any], Any] | None: ...
    @property
    def for_status(self) -> Callable[[int, list[str]], Any] | None: ...
    def new_sub_response(self) -> Any: ...
    def finish_response(
        self, result: Any, sub: Any, status_code: int, serialize: Callable[[Any], Any] | None, /
    ) -> Any: ...

# (client, method, target, http_version, status, seconds, cut: the response was not
# delivered whole, stages: (name, milliseconds) of each stage reached when the log
# shows them)
_AccessRecord = tuple[str | None, str, str, str, int, float, bool, list[tuple[str, float]] | None]

class _ServerLog(Protocol):
    """The module ``spikard._logging``, called by access.rs and server.rs."""

    def write_access(self, batch: list[_AccessRecord], /) -> None: ...
    def access_console(self) -> Callable[[list[str]], None] | None: ...
    def warn(self, message: str, /) -> None: ...

class _ServeContext(Protocol):
    """``spikard._server.ServeContext``."""

    @property
    def bridge(self) -> _Bridge: ...
    @property
    def answers(self) -> _Answers: ...
    @property
    def log(self) -> _ServerLog: ...

class _ServeOptions(Protocol):
    """``spikard._server.ServeOptions``, read by server.rs."""

    @property
    def debug(self) -> bool: ...
    @property
    def max_body_size(self) -> int: ...
    @property
    def graceful_timeout(self) -> float: ...
    @property
    def header_read_timeout(self) -> float: ...
    @property
    def keep_alive(self) -> float: ...
    @property
    def write_timeout(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_head_size(self) -> int: ...
    @property
    def max_requests(self) -> int: ...
    @property
    def access_log(self) -> bool: ...
    @property
    def proxy_headers(self) -> bool: ...
    @property
    def forwarded_allow_ips(self) -> str: ...
    @property
    def peers_fd(self) -> int: ...
    @property
    def peer_slot(self) -> int: ...
    @property
    def server_timing(self) -> bool: ...
    @property
    def stage_stats(self) -> bool: ...
    @property
    def access_log_stages(self) -> bool: ...
    @property
    def stats_dir(self) -> str: ...

# -- Exports ---------------------------------------------------------------------------

@final
class Server:
    """Serves route plans on a listening socket, on the calling thread."""

    def __new__(cls) -> Server: ...
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
        ``shutdown()`` or, with ``signal_fd`` (the read end of Python's signal wake-up
        descriptor), SIGINT/SIGTERM; a second signal stops at once. ``ready`` is called
        once connections are accepted, ``on_max_requests`` once
        ``options.max_requests`` requests were answered. Returns the number of
        requests cut short. Raises ``ValueError`` for routes that cannot be served
        together and ``OSError`` for an unusable socket."""
    def shutdown(self) -> None:
        """Stops accepting; in-flight requests finish within the grace period."""
    def set_notice(self, name: str, value: str | None) -> None:
        """From now on every response carries the header ``name: value``, replacing any
        set before; ``value=None`` stops it. Callable from any thread, while serving or
        before. Raises ``ValueError`` for a name or value that is not a valid header."""

@final
class Completion:
    """Done-callback of a suspended handler's task (or a sync handler's future); hands
    the finished object to the waiting request. Made by the runtime only."""

    def __call__(self, finished: Any, /) -> None: ...

@final
class StatsSources:
    """The stage statistics ``--stats-file`` and the metrics exposition show: this
    process's (no ``directory``), or those of every worker of a supervisor that keep
    them in ``directory`` (``ServeOptions.stats_dir``), merged by route with those of
    the workers that have exited."""

    def __new__(cls, directory: str | None = None) -> StatsSources: ...
    def worker_exited(self, pid: int) -> None:
        """The worker ``pid`` has exited: its figures are kept, its file removed.
        Raises ``OSError`` when that fails (the file cannot be moved: it stays
        counted where it is; or it cannot be read: its figures are lost)."""
    def rows(self) -> list[_RouteRow]:
        """Every route's figures, merged, as ``stats_snapshot`` gives them."""
    def prometheus(self) -> str:
        """The figures in the Prometheus text exposition format (0.0.4)."""

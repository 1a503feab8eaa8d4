"""How the runtime runs handler coroutines: the one module that uses private asyncio names.

The runtime serves on one thread, which is also the thread of one asyncio event loop
created at startup. A request's coroutine is first stepped directly by the runtime
(``bridge.rs``: ``enter_task``, one ``send(None)`` in a fresh context, ``leave_task``),
with no event-loop round trip; most handlers finish there. A handler that suspends
continues as an ordinary ``asyncio.Task`` of that loop, which the runtime drives
from tokio: it waits on the selector's epoll descriptor, the loop's next timer, or
a wake-up from a request that scheduled work, and calls ``run_once`` when one is due.

Everything asyncio expects of a task holds from the handler's first line:
``current_task()`` is a real ``asyncio.Task`` (the same object before and after the
first await), ``asyncio.timeout``, ``gather``, ``create_task`` and
``get_running_loop`` work, and every request runs in its own ``contextvars`` context.

The private names differ between CPython versions; each is looked up by what the
interpreter offers (not by version number) below, with a comment per version. An
interpreter that lacks one fails at import with one line naming the supported versions.
Python 3.12's eager task factory steps a task's first step natively too, but builds a
full ``Task`` per request; ``docs/architecture.md`` records why this path is kept.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import contextvars
import platform
import selectors
import threading
import weakref
from asyncio import base_events, events, tasks
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spikard._sync_pool import SyncPool


def _supported() -> str:
    """``CPython 3.11, 3.12 and 3.13``: the versions the distribution's classifiers list
    (the ones its tests prove), read only when the interpreter is not one of them."""
    try:
        classifiers = metadata.metadata("spikard").get_all("Classifier") or []
    except metadata.PackageNotFoundError:
        classifiers = []
    prefix = "Programming Language :: Python :: "
    versions = [c.removeprefix(prefix) for c in classifiers if c.startswith(prefix + "3.")]
    if not versions:
        return "CPython 3.11 and newer"
    listed = ", ".join(versions[:-1]) + " and " + versions[-1] if len(versions) > 1 else versions[0]
    return f"CPython {listed}"


def _unsupported(what: str) -> ImportError:
    interpreter = f"{platform.python_implementation()} {platform.python_version()}"
    return ImportError(
        f"spikard supports {_supported()}; this interpreter ({interpreter}) lacks {what}, "
        "which spikard's asyncio bridge needs",
        name=__name__,
    )


def _private(owner: Any, name: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise _unsupported(f"{getattr(owner, '__name__', type(owner).__name__)}.{name}") from None


# Private asyncio names; nothing else in spikard touches asyncio internals.
# 3.11-3.13: make a task current on a loop (raises if another one is) and undo it.
enter_task = _private(tasks, "_enter_task")
leave_task = _private(tasks, "_leave_task")
# 3.11-3.13: the running loop of this thread, as asyncio.run() sets it.
_set_running_loop = _private(events, "_set_running_loop")
_Task = asyncio.Task
_task_init = asyncio.Task.__init__


def _task_listing() -> tuple[set[Any], bool]:
    """The set ``asyncio.all_tasks()`` reads that the runtime adds a task to while
    stepping it, and whether it holds weak references rather than tasks. Adding to it
    directly costs C calls only (no ``WeakSet.add``, which is Python code)."""
    # 3.12, 3.13: all_tasks() is the WeakSet of scheduled tasks plus a plain set of
    # tasks running their first step eagerly (not yet scheduled), ``_eager_tasks``.
    eager = getattr(tasks, "_eager_tasks", None)
    if isinstance(eager, set):
        return eager, False
    # 3.11: all_tasks() reads one WeakSet, ``_all_tasks``; its ``data`` holds the refs.
    every = getattr(tasks, "_all_tasks", None)
    if isinstance(every, weakref.WeakSet):
        return every.data, True
    raise _unsupported("asyncio.tasks._eager_tasks (3.12+) or asyncio.tasks._all_tasks (3.11)")


listed_tasks, lists_weakly = _task_listing()


def _check_listing() -> None:
    """Proves that what is added to ``listed_tasks`` is what ``all_tasks()`` lists: an
    interpreter could keep the set and read its tasks from elsewhere."""

    class Probe:
        def get_loop(self) -> object:
            return owner

        def done(self) -> bool:
            return False

    owner, probe = object(), Probe()
    entry: Any = weakref.ref(probe) if lists_weakly else probe
    listed_tasks.add(entry)
    try:
        listed: set[object] = set(tasks.all_tasks(owner))  # type: ignore[arg-type]  # any object will do
        seen = probe in listed
    finally:
        listed_tasks.discard(entry)
    if not seen:
        raise _unsupported("an asyncio.all_tasks() that reads asyncio.tasks' task sets")


_check_listing()

# 3.11-3.13: the one iteration of ``run_forever`` that DrivenLoop calls from outside;
# DrivenLoop also reads the loop's ``_ready`` deque, ``_scheduled`` heap of timers and
# ``_stopping`` flag, and sets ``_thread_id``: attributes ``BaseEventLoop.__init__`` sets.
_private(base_events.BaseEventLoop, "_run_once")


class _PollingSelector(selectors.EpollSelector):
    """While the runtime drives the loop, ``select`` never blocks: the runtime waits on
    this selector's epoll descriptor itself. Outside serving it behaves normally."""

    def __init__(self) -> None:
        super().__init__()
        self.driven = False
        self.had_events = False

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0 if self.driven else timeout)
        self.had_events = bool(ready)
        return ready


class DrivenLoop(asyncio.SelectorEventLoop):
    """The event loop handlers run on, stepped by the runtime rather than ``run_forever``."""

    def __init__(self) -> None:
        self._polling = _PollingSelector()
        super().__init__(self._polling)
        for name in ("_ready", "_scheduled", "_stopping", "_thread_id"):
            _private(self, name)
        # Read by the runtime to see whether a handler scheduled work.
        self.ready_queue = self._ready
        self.timer_heap = self._scheduled

    def selector_fd(self) -> int:
        return self._polling.fileno()

    def enter(self) -> None:
        """Make this the running loop of the calling thread, driven from outside."""
        self._polling.driven = True
        self._thread_id = threading.get_ident()
        _set_running_loop(self)

    def leave(self) -> None:
        _set_running_loop(None)
        self._thread_id = None  # type: ignore[assignment]  # asyncio's own "not running"
        self._polling.driven = False

    def run_once(self) -> float | None:
        """Run what is due; return seconds until the loop next needs to run
        (0.0: at once), or None when only I/O can wake it."""
        self._run_once()
        self.timer_heap = self._scheduled  # _run_once may replace the heap
        if self._ready or self._polling.had_events or self._stopping:
            return 0.0
        if self._scheduled:
            return max(0.0, self._scheduled[0].when() - self.time())
        return None

    def finish(self, grace: float = 5.0) -> None:
        """After serving: cancel tasks that outlived their requests, close the loop."""
        pending = [t for t in asyncio.all_tasks(self) if not t.done()]
        if pending:
            for task in pending:
                task.cancel()
            gathered = asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                self.run_until_complete(asyncio.wait_for(gathered, grace))
        self.run_until_complete(self.shutdown_asyncgens())
        self.close()


class RequestTask(_Task):
    """The current task of a handler from its first line.

    The runtime creates it with ``RequestTask.__new__`` (no ``Task.__init__``) and
    sets ``_request_coro`` and ``_request_context``; during the first step it answers
    what ``asyncio.timeout`` and task groups ask of the current task. If the handler
    suspends, ``_continue`` runs ``Task.__init__`` on this same object, which from
    then on is an ordinary task of the loop.
    """

    __slots__ = ("_request_context", "_request_coro")
    _request_coro: Any  # the handler's coroutine during the first step, then None
    _request_context: contextvars.Context
    # Cancellations requested during the first step (instance attributes only then).
    _early_cancels = 0
    _early_msg: Any = None

    @property
    def _first_step(self) -> bool:
        return self._request_coro is not None

    def cancel(self, msg: Any = None) -> bool:
        if self._first_step:
            self._early_cancels += 1
            self._early_msg = msg
            return True
        return super().cancel(msg)

    def uncancel(self) -> int:
        if self._first_step:
            if self._early_cancels > 0:
                self._early_cancels -= 1
            return self._early_cancels
        return super().uncancel()

    def cancelling(self) -> int:
        return self._early_cancels if self._first_step else super().cancelling()

    def done(self) -> bool:
        return False if self._first_step else super().done()

    def cancelled(self) -> bool:
        return False if self._first_step else super().cancelled()

    def get_coro(self) -> Any:
        return self._request_coro if self._first_step else super().get_coro()

    def get_context(self) -> contextvars.Context:
        # Task.get_context is 3.12+: on 3.11 this is what a task answers, none.
        return self._request_context if self._first_step else super().get_context()  # type: ignore[misc]

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return events.get_running_loop() if self._first_step else super().get_loop()

    def get_name(self) -> str:
        return "spikard-request" if self._first_step else super().get_name()

    def __repr__(self) -> str:
        if self._first_step:
            return f"<RequestTask first step, coro={self._request_coro!r}>"
        return super().__repr__()

    def _continue(self, loop: asyncio.AbstractEventLoop, coro: Any, pending: Any) -> None:
        """The handler suspended, waiting on ``pending``: become a real task."""
        context = self._request_context
        self._request_coro = None
        _task_init(self, _Continuation(coro, pending), loop=loop, context=context)
        # Cancellations that arrived during the first step apply now, as they
        # would have to a running task.
        for _ in range(self._early_cancels):
            super().cancel(self._early_msg)


_RESUMED = object()


class _Continuation(collections.abc.Coroutine):
    """Continues a coroutine that was already stepped once: first hands the task the
    future the handler is waiting on, then relays every step to the handler."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Any, pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def send(self, value: Any) -> Any:
        pending = self._pending
        if pending is not _RESUMED:
            self._pending = _RESUMED
            return pending
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        pending = self._pending
        if pending is not _RESUMED:
            # Cancelled before the task first ran: cancel what the handler awaits,
            # then deliver the exception where the handler waits.
            self._pending = _RESUMED
            if isinstance(pending, asyncio.Future):
                pending.cancel()
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)


@dataclass(frozen=True)
class Bridge:
    """What the runtime's coroutine driver (``bridge.rs``) works with during one serve:
    the loop handlers run on, how a request's task is made current and listed while
    its first step runs, and the thread pool plain ``def`` handlers run in."""

    loop: DrivenLoop
    executor: SyncPool
    task_type: type[RequestTask] = RequestTask
    # (loop, task) -> None: asyncio's own, called around a request's first step.
    enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] = enter_task
    leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] = leave_task
    listed_tasks: set[Any] = field(default_factory=lambda: listed_tasks)
    lists_weakly: bool = lists_weakly

    def start_sync(self, handler: Callable[..., Any], kwargs: dict[str, Any]) -> Future[Any]:
        """Runs a plain ``def`` handler in the thread pool, in a context of its own."""
        context = contextvars.copy_context()
        return self.executor.submit(context.run, handler, **kwargs)

"""The thread pool plain ``def`` handlers run in.

Like ``concurrent.futures.ThreadPoolExecutor`` (threads started as work arrives, up
to a limit, each reused), with one difference that the standard pool cannot be asked
for: its threads are daemon threads. A handler still running when the grace period
ends (or at a second Ctrl-C) has been counted as cut short by then; the process must
then exit at once, and the standard pool's threads would keep it alive until the
handler returns (its ``atexit`` hook joins them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

# A work item: the future to complete and the call that completes it.
_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class SyncPool:
    """``submit(fn, *args, **kwargs) -> Future``, on at most ``max_workers`` daemon
    threads named ``{thread_name_prefix}-N``."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "spikard-sync") -> None:
        if max_workers < 1:
            raise ValueError("a thread pool needs at least one thread")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)  # released by each thread waiting for work
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot run a handler after the pool was shut down")
            self._work.put((future, fn, args, kwargs))
            # An idle thread takes it; otherwise start one while there is room.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._serve, name=f"{self._prefix}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, fn, args, kwargs = work
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:
                    future.set_exception(error)
                    del error  # no cycle through the traceback
                else:
                    future.set_result(result)
            del work, future, fn, args, kwargs
            self._idle.release()

    def shutdown(self) -> None:
        """Cancels work not yet started and lets idle threads end, without waiting for
        running handlers (their threads end with the process)."""
        with self._lock:
            self._shut_down = True
            while True:
                try:
                    work = self._work.get_nowait()
                except queue.Empty:
                    break
                if work is not None:
                    work[0].cancel()
            for _ in self._threads:
                self._work.put(None)

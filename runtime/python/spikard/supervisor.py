"""The supervisor: one process that binds the listening socket once and keeps N
worker processes serving from it.

Workers are spawned fresh (``python -m spikard._worker``), or with
``--preload-imports`` forked from a template that has imported the app's packages
but never started the runtime (``spikard._template``, ``spikard._forked``); either
way each imports the app's own code as it is on disk now, and inherits the socket
and accepts from it. A worker tells the supervisor, over a pipe of its own, what it
imported from outside the app's folder (``imports NAMES``, passed to the template),
when it is serving (``ready``), why it cannot start (``failure JSON``, then
``failed LINE``, the one-line error with file and line), when it has served its
share of requests (``recycle``), and how many requests it cut short when it
stopped (``cut N``); the supervisor tells it when its answers are stale
(``stale TEXT``, with ``--stale-header``).

One rule holds throughout: a worker is retired only once its successor serves.
A successor that cannot start (the app does not import, its routes cannot be
served, it exits before it serves, or it does not serve within the start
timeout) is ended, and its predecessor keeps serving the code it has; the log
names the worker kept and the successor's error line.

- SIGHUP is the reload signal: the workers are replaced one at a time, each new
  one serving before its predecessor stops, so no connection is refused. When a
  successor cannot start, the rest of that rolling restart is abandoned; the
  next SIGHUP tries again.
- ``max_requests``: a worker that has served that many (plus jitter) is replaced
  the same way; while its successor cannot start it keeps serving past its
  share, and the replacement is tried again with a growing delay.
- A worker that dies is replaced; when replacements keep failing to start (or
  dying right after), each next one comes after a growing delay, and the log
  says why. If no worker ever starts, the supervisor gives up and exits non-zero.
- SIGTERM / SIGINT: the supervisor closes its copy of the socket and stops every
  worker gracefully (they stop accepting, finish in-flight requests within the
  grace period, then exit); it exits 0 and says how many requests were cut short.
  So it does when the reader of its ``--events-fd`` pipe goes away.

With ``--stats-file`` or ``--metrics-*``, each worker keeps its stage statistics in
a file of a directory the supervisor reads (``StatsExport``); the figures of a
worker that exits are kept, so every request counts exactly once.

Workers share connections through a table in shared memory (a memory file, one
slot per worker) where each publishes how many it holds: one ahead of the others
briefly leaves new connections to them (``runtime/http/src/peers.rs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import mmap
import os
import random
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spikard import _logging as logs
from spikard._events import Events, stale_text
from spikard._forked import ForkedProcess, Process, TemplateProcess
from spikard._server import ServeOptions, describe

if TYPE_CHECKING:
    from spikard._stats_export import StatsExport

# A worker that exits within this long of starting counts as a crash at start.
QUICK_DEATH_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
# How long a new worker may take to start serving; past it, it is ended.
START_TIMEOUT_SECONDS = 60.0


def backoff(failures: int) -> float:
    """The delay before the next try after ``failures`` failed ones in a row."""
    return min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1)) if failures else 0.0


def exit_reason(status: int) -> str:
    return f"exit status {status}" if status >= 0 else f"signal {signal.Signals(-status).name}"


@dataclass
class WorkerSpec:
    """What every worker is started with."""

    app: str
    options: ServeOptions = field(default_factory=ServeOptions)
    max_requests_jitter: int = 0
    log_level: str | None = None
    log_config: str | None = None


class ConnectionTable:
    """The shared table of connections per worker: a memory file of 8-byte slots, a
    worker's connection count (``u32``; ``0xFFFFFFFF`` while it does not accept, yet or
    any more) and its heartbeat (``u32`` milliseconds, stamped by its serving thread)."""

    NOT_ACCEPTING = b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00"
    SLOT = len(NOT_ACCEPTING)

    def __init__(self, slots: int) -> None:
        self.fd = os.memfd_create("spikard-connections")
        os.ftruncate(self.fd, self.SLOT * slots)
        self._map = mmap.mmap(self.fd, self.SLOT * slots)
        self._map[:] = self.NOT_ACCEPTING * slots
        self._free = list(range(slots))

    def take(self) -> int | None:
        """A free slot, or None when every slot is in use (the worker then does not share)."""
        return self._free.pop(0) if self._free else None

    def give_back(self, slot: int) -> None:
        """The worker in ``slot`` has exited."""
        self._map[self.SLOT * slot : self.SLOT * (slot + 1)] = self.NOT_ACCEPTING
        self._free.append(slot)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


@dataclass
class Worker:
    process: Process
    control: socket.socket  # the supervisor's end of the worker's pipe
    started: float
    ready: bool = False
    retiring: bool = False  # asked to stop; its exit is expected
    # Started to take over from another worker: if it cannot start, whoever
    # started it reports that, with the worker it keeps.
    successor: bool = False
    error: str | None = None  # why it cannot start, as it said (or why it was ended)
    share_served: bool = False  # has answered its max_requests: to be replaced
    successors_failed: int = 0  # successors that could not start, in a row
    replace_after: float = 0.0  # no successor before this time (back-off)
    buffer: bytes = b""
    cut: int = 0
    slot: int | None = None  # in the connection table
    failure: dict[str, Any] | None = None  # why it cannot start, in full (AppLoadError.to_json)

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Supervisor:
    spec: WorkerSpec
    sock: socket.socket
    count: int
    start_timeout: float = START_TIMEOUT_SECONDS
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False
    restart_requested: bool = False
    ever_ready: bool = False
    cut: int = 0
    quick_deaths: int = 0
    next_spawn_at: float = 0.0
    # Carries the workers' statistics out; told when a worker exits.
    stats: StatsExport | None = None
    # Where events go as JSON lines, for tools (``--events-fd``).
    events: Events | None = None
    # While a reload has failed, the workers' responses say so (``--stale-header``).
    stale_header: bool = False
    # Fork workers from a template that has imported the app's packages (``--preload-imports``).
    preload: bool = False
    _template: TemplateProcess | None = None
    _templates: list[TemplateProcess] = field(default_factory=list)  # every one still running
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    _table: ConnectionTable | None = None

    # -- processes ---------------------------------------------------------

    def spawn(self, successor: bool = False) -> Worker:
        ours, theirs = socket.socketpair()
        listen_fd = self.sock.fileno()
        options = self.spec.options
        if options.max_requests and self.spec.max_requests_jitter:
            jitter = random.randint(0, self.spec.max_requests_jitter)
            options = dataclasses.replace(options, max_requests=options.max_requests + jitter)
        slot = self._table.take() if self._table else None
        inherited = [listen_fd, theirs.fileno()]
        if self._table and slot is not None:
            options = dataclasses.replace(options, peers_fd=self._table.fd, peer_slot=slot)
            inherited.append(self._table.fd)
        argv = [self.spec.app, "--fd", str(listen_fd), "--options", json.dumps(dataclasses.asdict(options))]
        if self.spec.log_level:
            argv += ["--log-level", self.spec.log_level]
        if self.spec.log_config:
            argv += ["--log-config", self.spec.log_config]
        process = self._fork(argv, theirs)
        if process is None:
            process = subprocess.Popen(
                [sys.executable, "-m", "spikard._worker", *argv, "--control-fd", str(theirs.fileno())],
                pass_fds=inherited,
                # Terminal signals go to the supervisor only; it stops workers itself.
                start_new_session=True,
            )
        theirs.close()
        ours.setblocking(False)
        worker = Worker(process, ours, time.monotonic(), successor=successor, slot=slot)
        self._selector.register(ours, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

    # -- the template (--preload-imports) ------------------------------------

    def _start_template(self) -> None:
        """Starts a template; workers are spawned until it is ready."""
        inherited = [self.sock.fileno()] + ([self._table.fd] if self._table else [])
        template = TemplateProcess(self.spec, inherited)
        self._template = template
        self._templates.append(template)
        self._selector.register(template.control, selectors.EVENT_READ, template)

    def _fork(self, argv: list[str], control: socket.socket) -> Process | None:
        """A worker forked by the template; None when none is ready (the worker is
        then spawned)."""
        template = self._template
        if template is None or not template.usable:
            return None
        process = template.fork(argv, control)
        if process is None and not self.stopping:
            # A file it imported changed, or it stopped answering: a new one.
            template.retire()  # it exits once its workers have
            if template.state == "stale" or not template.gone:
                self._start_template()
        return process

    def _template_said(self, template: TemplateProcess) -> None:
        template.read()
        if not template.gone:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(template.control)
        self._templates.remove(template)
        status = template.process.wait()
        if template is self._template:
            self._template = None
            if self.stopping:
                return
            if template.state == "ready":
                logs.warn(f"the template forking workers exited ({exit_reason(status)}); starting another")
                self._start_template()
            elif template.state == "starting":
                logs.warn(f"the template could not start ({exit_reason(status)}); workers are spawned instead")

    def retire(self, worker: Worker) -> None:
        """Asks a worker to stop gracefully."""
        if not worker.retiring:
            worker.retiring = True
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)

    def _read(self, worker: Worker) -> None:
        try:
            data = worker.control.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(worker.control)
            if isinstance(worker.process, ForkedProcess):
                worker.process.closed_pipe()
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            self._message(worker, line.decode(errors="replace").strip())

    def _finish_reading(self, worker: Worker) -> None:
        """Takes what an exited worker still had to say, then drops its pipe."""
        with contextlib.suppress(OSError):
            while data := worker.control.recv(4096):
                worker.buffer += data
        for line in worker.buffer.split(b"\n"):
            self._message(worker, line.decode(errors="replace").strip())
        worker.buffer = b""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.control)
        worker.control.close()

    def _message(self, worker: Worker, message: str) -> None:
        if message == "ready":
            worker.ready = True
            self.ever_ready = True
            if self.events:
                self.events.emit("ready", pid=worker.pid, successor=worker.successor)
        elif message.startswith("failure "):
            with contextlib.suppress(ValueError):
                worker.failure = json.loads(message.removeprefix("failure "))
        elif message.startswith("imports "):
            # What it imported from outside the app's folder: the template imports it
            # too, so that the next worker need not.
            if self._template is not None:
                self._template.preload(message.split()[1:])
        elif message.startswith("failed "):
            worker.error = message.removeprefix("failed ")
        elif message == "recycle" and not self.stopping and not worker.retiring:
            # Replaced from the main loop, not here: a replacement waits for its
            # successor, and this runs while the supervisor waits for anything.
            logs.info(f"worker {worker.pid} served its share of requests; replacing it")
            worker.share_served = True
        elif message.startswith("cut "):
            worker.cut = int(message.split()[1])

    def _replace(self, old: Worker) -> bool:
        """Starts a successor and retires ``old`` once the successor serves. When
        the successor cannot start, ``old`` keeps serving, the log says why, and
        the answer is False."""
        new = self.spawn(successor=True)
        while not new.ready and new.process.poll() is None and not self.stopping:
            self._wait(0.05)
        if new.ready:
            if self.stale_header:
                # What it still answers while it drains is old code: say so.
                with contextlib.suppress(OSError):
                    old.control.sendall(f"stale superseded by worker {new.pid}\n".encode())
            self.retire(old)
            return True
        if not self.stopping:
            reason = new.error or exit_reason(new.process.wait())
            logs.error(
                f"worker {old.pid} keeps serving: its successor {new.pid} could not start: {reason}",
                event="reload-failed",
            )
            failure = new.failure or {"message": reason}
            stale = stale_text(failure) if self.stale_header else None
            if self.events:
                self.events.emit("reload-failed", pid=new.pid, kept=old.pid, failure=failure, stale=stale)
            if stale is not None:
                self._mark_stale(stale)
        return False

    def _mark_stale(self, text: str) -> None:
        """Every worker still serving says, in a header on each response, that the
        code on disk could not be loaded, and why (``text``)."""
        for worker in self.workers:
            if worker.ready and not worker.retiring:
                with contextlib.suppress(OSError):
                    worker.control.sendall(f"stale {text}\n".encode())

    def _end_overdue_starts(self) -> None:
        """A worker not serving ``start_timeout`` after it started is stuck (an
        import that never returns, say): it is ended, and counts as failed to start."""
        now = time.monotonic()
        for worker in self.workers:
            if not worker.ready and worker.error is None and now - worker.started > self.start_timeout:
                worker.error = f"not serving {self.start_timeout:g} s after it started"
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()

    def _reap(self) -> None:
        for worker in list(self.workers):
            status = worker.process.poll()
            if status is None:
                continue
            self._finish_reading(worker)
            self.workers.remove(worker)
            if self._table and worker.slot is not None:
                self._table.give_back(worker.slot)
            if self.stats is not None:
                self.stats.worker_exited(worker.pid)
            self.cut += worker.cut
            if worker.retiring or self.stopping or (worker.successor and not worker.ready):
                continue  # expected, or reported by _replace with the worker it keeps
            self._schedule_replacement(worker, status)

    def _schedule_replacement(self, dead: Worker, status: int) -> None:
        """Says why ``dead`` is gone and when the main loop starts another."""
        lived = time.monotonic() - dead.started
        if not dead.ready or lived < QUICK_DEATH_SECONDS:
            self.quick_deaths += 1
        else:
            self.quick_deaths = 0
        delay = backoff(self.quick_deaths)
        self.next_spawn_at = time.monotonic() + delay
        later = f"; starting another in {delay:.1f} s" if delay else "; starting another"
        reason = dead.error or exit_reason(status)
        if dead.ready:
            logs.warn(f"worker {dead.pid} died ({reason}){later}")
        else:
            logs.error(f"worker {dead.pid} could not start: {reason}{later}", event="start-failed")
            if self.events:
                self.events.emit("start-failed", pid=dead.pid, failure=dead.failure or {"message": reason})

    # -- the loop ----------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                assert isinstance(key.fileobj, socket.socket)  # the signal pipe's reader
                self._drain_signals(key.fileobj)
            elif isinstance(key.data, TemplateProcess):
                self._template_said(key.data)
            elif isinstance(key.data, Events):
                # The tool reading the events is gone: so is the reason to serve.
                logs.warn("the reader of --events-fd is gone; stopping")
                self._selector.unregister(key.fileobj)
                self.stopping = True
            else:
                self._read(key.data)
        self._end_overdue_starts()
        self._reap()

    def _drain_signals(self, reader: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            for signum in reader.recv(64):
                if signum in (signal.SIGINT, signal.SIGTERM):
                    self.stopping = True
                elif signum == signal.SIGHUP:
                    self.restart_requested = True

    def run(self) -> int:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._selector.register(reader, selectors.EVENT_READ, None)
        if self.events is not None and stat.S_ISFIFO(os.fstat(self.events.fd).st_mode):
            # Woken when the reader closes its end (a pipe's write end reports an error).
            self._selector.register(self.events.fd, selectors.EVENT_READ, self.events)
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
        # Room for a successor beside every worker during restarts.
        self._table = ConnectionTable(2 * self.count)
        try:
            return self._serve()
        finally:
            self._table.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            for worker in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
            for template in self._templates:
                template.stop()
                template.process.wait()
            reader.close()
            writer.close()

    def _serve(self) -> int:
        logs.info(
            f"supervisor {os.getpid()} serving {self.spec.app} on {describe(self.sock)} "
            f"with {self.count} worker(s) (Ctrl-C to stop)"
        )
        if self.preload:
            self._start_template()
        for _ in range(self.count):
            self.spawn()
        while not self.stopping:
            self._wait(0.2)
            if not self.ever_ready and not self.workers and self.quick_deaths >= self.count:
                logs.error("the app could not start in any worker; giving up")
                return 1
            if self.restart_requested:
                self.restart_requested = False
                self._rolling_restart()
            self._recycle()
            missing = self.count - sum(not w.retiring for w in self.workers)
            if missing > 0 and time.monotonic() >= self.next_spawn_at and not self.stopping:
                for _ in range(missing):
                    self.spawn()
        return self._stop()

    def _rolling_restart(self) -> None:
        logs.info("SIGHUP: replacing the workers one at a time")
        began = time.monotonic()
        if self.events:
            self.events.emit("reloading")
        olds = [w for w in self.workers if not w.retiring]
        for done, old in enumerate(olds):
            if self.stopping:
                return
            if old not in self.workers:  # died meanwhile; replaced as any dead worker
                continue
            if self._replace(old):
                continue
            if not self.stopping:
                logs.warn(
                    f"SIGHUP: rolling restart abandoned; {len(olds) - done} worker(s) keep the code "
                    "they run; the next SIGHUP tries again",
                    event="reload-failed",
                )
            return
        logs.info("SIGHUP: every worker replaced")
        if self.events:
            pids = [w.pid for w in self.workers if w.ready and not w.retiring]
            self.events.emit("reloaded", pids=pids, seconds=round(time.monotonic() - began, 4))

    def _recycle(self) -> None:
        """Replaces the workers that have served their share of requests; one whose
        successor cannot start keeps serving and is tried again later."""
        for old in [w for w in self.workers if w.share_served and not w.retiring]:
            if self.stopping or old not in self.workers or time.monotonic() < old.replace_after:
                continue
            if not self._replace(old) and not self.stopping:
                old.successors_failed += 1
                delay = backoff(old.successors_failed)
                old.replace_after = time.monotonic() + delay
                logs.warn(f"worker {old.pid} keeps serving past its share of requests; trying again in {delay:.1f} s")

    def _stop(self) -> int:
        logs.info("stopping; in-flight requests may finish")
        # New connections are refused once no process holds the socket open.
        self.sock.close()
        for worker in self.workers:
            self.retire(worker)
        deadline = time.monotonic() + self.spec.options.graceful_timeout + 10.0
        while self.workers and time.monotonic() < deadline:
            self._wait(0.1)
        for template in self._templates:
            template.retire()
        for worker in self.workers:  # past every grace period: end them
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        cut = f"; {self.cut} request(s) were cut short" if self.cut else ""
        logs.info(f"stopped{cut}")
        return 0

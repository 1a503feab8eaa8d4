"""The supervisor: one process that binds the listening socket once and keeps N
worker processes serving from it.

Workers are spawned fresh (``python -m spikard._worker``), never forked from a
process whose runtime has started; each inherits the socket and accepts from it.
A worker tells the supervisor, over a pipe of its own, when it is serving
(``ready``), when it has served its share of requests (``recycle``), and how many
requests it cut short when it stopped (``cut N``).

- A worker that dies is replaced; one that dies again and again right after
  starting is replaced with a growing delay, and said so. If no worker ever
  starts, the supervisor gives up and exits non-zero.
- SIGTERM / SIGINT: the supervisor closes its copy of the socket and stops every
  worker gracefully (they stop accepting, finish in-flight requests within the
  grace period, then exit); it exits 0 and says how many requests were cut short.
- SIGHUP: workers are replaced one at a time, each new one serving before its
  predecessor stops, so no connection is refused.
- ``max_requests``: a worker that has served that many (plus jitter) is replaced
  the same way.

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
import subprocess
import sys
import time
from dataclasses import dataclass, field

from spikard import _logging as logs
from spikard._server import ServeOptions, describe

# A worker that exits within this long of starting counts as a crash at start.
QUICK_DEATH_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
# How long a new worker may take to start serving.
START_TIMEOUT_SECONDS = 60.0


@dataclass
class WorkerSpec:
    """What every worker is started with."""

    app: str
    options: ServeOptions = field(default_factory=ServeOptions)
    max_requests_jitter: int = 0
    log_level: str | None = None
    log_config: str | None = None


class ConnectionTable:
    """The shared table of connections per worker: a memory file of ``u32`` slots,
    ``0xFFFFFFFF`` for a slot whose worker does not accept (yet, or any more)."""

    NOT_ACCEPTING = b"\xff\xff\xff\xff"

    def __init__(self, slots: int) -> None:
        self.fd = os.memfd_create("spikard-connections")
        os.ftruncate(self.fd, 4 * slots)
        self._map = mmap.mmap(self.fd, 4 * slots)
        self._map[:] = self.NOT_ACCEPTING * slots
        self._free = list(range(slots))

    def take(self) -> int | None:
        """A free slot, or None when every slot is in use (the worker then does not share)."""
        return self._free.pop(0) if self._free else None

    def give_back(self, slot: int) -> None:
        """The worker in ``slot`` has exited."""
        self._map[4 * slot : 4 * slot + 4] = self.NOT_ACCEPTING
        self._free.append(slot)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    control: socket.socket  # the supervisor's end of the worker's pipe
    started: float
    ready: bool = False
    retiring: bool = False  # asked to stop; its exit is expected
    buffer: bytes = b""
    cut: int = 0
    slot: int | None = None  # in the connection table

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Supervisor:
    spec: WorkerSpec
    sock: socket.socket
    count: int
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False
    restart_requested: bool = False
    ever_ready: bool = False
    cut: int = 0
    quick_deaths: int = 0
    next_spawn_at: float = 0.0
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    _table: ConnectionTable | None = None

    # -- processes ---------------------------------------------------------

    def spawn(self) -> Worker:
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
        command = [
            sys.executable,
            "-m",
            "spikard._worker",
            self.spec.app,
            "--fd",
            str(listen_fd),
            "--control-fd",
            str(theirs.fileno()),
            "--options",
            json.dumps(dataclasses.asdict(options)),
        ]
        if self.spec.log_level:
            command += ["--log-level", self.spec.log_level]
        if self.spec.log_config:
            command += ["--log-config", self.spec.log_config]
        process = subprocess.Popen(
            command,
            pass_fds=inherited,
            # Terminal signals go to the supervisor only; it stops workers itself.
            start_new_session=True,
        )
        theirs.close()
        ours.setblocking(False)
        worker = Worker(process, ours, time.monotonic(), slot=slot)
        self._selector.register(ours, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

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
        elif message == "recycle" and not self.stopping and not worker.retiring:
            logs.info(f"worker {worker.pid} served its share of requests; replacing it")
            self._replace(worker)
        elif message.startswith("cut "):
            worker.cut = int(message.split()[1])

    def _replace(self, old: Worker) -> None:
        """Starts a successor; ``old`` stops once the successor serves."""
        new = self.spawn()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not new.ready and new.process.poll() is None and time.monotonic() < deadline:
            self._wait(0.05)
        self.retire(old)

    def _reap(self) -> None:
        for worker in list(self.workers):
            status = worker.process.poll()
            if status is None:
                continue
            self._finish_reading(worker)
            self.workers.remove(worker)
            if self._table and worker.slot is not None:
                self._table.give_back(worker.slot)
            self.cut += worker.cut
            if worker.retiring or self.stopping:
                continue
            lived = time.monotonic() - worker.started
            reason = f"exit status {status}" if status >= 0 else f"signal {signal.Signals(-status).name}"
            if lived < QUICK_DEATH_SECONDS:
                self.quick_deaths += 1
            else:
                self.quick_deaths = 0
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (self.quick_deaths - 1)) if self.quick_deaths else 0.0
            self.next_spawn_at = time.monotonic() + delay
            later = f"; starting another in {delay:.1f} s" if delay else "; starting another"
            logs.warn(f"worker {worker.pid} died ({reason}){later}")

    # -- the loop ----------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                self._drain_signals(key.fileobj)
            else:
                self._read(key.data)
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
            reader.close()
            writer.close()

    def _serve(self) -> int:
        logs.info(
            f"supervisor {os.getpid()} serving {self.spec.app} on {describe(self.sock)} "
            f"with {self.count} worker(s) (Ctrl-C to stop)"
        )
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
            missing = self.count - sum(not w.retiring for w in self.workers)
            if missing > 0 and time.monotonic() >= self.next_spawn_at and not self.stopping:
                for _ in range(missing):
                    self.spawn()
        return self._stop()

    def _rolling_restart(self) -> None:
        logs.info("SIGHUP: replacing the workers one at a time")
        for old in [w for w in self.workers if not w.retiring]:
            if self.stopping:
                return
            self._replace(old)

    def _stop(self) -> int:
        logs.info("stopping; in-flight requests may finish")
        # New connections are refused once no process holds the socket open.
        self.sock.close()
        for worker in self.workers:
            self.retire(worker)
        deadline = time.monotonic() + self.spec.options.graceful_timeout + 10.0
        while self.workers and time.monotonic() < deadline:
            self._wait(0.1)
        for worker in self.workers:  # past every grace period: end them
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        cut = f"; {self.cut} request(s) were cut short" if self.cut else ""
        logs.info(f"stopped{cut}")
        return 0

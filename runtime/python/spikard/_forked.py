"""The supervisor's side of ``--preload-imports``: the template process
(``spikard._template``) and the workers it forks.

A forked worker is the template's child: the template reaps it and reports its exit,
and signals reach it through the template, which only signals a child it has not
reaped, so a pid the system may have reused is never signalled. A template that exits
leaves its workers orphaned (their parent-death signal stops them gracefully); their
exit is then known when their control pipe closes."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Protocol

from spikard import _logging as logs

if TYPE_CHECKING:
    from spikard.supervisor import WorkerSpec

# How long the template may take to answer a spawn before it is given up.
FORK_REPLY_TIMEOUT = 2.0


class Process(Protocol):
    """A worker's process: spawned (``subprocess.Popen``) or forked by a template."""

    @property
    def pid(self) -> int: ...
    def poll(self) -> int | None: ...
    def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class ForkedProcess:
    """A worker forked by a template."""

    def __init__(self, pid: int, template: TemplateProcess) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.orphaned = False  # its template has exited
        self._template = template

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None and not self.orphaned:
            self._template.pump(0.1)
        return self.returncode if self.returncode is not None else -signal.SIGTERM

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self._template.signal(self, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def closed_pipe(self) -> None:
        """Its control pipe closed: for an orphan, that is all there is to know of its exit."""
        if self.orphaned and self.returncode is None:
            self.returncode = -signal.SIGTERM


class TemplateProcess:
    """A running template. ``state``: ``starting``, then ``ready`` (it forks),
    ``unusable`` (its imports started threads, or it stopped answering) or ``stale``
    (a file it imported changed); ``gone`` once it has exited."""

    def __init__(self, spec: WorkerSpec, inherited: list[int]) -> None:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "spikard._template", spec.app, "--control-fd", str(theirs.fileno())]
        if spec.log_level:
            command += ["--log-level", spec.log_level]
        if spec.log_config:
            command += ["--log-config", spec.log_config]
        self.process = subprocess.Popen(command, pass_fds=[*inherited, theirs.fileno()], start_new_session=True)
        theirs.close()
        self.control = ours
        self.state = "starting"
        self.gone = False
        self.children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}  # exits reported before their pid was read
        self._buffer = b""
        self._awaiting_fork = False
        self._forked: ForkedProcess | None = None
        self._refused: str | None = None
        self._pending: list[str] = []  # to preload once ready

    @property
    def usable(self) -> bool:
        return self.state == "ready" and not self.gone

    def fork(self, argv: list[str], control: socket.socket) -> ForkedProcess | None:
        """A worker forked with ``argv`` (``spikard._worker``'s, without ``--control-fd``)
        and ``control`` as its pipe; None when this template no longer forks."""
        self._forked, self._refused, self._awaiting_fork = None, None, True
        try:
            socket.send_fds(self.control, [f"spawn {json.dumps(argv)}\n".encode()], [control.fileno()])
            deadline = time.monotonic() + FORK_REPLY_TIMEOUT
            while self._forked is None and self._refused is None and not self.gone:
                if time.monotonic() > deadline:
                    logs.warn("the template did not answer a spawn in time; starting another")
                    self.state = "unusable"
                    break
                self.pump(0.05)
        except OSError:
            self.state = "unusable"
        finally:
            self._awaiting_fork = False
        if self._refused is not None:
            self.state = "stale" if self._refused.startswith("stale ") else "unusable"
            changed = self._refused.removeprefix("stale ")
            if self._refused.startswith("stale ") and changed != "retired":
                logs.info(f"{changed} changed since the template imported it; starting another")
        return self._forked

    def preload(self, names: list[str]) -> None:
        """Asks it to import ``names`` too: what a worker imported from outside the app's
        folder (kept until it is ready, when it is starting)."""
        if self.state == "starting":
            self._pending = names
        elif names and self.usable:
            with contextlib.suppress(OSError):
                self.control.sendall(f"preload {' '.join(names)}\n".encode())

    def signal(self, child: ForkedProcess, sig: int) -> None:
        if child.orphaned:
            # Still holding its pipe open, so alive: its pid is its own.
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, sig)
            return
        with contextlib.suppress(OSError):
            self.control.sendall(f"signal {child.pid} {int(sig)}\n".encode())

    def pump(self, timeout: float) -> None:
        """Reads what the template says, waiting up to ``timeout`` for something."""
        if self.gone:
            return
        ready, _, _ = select.select([self.control], [], [], timeout)
        if ready:
            self.read()

    def read(self) -> None:
        try:
            data = self.control.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._exited()
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._message(line.decode(errors="replace"))

    def _message(self, message: str) -> None:
        if message == "ready":
            self.state = "ready"
            self.preload(self._pending)
        elif message.startswith("threads "):
            self.state = "unusable"
            self._refused = message
            logs.warn(
                f"the app's imports started {message.split()[1]} threads, and a process with threads cannot be "
                "forked safely: workers are spawned instead (slower restarts)"
            )
        elif message.startswith("pid "):
            child = ForkedProcess(int(message.split()[1]), self)
            self.children[child.pid] = child
            if child.pid in self._early_exits:
                child.returncode = self._early_exits.pop(child.pid)
            if self._awaiting_fork:
                self._forked = child
            else:  # answered after the supervisor gave up on it: unknown to it, so ended
                self.signal(child, signal.SIGTERM)
        elif message.startswith("stale "):
            self._refused = message
        elif message.startswith("exit "):
            _, pid, status = message.split()
            exited = self.children.pop(int(pid), None)
            if exited is not None:
                exited.returncode = int(status)
            else:
                self._early_exits[int(pid)] = int(status)

    def _exited(self) -> None:
        self.gone = True
        for child in self.children.values():
            child.orphaned = True
        with contextlib.suppress(OSError):
            self.control.close()

    def retire(self) -> None:
        """No more forks; it exits once its last worker has."""
        with contextlib.suppress(OSError):
            self.control.sendall(b"retire\n")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

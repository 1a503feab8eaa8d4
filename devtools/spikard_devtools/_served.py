"""An app served by ``spikard run`` on a socket bound here, for one phase of a
profile: started with documented flags only, asked whether it serves, sent single
requests, and stopped with SIGINT (so that ``--stats-file`` is written at shutdown).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from spikard_devtools._placement import pinned
from spikard_devtools._requests import Probe


class Serving(Protocol):
    """A running server requests can be sent to, whose output can be shown."""

    def send(self, probe: Probe, timeout: float = 30.0) -> Answer: ...

    def output(self) -> str: ...


class NotServing(Exception):
    """The app did not start serving; the message has what ``spikard run`` printed."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class CpuTimes:
    """Seconds of CPU a process tree used, in user space and in the kernel."""

    user: float
    system: float

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)

    @property
    def kernel_share(self) -> float | None:
        """The kernel's part of the CPU used; None when none was."""
        total = self.user + self.system
        return self.system / total if total > 0 else None


class ServedApp:
    def __init__(self, app: str, run_args: list[str], *, pin: str | None = None) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        # What spikard run prints, kept to show when it fails (the file goes when this
        # object does).
        self._output = tempfile.TemporaryFile()  # noqa: SIM115
        command = [sys.executable, "-m", "spikard", "run", app, "--fd", str(self.sock.fileno()), *run_args]
        self.process = subprocess.Popen(
            pinned(command, pin),
            pass_fds=(self.sock.fileno(),),
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl-C is for the profiler, which stops it
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Returns once the app answers a request (any answer; the listening socket
        is bound already, so a connection waits until the app accepts it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NotServing(f"spikard run exited with status {self.process.returncode}:\n{self.output()}")
            if answers(self.port):
                return
            time.sleep(0.05)
        raise NotServing(f"the app did not answer within {timeout:.0f} s:\n{self.output()}")

    def send(self, probe: Probe, timeout: float = 30.0) -> Answer:
        return send(self.port, probe, timeout)

    def pids(self) -> list[int]:
        """The server and every process under it (a supervisor's workers)."""
        return tree(self.process.pid)

    def cpu_times(self) -> CpuTimes:
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                user += int(fields[11]) / ticks
                system += int(fields[12]) / ticks
        return CpuTimes(user, system)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, as Ctrl-C would; killed if it has not stopped within ``timeout``, or
        at once on a second Ctrl-C (never left running: it has a session of its own)."""
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except (subprocess.TimeoutExpired, KeyboardInterrupt) as stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
                    if isinstance(stopped, KeyboardInterrupt):
                        raise
        finally:
            self.sock.close()
        return self.process.returncode


def send(port: int, probe: Probe, timeout: float = 30.0) -> Answer:
    """``probe`` sent once to 127.0.0.1:``port`` on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        # Header by header, as oha sends them: a name given twice stays twice.
        given = {name.lower() for name, _ in probe.headers}
        connection.putrequest(probe.method, probe.target, skip_host="host" in given, skip_accept_encoding=True)
        for name, value in probe.headers:
            connection.putheader(name, value)
        if probe.body is not None and "content-length" not in given:
            connection.putheader("content-length", str(len(probe.body)))
        connection.endheaders(probe.body)
        response = connection.getresponse()
        return Answer(response.status, response.read())
    finally:
        connection.close()


def answers(port: int) -> bool:
    """Whether a server on 127.0.0.1:``port`` answers an HTTP request (any answer)."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            connection.request("GET", "/__spikard_ready__")
            connection.getresponse().read()
            return True
        finally:
            connection.close()
    return False


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                queue.extend(int(child) for child in children)
    return found

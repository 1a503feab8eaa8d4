"""Talking to a served app: single requests sent and their answers, whether it
answers yet, its process tree and CPU time (the processes themselves: ``_server``)."""

from __future__ import annotations

import contextlib
import http.client
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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

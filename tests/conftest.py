"""Shared helpers: free ports, problem+json checks, and ``spikard run`` subprocesses."""

from __future__ import annotations

import http.client
import platform
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import spikard

PROBLEM_JSON = "application/problem+json"


def pytest_report_header() -> str:
    """Which build the run tests: each interpreter has its own."""
    interpreter = f"{platform.python_implementation()} {platform.python_version()}"
    return f"spikard {spikard.__version__} on {interpreter}, from {Path(spikard.__file__).parent}"


STARTUP_TIMEOUT = 20.0


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Polls ``condition`` until it gives something true, and returns that; fails the
    test after ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spikard_command() -> list[str]:
    """The ``spikard`` console script of the Python running the tests."""
    script = Path(sys.executable).with_name("spikard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "spikard.cli"]


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, f"problem body lacks {key!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert {"loc", "msg", "type"} <= error.keys(), error
    return body


def errors_of(response: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The (loc, type) pairs of a 422 problem response, in order."""
    body = assert_problem(response, 422)
    return [(tuple(error["loc"]), error["type"]) for error in body["errors"]]


def http_get(port: int, path: str, *, timeout: float = 10.0, host: str = "127.0.0.1") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class SpikardProcess:
    """A ``spikard run`` (or other) server subprocess; stderr (and stdout, where the
    access log goes, when ``stdout_path`` is given) go to files."""

    def __init__(
        self, args: Sequence[str], cwd: Path, port: int, stderr_path: Path, stdout_path: Path | None = None
    ) -> None:
        self.args = list(args)
        self.port = port
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self._stderr = stderr_path.open("wb")
        self._stdout = stdout_path.open("wb") if stdout_path else None
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            stdout=self._stdout or subprocess.DEVNULL,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
        )

    @property
    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        assert self.stdout_path is not None, "started without stdout_path"
        return self.stdout_path.read_text(errors="replace")

    def wait_serving(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Waits until the server answers an HTTP request (any status): by then it
        has installed its signal handlers, which a bare TCP connect would not prove."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.args} exited with {self.proc.returncode} before serving:\n{self.stderr}")
            try:
                http_get(self.port, "/__spikard_probe__", timeout=2.0)
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"{self.args} did not answer on port {self.port} within {timeout}s:\n{self.stderr}")

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        return http_get(self.port, path, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Sends ``sig`` and returns the exit status."""
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.args} did not exit within {timeout}s:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()
        if self._stdout:
            self._stdout.close()


def write_app(folder: Path, source: str, name: str = "app.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def spikard_server(tmp_path: Path) -> Iterator[Callable[..., SpikardProcess]]:
    """Factory: ``spikard_server(source, target=None, args=(), name="app.py")`` writes
    ``source`` (unless None) to ``tmp_path/name``, runs ``spikard run TARGET --port PORT`` with
    ``cwd=tmp_path``, waits until it serves, and kills it at teardown if still running."""
    started: list[SpikardProcess] = []

    def start(
        source: str | None,
        target: str | None = None,
        args: Sequence[str] = (),
        name: str = "app.py",
        wait: bool = True,
    ) -> SpikardProcess:
        if source is not None:
            write_app(tmp_path, source, name)
        port = free_port()
        command = [*spikard_command(), "run", target or name, "--port", str(port), *args]
        n = len(started)
        server = SpikardProcess(command, tmp_path, port, tmp_path / f"stderr-{n}.txt", tmp_path / f"stdout-{n}.txt")
        started.append(server)
        if wait:
            server.wait_serving()
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def script_server(tmp_path: Path) -> Iterator[Callable[..., SpikardProcess]]:
    """Factory: runs ``python SCRIPT PORT`` (a script calling ``app.run``) and waits until it serves."""
    started: list[SpikardProcess] = []

    def start(source: str, name: str = "script.py") -> SpikardProcess:
        write_app(tmp_path, source, name)
        port = free_port()
        server = SpikardProcess(
            [sys.executable, name, str(port)], tmp_path, port, tmp_path / f"script-{len(started)}.txt"
        )
        started.append(server)
        server.wait_serving()
        return server

    yield start
    for server in started:
        server.kill()


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Runs ``spikard ARGS`` to completion (for commands expected to exit by themselves)."""
    return subprocess.run(
        [*spikard_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )

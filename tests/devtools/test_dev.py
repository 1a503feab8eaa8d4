"""``spikard dev`` as a user runs it: a real process on a real port, files saved
under it, and HTTP clients watching what it serves."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, spikard_command, wait_until

APP = """\
from spikard import Spikard

app = Spikard()


@app.get("/version")
async def version():
    return {{"version": {version}}}
"""


def write_app(folder: Path, version: int, name: str = "app.py") -> None:
    """Saves the app as an editor would: a new version of the whole file."""
    path = folder / name
    path.write_text(APP.format(version=version))


def get(port: int, path: str = "/version", timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def version_of(port: int) -> int | None:
    try:
        status, _, body = get(port, timeout=2.0)
    except OSError:
        return None
    return json.loads(body)["version"] if status == 200 else None


class Dev:
    """A ``spikard dev`` process in ``folder``, its output kept."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.err = folder / "dev.err"
        self.out = folder / "dev.out"
        self.proc = subprocess.Popen(
            [*spikard_command(), "dev", *args, "--port", str(self.port)],
            cwd=folder,
            stdout=self.out.open("wb"),
            stderr=self.err.open("wb"),
        )

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def reloads(self) -> int:
        return self.stderr.count("reloaded in")

    def descendants(self) -> set[int]:
        """Every process under ``spikard dev`` now (supervisor, template, workers)."""
        found, frontier = set(), [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.add(child)
                frontier.append(child)
        return found

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[callable]:
    started: list[Dev] = []

    def start(*args: str, version: int | None = 1) -> Dev:
        if version is not None:
            write_app(tmp_path, version)
        process = Dev(tmp_path, *args)
        started.append(process)
        if version is not None:
            wait_until(lambda: version_of(process.port) == version, timeout=30, what="spikard dev serving")
        return process

    yield start
    for process in started:
        pids = process.descendants()
        process.stop()
        left = [pid for pid in pids if not gone(pid)]
        assert left == [], f"processes left behind: {left}"


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` has exited (a zombie counts) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_an_edit_is_served_within_a_second_with_server_timing(dev, tmp_path):
    server = dev()
    status, headers, _ = get(server.port)
    assert status == 200
    assert "handler;dur=" in headers["server-timing"]
    write_app(tmp_path, 2)
    saved = time.monotonic()
    wait_until(lambda: version_of(server.port) == 2, timeout=5, what="the edit served")
    assert time.monotonic() - saved < 1.0
    assert "app.py changed; reloading" in server.stderr
    # One line per request, with its stages.
    wait_until(lambda: "handler" in server.out.read_text(), what="an access line with stages")
    assert "200 GET /version" in server.out.read_text()


class Hammer:
    """Clients sending requests back to back until stopped, half on keep-alive
    connections (as browsers and HTTP client sessions do), half on fresh ones."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.versions: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i % 2 == 0,)) for i in range(clients)]

    def _run(self, keep_alive: bool) -> None:
        connection = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/version")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    self.failures.append(f"{response.status} {body!r}")
                else:
                    self.ok += 1
                    self.versions.append(json.loads(body)["version"])
                if not keep_alive or response.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection = None

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_a_client_hammering_across_20_saves_sees_no_failure(dev, tmp_path):
    server = dev()
    with Hammer(server.port) as hammer:
        for version in range(2, 22):
            write_app(tmp_path, version)
            wait_until(lambda v=version: version_of(server.port) == v, timeout=10, what=f"version {version}")
        time.sleep(0.3)
    assert hammer.failures == []
    assert hammer.ok > 100
    assert hammer.versions[-1] == 21


def test_a_syntax_error_keeps_the_old_code_marked_stale_until_a_fix(dev, tmp_path):
    server = dev()
    (tmp_path / "app.py").write_text(APP.format(version=2) + "\n\nbroken = (\n")
    wait_until(lambda: "SyntaxError" in server.stderr, what="the syntax error shown")

    def stale() -> str | None:
        status, headers, body = get(server.port)
        assert status == 200 and json.loads(body)["version"] == 1  # the last good code
        return headers.get("spikard-stale")

    marked = wait_until(stale, what="responses marked stale")
    assert marked.startswith("app.py:") and marked.endswith("SyntaxError"), marked
    line = int(marked.split()[0].split(":")[1])
    assert (tmp_path / "app.py").read_text().splitlines()[line - 1].startswith("broken = (")
    assert "app.py" in server.stderr and "stale" in server.stderr
    assert server.stderr.count("SyntaxError: ") == 1  # shown once

    write_app(tmp_path, 3)
    wait_until(lambda: version_of(server.port) == 3, what="the fix served")
    assert "spikard-stale" not in get(server.port)[1]


def test_an_exception_at_import_names_its_file_and_line(dev, tmp_path):
    server = dev()
    (tmp_path / "app.py").write_text(APP.format(version=2) + "\n\nraise RuntimeError('no database')\n")
    marked = wait_until(lambda: get(server.port)[1].get("spikard-stale"), what="responses marked stale")
    lines = (tmp_path / "app.py").read_text().splitlines()
    assert marked == f"app.py:{lines.index('raise RuntimeError(' + repr('no database') + ')') + 1} RuntimeError"
    wait_until(lambda: "no database" in server.stderr, what="the exception shown")
    assert "RuntimeError" in server.stderr
    assert version_of(server.port) == 1


def test_changes_in_environments_and_caches_do_not_reload(dev, tmp_path):
    server = dev()
    for folder in (".venv", "venv", "__pycache__", "node_modules/pkg"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "module.py").write_text("x = 1\n")
    (tmp_path / "app.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".app.py.swp").write_bytes(b"\0")
    (tmp_path / "notes.txt").write_text("not python\n")
    time.sleep(1.0)
    assert "reloading" not in server.stderr
    (tmp_path / "helper.py").write_text("y = 2\n")
    wait_until(lambda: server.reloads() == 1, what="a reload for a .py file")


def test_a_burst_of_ten_saves_reloads_once_or_twice(dev, tmp_path):
    server = dev()
    for version in range(2, 12):  # back to back, as "save all" or a formatter writes
        write_app(tmp_path, version)
    wait_until(lambda: version_of(server.port) == 11, what="the last save served")
    time.sleep(1.0)
    assert 1 <= server.reloads() <= 2, server.stderr


def test_ctrl_c_stops_every_process_and_frees_the_port(dev):
    server = dev()
    below = server.descendants()
    assert len(below) >= 2  # a supervisor and its worker, at least
    assert server.stop(signal.SIGINT) == 0
    assert all(gone(pid) for pid in below)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))


def test_sigterm_stops_it_too(dev):
    server = dev()
    below = server.descendants()
    assert server.stop(signal.SIGTERM) == 0
    assert all(gone(pid) for pid in below)


def test_a_killed_dev_server_leaves_nothing_behind(dev):
    # Killed outright, it cleans nothing up: the server notices its reader is gone.
    server = dev()
    below = server.descendants()
    server.proc.kill()
    server.proc.wait(10)
    assert all(gone(pid, timeout=20) for pid in below)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))


def test_an_app_that_never_loaded_starts_on_the_next_good_save(dev, tmp_path):
    (tmp_path / "app.py").write_text("import nothing_of_that_name\n")
    server = dev(version=None)
    wait_until(lambda: "nothing_of_that_name" in server.stderr, what="the import error shown")
    write_app(tmp_path, 5)
    wait_until(lambda: version_of(server.port) == 5, timeout=15, what="the app started after the fix")


def test_without_an_app_it_says_what_it_looked_for(tmp_path):
    result = subprocess.run([*spikard_command(), "dev"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    for name in ("app.py", "main.py", "api.py", "app/main.py"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_an_app_file_that_does_not_exist_is_an_error(tmp_path):
    result = subprocess.run(
        [*spikard_command(), "dev", "nope.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "no such file: nope.py" in result.stderr


def test_it_finds_main_py_when_no_app_is_named(dev, tmp_path):
    write_app(tmp_path, 7, name="main.py")
    server = dev(version=None)
    wait_until(lambda: version_of(server.port) == 7, timeout=30, what="main.py served")
    assert "main.py" in server.stderr


def test_a_plugin_command_gets_exactly_the_arguments_given(tmp_path):
    # A distribution of its own, found through its entry points as any installed one.
    (tmp_path / "echo_plugin.py").write_text(
        "import json, sys\ndef main(argv):\n    print(json.dumps(argv))\n    return 3\n"
    )
    info = tmp_path / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[spikard.commands]\necho = echo_plugin:main\n")
    arguments = ["a", "--flag", "two words", "--port=1", "-x", "--", "--help"]
    result = subprocess.run(
        [*spikard_command(), "echo", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout) == arguments

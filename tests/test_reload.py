"""Reloading as tools drive it: ``--preload-imports`` (workers forked from a template
that has imported the app's packages), ``--stale-header`` and ``--events-fd``."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import pytest
from conftest import SpikardProcess, free_port, http_get, spikard_command, wait_until, write_app

from spikard.loading import AppLoadError, load_app

APP = """\
import os
import sys

# True in a worker forked by a template that had already imported it.
PRELOADED = "helper_pkg" in sys.modules
import helper_pkg
from spikard import Spikard

app = Spikard()


@app.get("/v")
async def v():
    return {{"app": {version}, "helper": helper_pkg.VERSION, "pid": os.getpid(), "preloaded": PRELOADED}}
"""


def answer(port: int) -> dict:
    status, body = http_get(port, "/v")
    assert status == 200, body
    return json.loads(body)


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An app folder, and beside it a package it imports from outside that folder
    (as an installed package would be), on PYTHONPATH."""
    (tmp_path / "app").mkdir()
    lib = tmp_path / "lib" / "helper_pkg"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("VERSION = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    write_app(tmp_path / "app", APP.format(version=1))
    return tmp_path


def start(project: Path, *args: str, events: bool = False) -> SpikardProcess:
    port = free_port()
    command = [*spikard_command(), "run", "app.py", "--port", str(port), *args]
    if events:
        # The events go to descriptor 3, a file here.
        command = ["sh", "-c", f"exec {shlex.join([*command, '--events-fd', '3'])} 3>{project / 'events.jsonl'}"]
    server = SpikardProcess(command, project / "app", port, project / "stderr.txt")
    server.wait_serving()
    return server


def events(project: Path) -> list[dict]:
    path = project / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def restarts_ended(server: SpikardProcess) -> int:
    stderr = server.stderr
    return stderr.count("SIGHUP: every worker replaced") + stderr.count("SIGHUP: rolling restart abandoned")


def reload(server: SpikardProcess) -> None:
    """Sends SIGHUP and waits for the rolling restart it starts to end. One at a time:
    a SIGHUP during a restart only asks for one more, so its end cannot be told apart."""
    ended = restarts_ended(server)
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: restarts_ended(server) > ended, timeout=30, what="the rolling restart")


def forked_after_reload(server: SpikardProcess, workers: int = 1) -> None:
    """Reloads until every worker is forked by a template that had already imported
    what they import (the first workers are spawned while it starts, and it imports
    what they report only once they serve)."""

    def all_forked() -> bool:
        reload(server)
        answers = [answer(server.port) for _ in range(20 * workers)]
        pids = {a["pid"] for a in answers}
        forked = len(pids) == workers and all(ppid(pid) != server.proc.pid for pid in pids)
        return forked and all(a["preloaded"] for a in answers)

    wait_until(all_forked, timeout=30, what="workers forked by a template that preloaded the app's imports")


def test_preloaded_workers_are_forked_by_the_template_and_reload_on_sighup(project):
    server = start(project, "--preload-imports", "--workers", "2")
    try:
        wait_until(lambda: len({answer(server.port)["pid"] for _ in range(60)}) == 2, what="two workers")
        forked_after_reload(server, workers=2)
        pids = {answer(server.port)["pid"] for _ in range(60)}
        write_app(project / "app", APP.format(version=2))
        # Every worker replaced (answers alone may all come from the first successor).
        reload(server)
        assert all(answer(server.port)["app"] == 2 for _ in range(20))
        after = {answer(server.port)["pid"] for _ in range(60)}
        assert after.isdisjoint(pids)
        # Forked too, not spawned: their parent is a template, not the supervisor
        # (unless the template was too slow to answer, on a loaded machine: a worker
        # is then spawned, and the next reload forks again).
        if "did not answer a spawn in time" in server.stderr:
            forked_after_reload(server, workers=2)
            after = {answer(server.port)["pid"] for _ in range(60)}
        parents = {pid: (ppid(pid), ppid(ppid(pid))) for pid in after}
        forked = all(parent != server.proc.pid and grand == server.proc.pid for parent, grand in parents.values())
        assert forked, f"supervisor {server.proc.pid}; (parent, grandparent) by worker {parents}:\n{server.stderr}"
        assert all(answer(server.port)["app"] == 2 for _ in range(20))
    finally:
        assert server.stop() == 0
    assert "stopped" in server.stderr


def test_a_template_whose_imported_files_changed_is_replaced(project):
    server = start(project, "--preload-imports")
    try:
        forked_after_reload(server)
        assert answer(server.port)["helper"] == 1
        (project / "lib" / "helper_pkg" / "__init__.py").write_text("VERSION = 2\n")
        server.proc.send_signal(signal.SIGHUP)
        # Never the package as the template imported it: the change is served.
        wait_until(lambda: answer(server.port)["helper"] == 2, what="the changed package served")
        write_app(project / "app", APP.format(version=3))
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: answer(server.port)["app"] == 3, what="the next reload")
        assert answer(server.port)["helper"] == 2
    finally:
        assert server.stop() == 0
    assert "changed since the template imported it" in server.stderr


THREADED_MODULE = """\
import threading
import time

threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def test_imports_that_start_threads_make_workers_spawned_not_forked(project):
    (project / "lib" / "threaded_pkg.py").write_text(THREADED_MODULE)
    source = APP.format(version=1).replace("import helper_pkg\n", "import helper_pkg\nimport threaded_pkg\n")
    write_app(project / "app", source)
    server = start(project, "--preload-imports")
    try:
        write_app(project / "app", source.replace('"app": 1', '"app": 2'))
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: answer(server.port)["app"] == 2, what="the reload")
        assert ppid(answer(server.port)["pid"]) == server.proc.pid  # spawned by the supervisor
    finally:
        assert server.stop() == 0
    assert "threads" in server.stderr and "workers are spawned instead" in server.stderr


def test_a_template_that_dies_is_replaced_and_serving_goes_on(project):
    server = start(project, "--preload-imports")
    try:
        forked_after_reload(server)
        template = ppid(answer(server.port)["pid"])
        assert template != server.proc.pid
        os.kill(template, signal.SIGKILL)
        # Its worker stops (its parent died); another serves, forked by a new template in time.
        wait_until(lambda: ppid(answer(server.port)["pid"]) != template, timeout=30, what="serving without it")
        write_app(project / "app", APP.format(version=3))
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: answer(server.port)["app"] == 3, what="the next reload")
    finally:
        assert server.stop() == 0
    assert "the template forking workers exited" in server.stderr


def test_a_killed_forked_worker_is_replaced(project):
    server = start(project, "--preload-imports")
    try:
        victim = answer(server.port)["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: answer(server.port)["pid"] != victim, what="a replacement")
    finally:
        assert server.stop() == 0
    assert "died (signal SIGKILL)" in server.stderr


def test_a_failed_reload_marks_responses_stale_and_is_reported_as_events(project):
    server = start(project, "--stale-header", "--preload-imports", events=True)
    try:
        app_file = project / "app" / "app.py"
        app_file.write_text(APP.format(version=2) + "\nraise RuntimeError('the error is here')\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "reload-failed" for e in events(project)), what="reload-failed")
        failure = next(e for e in events(project) if e["event"] == "reload-failed")["failure"]
        line = app_file.read_text().splitlines().index("raise RuntimeError('the error is here')") + 1
        assert failure["kind"] == "RuntimeError" and failure["lineno"] == line
        assert failure["filename"] == str(app_file)
        assert failure["frames"][-1]["line"] == "raise RuntimeError('the error is here')"

        def stale() -> str | None:
            status, headers, body = get_with_headers(server.port)
            assert status == 200 and json.loads(body)["app"] == 1
            return headers.get("spikard-stale")

        assert wait_until(stale, what="the stale header") == f"app.py:{line} RuntimeError"
        write_app(project / "app", APP.format(version=3))
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: answer(server.port)["app"] == 3, what="the fix served")
        assert "spikard-stale" not in get_with_headers(server.port)[1]
        failed = next(e for e in events(project) if e["event"] == "reload-failed")
        assert failed["stale"] == f"app.py:{line} RuntimeError"
        kinds = [e["event"] for e in events(project)]
        assert kinds[0] == "ready" and "reloaded" in kinds and kinds.index("reload-failed") < kinds.index("reloaded")
    finally:
        assert server.stop() == 0


def get_with_headers(port: int) -> tuple[int, dict[str, str], bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/v")
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_an_events_fd_that_is_not_open_is_refused(tmp_path):
    write_app(tmp_path, "from spikard import Spikard\napp = Spikard()\n")
    import subprocess

    result = subprocess.run(
        [*spikard_command(), "run", "app.py", "--events-fd", "97"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--events-fd 97 is not an open file descriptor" in result.stderr


def test_a_load_failure_says_where_in_full(tmp_path):
    (tmp_path / "broken.py").write_text("import os\n\ndef f():\n    return 1 / 0\n\nf()\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(str(tmp_path / "broken.py"))
    error = caught.value
    assert (error.kind, error.lineno, error.filename) == ("ZeroDivisionError", 4, str(tmp_path / "broken.py"))
    assert [frame.name for frame in error.frames] == ["<module>", "f"]
    again = AppLoadError.from_json(json.loads(json.dumps(error.to_json())))
    assert again.to_json() == error.to_json() and str(again) == str(error)
    (tmp_path / "syntax.py").write_text("x = 1\ny = (\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(str(tmp_path / "syntax.py"))
    assert (caught.value.kind, caught.value.lineno) == ("SyntaxError", 2)

"""The ``spikard`` command: ``spikard run APP`` in its forms, stop signals with
in-flight requests finishing, one-line errors, and ``Spikard.run`` from a script."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import free_port, http_get, run_cli, write_app

HELLO_APP = """
    from spikard import Spikard

    {attr} = Spikard()


    @{attr}.get("/ping")
    def ping() -> dict:
        return {{"pong": True, "app": "{label}"}}
"""

SLOW_APP = """
    import asyncio
    from pathlib import Path

    from spikard import Spikard

    app = Spikard()


    @app.get("/slow")
    async def slow() -> dict:
        Path("started.marker").write_text("1")
        await asyncio.sleep(0.5)
        return {"finished": True}


    @app.get("/slow-sync")
    def slow_sync() -> dict:
        import time

        Path("started-sync.marker").write_text("1")
        time.sleep(0.5)
        return {"finished": True}
"""

FAILING_APP = """
    from spikard import Spikard

    app = Spikard()


    @app.get("/fail")
    def fail() -> None:
        raise ValueError("cli-secret-9b1e")


    @app.get("/ok")
    def ok() -> str:
        return "ok"
"""


def hello(attr: str = "app", label: str = "hello") -> str:
    return HELLO_APP.format(attr=attr, label=label)


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- APP forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "attr", "target"),
    [
        ("app.py", "app", "app.py"),
        ("app.py", "app", "app.py:app"),
        ("service.py", "api", "service.py:api"),
        ("mymodule.py", "api", "mymodule:api"),
        ("mymodule.py", "app", "mymodule"),
    ],
)
def test_run_serves_each_app_form(spikard_server, filename, attr, target):
    server = spikard_server(hello(attr, label=target), target=target, name=filename)
    status, body = server.get("/ping")
    assert status == 200
    assert json.loads(body) == {"pong": True, "app": target}


def test_run_file_in_another_folder(spikard_server, tmp_path):
    sub = tmp_path / "pkg_dir"
    sub.mkdir()
    write_app(sub, hello(label="nested"), "nested_app.py")
    server = spikard_server(None, target="pkg_dir/nested_app.py")
    status, body = server.get("/ping")
    assert (status, json.loads(body)) == (200, {"pong": True, "app": "nested"})


def test_run_binds_the_given_host_and_port(spikard_server):
    server = spikard_server(hello(), args=["--host", "127.0.0.1"])
    assert server.get("/ping")[0] == 200
    # The banner names the address it serves on.
    assert f"127.0.0.1:{server.port}" in server.stderr


def test_run_on_all_interfaces(spikard_server):
    server = spikard_server(hello(), args=["--host", "0.0.0.0"])
    assert http_get(server.port, "/ping")[0] == 200


# --- stopping -------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_exits_with_status_0(spikard_server, sig):
    server = spikard_server(hello())
    assert server.get("/ping")[0] == 200
    assert server.stop(sig) == 0, server.stderr
    with pytest.raises(OSError):
        http_get(server.port, "/ping", timeout=2)


@pytest.mark.parametrize(
    ("path", "marker"), [("/slow", "started.marker"), ("/slow-sync", "started-sync.marker")], ids=["async", "sync"]
)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_request_in_flight_at_stop_signal_still_gets_its_answer(spikard_server, tmp_path, path, marker, sig):
    server = spikard_server(SLOW_APP)
    result: dict[str, object] = {}

    def request() -> None:
        try:
            result["response"] = http_get(server.port, path, timeout=10)
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / marker).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / marker).exists(), f"the handler never started:\n{server.stderr}"
    server.proc.send_signal(sig)
    thread.join(timeout=15)
    assert "error" not in result, f"{result.get('error')!r}\n{server.stderr}"
    status, body = result["response"]
    assert status == 200
    assert json.loads(body) == {"finished": True}
    assert server.wait() == 0, server.stderr


STUCK_SYNC_APP = """
    import time
    from pathlib import Path

    from spikard import Spikard

    app = Spikard()


    @app.get("/stuck")
    def stuck() -> dict:
        Path("stuck.marker").write_text("1")
        time.sleep(30)
        return {"finished": True}
"""


@pytest.mark.parametrize("how", ["grace-period-ends", "second-signal"])
def test_a_plain_def_handler_still_running_does_not_keep_the_process_alive(spikard_server, tmp_path, how):
    """The cut request is reported, and the process exits at once rather than when the
    handler's thread returns (29.5 s later with a 30 s handler)."""
    server = spikard_server(STUCK_SYNC_APP, args=["--graceful-timeout", "1"])

    def request() -> None:
        with contextlib.suppress(OSError):  # the connection is cut
            http_get(server.port, "/stuck", timeout=30)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "stuck.marker").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "stuck.marker").exists(), f"the handler never started:\n{server.stderr}"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    if how == "second-signal":
        time.sleep(0.2)
        server.proc.send_signal(signal.SIGINT)
    assert server.wait(timeout=20) == 0, server.stderr
    took = time.monotonic() - started
    assert took < (6 if how == "grace-period-ends" else 4), f"exited after {took:.1f} s"
    assert "1 request(s) were cut short" in server.stderr
    thread.join(timeout=5)


# --- debug ----------------------------------------------------------------------


def test_without_debug_500s_hide_the_traceback(spikard_server):
    server = spikard_server(FAILING_APP)
    status, body = server.get("/fail")
    assert status == 500
    assert b"Traceback" not in body
    assert b"cli-secret-9b1e" not in body
    assert server.get("/ok")[0] == 200
    # The traceback goes to the server's stderr through logging.
    assert "Traceback" in server.stderr
    assert "cli-secret-9b1e" in server.stderr


def test_debug_flag_shows_tracebacks_in_500s(spikard_server):
    server = spikard_server(FAILING_APP, args=["--debug"])
    status, body = server.get("/fail")
    assert status == 500
    detail = json.loads(body)["detail"]
    assert "Traceback" in detail
    assert "ValueError: cli-secret-9b1e" in detail


# --- failing to start -----------------------------------------------------------


BROKEN_APPS = {
    "syntax-error": "from spikard import Spikard\napp = Spikard(\ndef oops(:\n",
    "raises": "from spikard import Spikard\nraise RuntimeError('import-time failure')\napp = Spikard()\n",
    "missing-import": "import module_that_does_not_exist_4711\n",
    "not-an-app": "app = 42\n",
    "no-app-attribute": "from spikard import Spikard\nother = Spikard()\n",
}


@pytest.mark.parametrize("case", list(BROKEN_APPS))
def test_app_that_fails_to_load_exits_non_zero_with_one_line(tmp_path, case):
    write_app(tmp_path, BROKEN_APPS[case], "broken.py")
    port = free_port()
    result = run_cli(["run", "broken.py", "--port", str(port)], cwd=tmp_path)
    assert result.returncode != 0
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spikard:"), result.stderr


def test_syntax_error_message_names_the_file_and_line(tmp_path):
    write_app(tmp_path, BROKEN_APPS["syntax-error"], "broken.py")
    result = run_cli(["run", "broken.py", "--port", str(free_port())], cwd=tmp_path)
    assert "SyntaxError" in result.stderr
    assert "broken.py" in result.stderr


def test_exception_at_import_message_names_it(tmp_path):
    write_app(tmp_path, BROKEN_APPS["raises"], "broken.py")
    result = run_cli(["run", "broken.py", "--port", str(free_port())], cwd=tmp_path)
    assert "RuntimeError" in result.stderr
    assert "import-time failure" in result.stderr


@pytest.mark.parametrize("target", ["missing_file.py", "no_such_module_4711:app"])
def test_missing_app_exits_non_zero_with_one_line(tmp_path, target):
    result = run_cli(["run", target, "--port", str(free_port())], cwd=tmp_path)
    assert result.returncode != 0
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spikard:")


def test_port_in_use_exits_non_zero_with_one_line(tmp_path):
    write_app(tmp_path, hello())
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli(["run", "app.py", "--port", str(port)], cwd=tmp_path)
    assert result.returncode != 0
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spikard:")
    assert str(port) in lines[0]


def test_indistinguishable_routes_exit_non_zero_with_one_line_naming_both(tmp_path):
    source = """
        from spikard import Spikard

        app = Spikard()


        @app.get("/items/{a}")
        def by_name(a: str) -> str:
            return a


        @app.get("/items/{b:int}")
        def by_number(b: int) -> int:
            return b
    """
    write_app(tmp_path, source)
    result = run_cli(["run", "app.py", "--port", str(free_port())], cwd=tmp_path)
    assert result.returncode != 0
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spikard:")
    assert "GET /items/{a}" in lines[0]
    assert "GET /items/{b:int}" in lines[0]


# An interpreter that lacks what the asyncio bridge needs, simulated by taking it away
# before spikard is imported: the private set all_tasks() reads, or an all_tasks()
# that reads it.
LACKING = {
    "no-task-set": "for name in ('_eager_tasks', '_all_tasks'):\n    vars(tasks).pop(name, None)\n",
    "all-tasks-elsewhere": "tasks.all_tasks = lambda loop=None: set()\n",
}


@pytest.mark.parametrize("case", list(LACKING))
def test_an_unsupported_interpreter_is_told_in_one_line_naming_the_supported_versions(tmp_path, case):
    write_app(tmp_path, hello())
    script = "import sys\nfrom asyncio import tasks\n" + LACKING[case]
    script += "from spikard.__main__ import main\nsys.argv[1:] = ['run', 'app.py']\nsys.exit(main())\n"
    write_app(tmp_path, script, "lacking.py")
    result = subprocess.run([sys.executable, "lacking.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spikard supports CPython 3.11, 3.12 and 3.13; this interpreter"), lines[0]


# --- other commands -------------------------------------------------------------


# As if spikard-devtools were not installed, whether or not it is: its entry points hidden.
WITHOUT_DEVTOOLS = """\
import importlib.metadata as metadata, sys
found = metadata.entry_points
metadata.entry_points = lambda **kw: metadata.EntryPoints(()) if kw.get("group") == "spikard.commands" else found(**kw)
from spikard.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_dev_without_devtools_says_how_to_install_them(tmp_path):
    write_app(tmp_path, hello())
    write_app(tmp_path, WITHOUT_DEVTOOLS, "bare.py")
    result = subprocess.run(
        [sys.executable, "bare.py", "dev", "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "pip install spikard-devtools" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_run(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert "run" in listed, result.stdout
    run_help = run_cli(["run", "--help"], cwd=tmp_path)
    assert run_help.returncode == 0
    for option in ("--host", "--port", "--debug"):
        assert option in run_help.stdout


def test_no_command_prints_help_and_fails(tmp_path):
    result = run_cli([], cwd=tmp_path)
    assert result.returncode != 0
    assert "run" in result.stdout


# --- Spikard.run from a script --------------------------------------------------


SCRIPT = """
    import sys

    from spikard import Spikard

    app = Spikard()


    @app.get("/ping")
    async def ping() -> dict:
        return {"pong": "script"}


    if __name__ == "__main__":
        app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_app_run_from_a_script_serves_and_stops_cleanly(script_server, sig):
    server = script_server(SCRIPT)
    status, body = server.get("/ping")
    assert (status, json.loads(body)) == (200, {"pong": "script"})
    assert server.stop(sig) == 0, server.stderr
    assert "Traceback" not in server.stderr
    assert "KeyboardInterrupt" not in server.stderr


SLOW_SCRIPT = """
    import asyncio
    import sys
    from pathlib import Path

    from spikard import Spikard

    app = Spikard()


    @app.get("/slow")
    async def slow() -> dict:
        Path("started.marker").write_text("1")
        await asyncio.sleep(0.5)
        return {"finished": True}


    if __name__ == "__main__":
        app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""


def test_app_run_from_a_script_answers_a_request_in_flight_before_stopping(script_server, tmp_path: Path):
    server = script_server(SLOW_SCRIPT)
    result: dict[str, object] = {}

    def request() -> None:
        try:
            result["response"] = http_get(server.port, "/slow", timeout=10)
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "started.marker").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "started.marker").exists(), f"the handler never started:\n{server.stderr}"
    server.proc.send_signal(signal.SIGINT)
    thread.join(timeout=15)
    assert "error" not in result, f"{result.get('error')!r}\n{server.stderr}"
    status, body = result["response"]
    assert (status, json.loads(body)) == (200, {"finished": True})
    assert server.wait() == 0, server.stderr

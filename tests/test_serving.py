"""``spikard run``'s production settings over real processes and sockets: the access
log and error log through ``logging``, proxy headers, ``--root-path``, Unix sockets,
inherited sockets, connection timeouts and limits, and refused arguments."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import SpikardProcess, free_port, run_cli, spikard_command, wait_until, write_app

APP = """
import asyncio
import os
from spikard import Request, Spikard

app = Spikard()


@app.get("/slow")
async def slow(seconds: float = 1.0):
    await asyncio.sleep(seconds)
    return {"pid": os.getpid()}


@app.post("/echo")
async def echo(request: Request):
    return {"length": len(await request.body())}


@app.get("/who")
async def who(request: Request):
    client = request.client
    return {
        "host": client.host if client else None,
        "port": client.port if client else None,
        "scheme": request.url.scheme,
        "url": str(request.url),
        "pid": os.getpid(),
    }


@app.get("/boom")
async def boom():
    raise RuntimeError("kaboom")
"""

ACCESS_LINE = re.compile(
    r'^(?P<client>\S+) - "(?P<method>\S+) (?P<target>\S+) (?P<version>HTTP/[\d.]+)" (?P<status>\d{3}) (?P<ms>[\d.]+)ms$'
)


def access_lines(server: SpikardProcess) -> list[re.Match[str]]:
    lines = [line for line in server.stdout.splitlines() if line.strip()]
    matches = [ACCESS_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None]


def test_access_log_is_on_by_default_one_line_per_request(spikard_server):
    server = spikard_server(APP)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        for i in range(5):
            assert client.get(f"/who?i={i}").status_code == 200
        assert client.get("/missing").status_code == 404
        local_port = client.get("/who").json()["port"]

    def logged() -> list[re.Match[str]] | None:
        found = [m for m in access_lines(server) if "probe" not in m["target"]]
        return found if len(found) >= 7 else None

    lines = wait_until(logged, what="seven access lines")  # written within 0.1 s
    assert [m["target"] for m in lines] == [f"/who?i={i}" for i in range(5)] + ["/missing", "/who"]
    assert [m["status"] for m in lines] == ["200"] * 5 + ["404", "200"]
    assert {m["method"] for m in lines} == {"GET"}
    assert {m["version"] for m in lines} == {"HTTP/1.1"}
    assert {m["client"] for m in lines} == {f"127.0.0.1:{local_port}"}  # one keep-alive connection
    assert all(float(m["ms"]) < 5000 for m in lines)
    assert server.stop() == 0
    # Nothing answered goes unlogged at shutdown either.
    assert len([m for m in access_lines(server) if "probe" not in m["target"]]) == 7


def test_no_access_log_and_log_level_warning_silence_the_lines(spikard_server):
    quiet = spikard_server(APP, args=["--no-access-log"])
    warned = spikard_server(APP, args=["--log-level", "warning"])
    for server in (quiet, warned):
        assert server.get("/who")[0] == 200
        assert server.stop() == 0
        assert server.stdout.strip() == ""
    assert "serving" in quiet.stderr
    assert "serving" not in warned.stderr  # an INFO message


def test_log_config_routes_access_records_and_errors_through_logging(spikard_server, tmp_path: Path):
    access_file = tmp_path / "access.jsonl"
    error_file = tmp_path / "errors.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "fields": {
                "format": '{"client": "%(client_addr)s", "method": "%(method)s", "target": "%(target)s", '
                '"status": %(status_code)d, "ms": %(duration_ms).3f, "version": "%(http_version)s"}'
            },
            "plain": {"format": "%(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "access": {"class": "logging.FileHandler", "filename": str(access_file), "formatter": "fields"},
            "errors": {"class": "logging.FileHandler", "filename": str(error_file), "formatter": "plain"},
        },
        "loggers": {
            "spikard.access": {"handlers": ["access"], "propagate": False},
            "spikard.error": {"handlers": ["errors"], "propagate": False},
        },
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    server = spikard_server(APP, args=["--log-config", "logging.json"])
    assert server.get("/who?x=1")[0] == 200
    assert server.get("/boom")[0] == 500
    assert server.stop() == 0
    records = [json.loads(line) for line in access_file.read_text().splitlines()]
    records = [r for r in records if "probe" not in r["target"]]
    assert [(r["method"], r["target"], r["status"], r["version"]) for r in records] == [
        ("GET", "/who?x=1", 200, "HTTP/1.1"),
        ("GET", "/boom", 500, "HTTP/1.1"),
    ]
    assert all(r["client"].startswith("127.0.0.1:") and r["ms"] >= 0 for r in records)
    errors = error_file.read_text()
    assert "ERROR spikard.error Exception in GET /boom" in errors
    assert "RuntimeError: kaboom" in errors  # the traceback
    assert "INFO spikard.error serving" in errors
    assert server.stdout.strip() == ""  # the file config replaced the console handlers


def test_proxy_headers_from_a_trusted_peer(spikard_server):
    server = spikard_server(APP)  # trusts 127.0.0.1 by default, as uvicorn does
    url = f"http://127.0.0.1:{server.port}/who"
    forwarded = httpx.get(url, headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"})
    assert forwarded.json()["host"] == "203.0.113.7"
    assert forwarded.json()["port"] == 0
    assert forwarded.json()["scheme"] == "https"
    assert forwarded.json()["url"].startswith("https://")
    rfc = httpx.get(url, headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
    assert (rfc.json()["host"], rfc.json()["scheme"]) == ("2001:db8::1", "https")
    # X-Forwarded-* is read first, as uvicorn does: a Forwarded header a client sent
    # through a proxy that sets X-Forwarded-For counts for nothing.
    both = httpx.get(url, headers={"Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-For": "203.0.113.8"})
    assert (both.json()["host"], both.json()["scheme"]) == ("203.0.113.8", "http")
    plain = httpx.get(url).json()
    assert (plain["host"], plain["scheme"]) == ("127.0.0.1", "http")
    assert plain["port"] > 0
    wait_until(lambda: any(m["client"] == "203.0.113.7" for m in access_lines(server)), what="logged client")


def test_proxy_headers_are_ignored_when_off_or_untrusted(spikard_server):
    off = spikard_server(APP, args=["--no-proxy-headers"])
    elsewhere = spikard_server(APP, args=["--forwarded-allow-ips", "10.0.0.0/8, 192.168.1.1"])
    everyone = spikard_server(APP, args=["--forwarded-allow-ips", "*"])
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}
    for server in (off, elsewhere):
        body = httpx.get(f"http://127.0.0.1:{server.port}/who", headers=headers).json()
        assert (body["host"], body["scheme"]) == ("127.0.0.1", "http")
    body = httpx.get(f"http://127.0.0.1:{everyone.port}/who", headers=headers).json()
    assert (body["host"], body["scheme"]) == ("198.51.100.1", "https")  # all trusted: the leftmost


def test_root_path_is_part_of_request_url(spikard_server):
    server = spikard_server(APP, args=["--root-path", "/api/v1"])
    body = httpx.get(f"http://127.0.0.1:{server.port}/who?q=1").json()
    assert body["url"] == f"http://127.0.0.1:{server.port}/api/v1/who?q=1"


def uds_get(path: Path, target: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://spikard") as client:
        return client.get(target, headers={"X-Forwarded-For": "203.0.113.9"})


def start_uds(tmp_path: Path, socket_path: Path, *args: str) -> SpikardProcess:
    write_app(tmp_path, APP)
    command = [*spikard_command(), "run", "app.py", "--uds", str(socket_path), *args]
    return SpikardProcess(command, tmp_path, 0, tmp_path / "uds-stderr.txt", tmp_path / "uds-stdout.txt")


def test_unix_socket_serving_and_cleanup(tmp_path: Path):
    socket_path = tmp_path / "app.sock"
    # A socket file left by a server that is gone is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path))
    stale.close()
    server = start_uds(tmp_path, socket_path, "--forwarded-allow-ips", "*")
    try:
        response = wait_until(lambda: socket_path.exists() and _try(lambda: uds_get(socket_path, "/who")), what="uds")
        body = response.json()
        # A socket's peer has no address: with '*', its proxy headers are believed.
        assert body["host"] == "203.0.113.9"
        assert oct(socket_path.stat().st_mode & 0o777) == "0o666"
        # A second server on the same live socket is refused, and leaves it alone.
        second = run_cli(["run", "app.py", "--uds", str(socket_path)], cwd=tmp_path)
        assert second.returncode == 1
        assert "already listening" in second.stderr
        assert uds_get(socket_path, "/who").status_code == 200
        assert server.stop() == 0
        assert not socket_path.exists()
        lines = [line for line in server.stdout.splitlines() if "/who" in line]
        assert lines and all(line.startswith('203.0.113.9 - "GET /who HTTP/1.1" 200') for line in lines), lines
    finally:
        server.kill()


def test_unix_socket_peers_are_not_trusted_by_default(tmp_path: Path):
    socket_path = tmp_path / "app.sock"
    server = start_uds(tmp_path, socket_path)
    try:
        response = wait_until(lambda: socket_path.exists() and _try(lambda: uds_get(socket_path, "/who")), what="uds")
        assert response.json()["host"] is None  # no address, and X-Forwarded-For ignored
        assert server.stop() == 0
    finally:
        server.kill()


def test_a_stopping_server_leaves_its_successors_socket_alone(tmp_path: Path):
    """The old instance drains after the new one has bound the same path: its exit
    must not unlink the new instance's socket file."""
    socket_path = tmp_path / "app.sock"
    old = start_uds(tmp_path, socket_path)
    new = None
    try:
        wait_until(lambda: socket_path.exists() and _try(lambda: uds_get(socket_path, "/who")), what="old")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(uds_get, socket_path, "/slow?seconds=2")
            time.sleep(0.5)
            old.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the old one has closed its listener and drains
            command = [*spikard_command(), "run", "app.py", "--uds", str(socket_path)]
            new = SpikardProcess(command, tmp_path, 0, tmp_path / "new-stderr.txt", tmp_path / "new-stdout.txt")
            wait_until(lambda: _try(lambda: uds_get(socket_path, "/who")), what="new")
            assert slow.result().status_code == 200
        assert old.wait() == 0
        assert uds_get(socket_path, "/who").json()["pid"] == new.proc.pid
        assert new.stop() == 0
        assert not socket_path.exists()
    finally:
        old.kill()
        if new:
            new.kill()


def test_unix_socket_with_two_workers(tmp_path: Path):
    socket_path = tmp_path / "app.sock"
    server = start_uds(tmp_path, socket_path, "--workers", "2")
    try:
        wait_until(lambda: socket_path.exists() and _try(lambda: uds_get(socket_path, "/who")), what="uds")
        pids = wait_until(
            lambda: len(p := {uds_get(socket_path, "/who").json()["pid"] for _ in range(40)}) == 2 and p,
            timeout=20,
            what="two workers",
        )
        assert server.proc.pid not in pids
        assert server.stop() == 0
        assert not socket_path.exists()
    finally:
        server.kill()


def _try(call):
    try:
        return call()
    except (OSError, httpx.TransportError):
        return None


def test_inherited_socket_by_file_descriptor(tmp_path: Path):
    write_app(tmp_path, APP)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    command = [*spikard_command(), "run", "app.py", "--fd", str(fd)]
    with (tmp_path / "fd-stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, pass_fds=(fd,), stderr=stderr, stdout=subprocess.DEVNULL)
    listener.close()  # the server holds its own copy
    try:
        response = wait_until(lambda: _try(lambda: httpx.get(f"http://127.0.0.1:{port}/who")), what="fd server")
        assert response.status_code == 200
        assert response.json()["pid"] == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_file_descriptor_that_is_not_a_listening_socket(tmp_path: Path):
    write_app(tmp_path, APP)
    with open(tmp_path / "app.py", "rb") as file:
        fd = file.fileno()
        result = subprocess.run(
            [*spikard_command(), "run", "app.py", "--fd", str(fd)],
            cwd=tmp_path,
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"file descriptor {fd} is not" in result.stderr


def test_keep_alive_and_header_read_timeouts_reach_the_runtime(spikard_server):
    server = spikard_server(APP, args=["--keep-alive", "0.5", "--header-read-timeout", "1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server once idle
        assert 0.3 < time.monotonic() - started < 3
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /who HTTP/1.1\r\n")  # a head that never ends
        started = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert b"application/problem+json" in answer
        assert 0.8 < time.monotonic() - started < 4
        assert sock.recv(65536) == b""  # and the server closes
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(65536) == b""  # not a byte sent: closed without an answer
        assert 0.8 < time.monotonic() - started < 4
    logged = [(m["target"], m["status"]) for m in access_lines(server) if m["target"] == "/who"]
    assert logged == [("/who", "200"), ("/who", "408")]


def test_a_stalled_body_gets_408(spikard_server):
    server = spikard_server(APP, args=["--header-read-timeout", "1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.8 < time.monotonic() - started < 5


def test_a_client_that_leaves_is_logged_with_499(spikard_server):
    server = spikard_server(APP)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?seconds=3 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        # Gone for good (a reset): a client that only shuts down its sending side
        # still reads, and gets its answer (tests/test_hostile.py).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: any(m["status"] == "499" for m in access_lines(server)), what="a 499 line")
    assert [m["target"] for m in access_lines(server) if m["status"] == "499"] == ["/slow?seconds=3"]


def test_logging_set_up_by_the_app_or_a_root_only_config_keeps_spikards_logs(spikard_server, tmp_path: Path):
    configured = (
        APP
        + """
import logging.config
logging.config.dictConfig({"version": 1})  # disables every logger that exists
"""
    )
    server = spikard_server(configured)
    assert server.get("/boom")[0] == 500
    wait_until(lambda: any(m["target"] == "/boom" for m in access_lines(server)), what="access line")
    assert "serving" in server.stderr
    wait_until(lambda: "RuntimeError: kaboom" in server.stderr, what="the traceback")
    root_only = {
        "version": 1,
        "formatters": {"named": {"format": "%(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(tmp_path / "all.log"), "formatter": "named"}
        },
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    (tmp_path / "root.json").write_text(json.dumps(root_only))
    logged = spikard_server(APP, args=["--log-config", "root.json"])
    assert logged.get("/who")[0] == 200
    assert logged.stop() == 0
    text = (tmp_path / "all.log").read_text()
    assert "spikard.error serving" in text
    assert re.search(r'spikard\.access 127\.0\.0\.1:\d+ - "GET /who HTTP/1.1" 200', text), text
    assert "spikard.error stopped" in text


def test_an_idle_http2_connection_is_told_to_go_away_at_the_keep_alive_timeout(spikard_server):
    """HTTP/2 (prior knowledge, h2c): pings from an idle client are not the start of a
    request, so the connection gets GOAWAY at the keep-alive timeout rather than being
    dropped at the header-read timeout."""
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    h2_events = pytest.importorskip("h2.events")
    h2_exceptions = pytest.importorskip("h2.exceptions")
    server = spikard_server(APP, args=["--keep-alive", "2", "--header-read-timeout", "4"])
    client = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.25) as sock:
        client.initiate_connection()
        stream = client.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", "/who"), (":scheme", "http"), (":authority", "t")]
        client.send_headers(stream, headers, end_stream=True)
        sock.sendall(client.data_to_send())
        status = answered = went_away = None
        deadline = time.monotonic() + 10
        while went_away is None and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                break
            try:
                events = client.receive_data(data) if data else []
            except h2_exceptions.ProtocolError:
                # hyper follows its GOAWAY with a PING, which h2 refuses on a closed
                # connection; the GOAWAY itself has closed the client's state.
                assert client.state_machine.state == h2_connection.ConnectionState.CLOSED
                went_away = time.monotonic()
                break
            for event in events:
                if isinstance(event, h2_events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2_events.StreamEnded):
                    answered = time.monotonic()
                elif isinstance(event, h2_events.ConnectionTerminated):
                    went_away = time.monotonic()
            if answered and went_away is None:
                client.ping(b"spikard!")  # an idle client keeping its connection warm
            outgoing = client.data_to_send()
            if outgoing:
                sock.sendall(outgoing)
    assert status == b"200"
    assert answered is not None and went_away is not None
    assert 1.5 < went_away - answered < 3.5


def test_keep_alive_zero_closes_after_each_response(spikard_server):
    server = spikard_server(APP, args=["--keep-alive", "0"])
    response = httpx.get(f"http://127.0.0.1:{server.port}/who")
    assert response.headers.get("connection") == "close"


def test_max_connections_makes_new_clients_wait_and_closes_an_idle_one_for_them(spikard_server):
    server = spikard_server(APP, args=["--max-connections", "1"])
    # wait_serving's probe connection has closed; take the one slot, busy.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
        first.sendall(b"GET /slow?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
            second.sendall(b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n")
            second.settimeout(0.5)
            with pytest.raises(TimeoutError):
                second.recv(65536)
            # Answered, the first connection is idle: it is closed to make room.
            received = b""
            while chunk := first.recv(65536):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200")
            second.settimeout(10)
            assert second.recv(65536).startswith(b"HTTP/1.1 200")
    assert "connections are open, the limit (--max-connections)" in server.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--uds", "x.sock", "--fd", "3"], "--uds and --fd cannot be used together"),
        (["--uds", "x.sock", "--host", "0.0.0.0"], "--host and --port do not apply with --uds"),
        (["--forwarded-allow-ips", "10.0.0.0/99"], "is not an IP network"),
        (["--keep-alive", "-1"], "--keep-alive cannot be negative"),
        (["--max-connections", "-5"], "--max-connections cannot be negative"),
        (["--root-path", "api"], "--root-path must start with '/'"),
        (["--log-config", "missing.json"], "missing.json"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path, args, message):
    write_app(tmp_path, APP)
    port = [] if "--uds" in args else ["--port", str(free_port())]
    result = run_cli(["run", "app.py", *port, *args], cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_help_states_the_defaults(tmp_path: Path):
    text = run_cli(["run", "--help"], cwd=tmp_path).stdout
    compact = " ".join(text.split())
    for expected in (
        "--keep-alive SECONDS",
        "(default: 5.0)",
        "--header-read-timeout SECONDS",
        "(default: 10.0)",
        "--max-connections N",
        "(default: 10000)",
        "--no-access-log",
        "--forwarded-allow-ips",
        "--uds PATH",
        "--fd N",
    ):
        assert expected in compact, expected


def test_env_forwarded_allow_ips_is_the_default(tmp_path: Path):
    write_app(tmp_path, APP)
    port = free_port()
    env = {**os.environ, "FORWARDED_ALLOW_IPS": "10.1.1.1"}
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [*spikard_command(), "run", "app.py", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )
    try:
        response = wait_until(
            lambda: _try(lambda: httpx.get(f"http://127.0.0.1:{port}/who", headers={"X-Forwarded-For": "203.0.113.7"})),
            what="server",
        )
        assert response.json()["host"] == "127.0.0.1"  # 127.0.0.1 is no longer trusted
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

"""A response is delivered whole, or not at all, over real sockets: a slow reader gets
every byte however long past the keep-alive timeout the transfer lasts; a client that
stops reading is cut after ``--write-timeout`` without progress, and the access log
says so. On HTTP/1.1 and on HTTP/2 (h2c, prior knowledge)."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from conftest import SpikardProcess, free_port, run_cli, write_app

h2_connection = pytest.importorskip("h2.connection")
h2_config = pytest.importorskip("h2.config")
h2_events = pytest.importorskip("h2.events")
h2_exceptions = pytest.importorskip("h2.exceptions")

SIZE = 8 * 1024 * 1024

APP = f"""
from spikard import Response, Spikard

app = Spikard()
BODY = bytes(range(256)) * ({SIZE} // 256)


@app.get("/big")
async def big():
    return Response(content=BODY)


@app.get("/small")
async def small():
    return {{"ok": True}}
"""

BODY = bytes(range(256)) * (SIZE // 256)

# A rate at which the 8 MiB take about 8 s: past keep-alive (0.5 s here) plus the
# 5 s an idle connection told to close is given, where a response wrongly counted
# as idle is cut.
RATE = 1_000_000

ACCESS_LINE = re.compile(
    r'^(?P<client>\S+) - "(?P<method>\S+) (?P<target>\S+) (?P<version>HTTP/[\d.]+)" '
    r"(?P<status>\d{3})(?P<cut> cut)? (?P<ms>[\d.]+)ms$"
)


def access_lines(server: SpikardProcess) -> list[re.Match[str]]:
    lines = [line for line in server.stdout.splitlines() if line.strip()]
    matches = [ACCESS_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None and "probe" not in m["target"]]


def wait_for_lines(server: SpikardProcess, count: int, timeout: float = 10.0) -> list[re.Match[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = access_lines(server)
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} access lines: {server.stdout!r}")


def slow_socket(port: int) -> socket.socket:
    """A connection whose receive side holds little: what the client does not read
    stays in the server's buffers, and the server sees its pace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    if hasattr(socket, "TCP_MAXSEG"):
        # Small segments keep the kernel from growing the server's send buffer to
        # megabytes on loopback, which would hide the server's writes from the test.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    return sock


def throttle(started: float, received: int, rate: float) -> None:
    ahead = received / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)


def http1_get(port: int, target: str, rate: float) -> tuple[bytes, bytes, float]:
    """GET over HTTP/1.1 read at ``rate`` bytes/s: (head, body, seconds), the body as
    far as it came before the server closed."""
    with slow_socket(port) as sock:
        started = time.monotonic()
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(16384)
            assert chunk, data
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])
        received = bytearray(body)
        while len(received) < length:
            throttle(started, len(received), rate)
            chunk = sock.recv(16384)
            if not chunk:
                break
            received += chunk
        return head, bytes(received), time.monotonic() - started


class H2Client:
    """One GET over h2c (prior knowledge) on a socket of ``slow_socket``'s kind."""

    def __init__(self, port: int, target: str) -> None:
        self.sock = slow_socket(port)
        self.conn = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", target), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(self.stream, headers, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.started = time.monotonic()
        self.status: bytes | None = None
        self.body = bytearray()
        self.ended = False
        self.closed_after: float | None = None

    def read(self) -> int:
        """Takes what arrived; returns the flow-controlled bytes received."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_after = time.monotonic() - self.started
            return 0
        try:
            events = self.conn.receive_data(data)
        except h2_exceptions.ProtocolError:
            # hyper follows a GOAWAY with a PING, which h2 refuses on a closed
            # connection: the server is closing it.
            self.closed_after = time.monotonic() - self.started
            return 0
        consumed = 0
        for event in events:
            if isinstance(event, h2_events.ResponseReceived):
                self.status = dict(event.headers)[b":status"]
            elif isinstance(event, h2_events.DataReceived):
                self.body += event.data
                consumed += event.flow_controlled_length
            elif isinstance(event, h2_events.StreamEnded):
                self.ended = True
        self.flush()
        return consumed

    def grant(self, amount: int) -> None:
        """Lets the server send ``amount`` more bytes."""
        if amount:
            self.conn.increment_flow_control_window(amount)
            if not self.ended:
                self.conn.increment_flow_control_window(amount, self.stream)
            self.flush()

    def flush(self) -> None:
        outgoing = self.conn.data_to_send()
        if outgoing:
            self.sock.sendall(outgoing)

    def close(self) -> None:
        self.sock.close()


def http2_get(port: int, target: str, rate: float) -> tuple[bytes | None, bytes, float]:
    """GET over HTTP/2, opening the flow-control window at ``rate`` bytes/s."""
    client = H2Client(port, target)
    try:
        while not client.ended and client.closed_after is None:
            consumed = client.read()
            throttle(client.started, len(client.body), rate)
            client.grant(consumed)
        return client.status, bytes(client.body), time.monotonic() - client.started
    finally:
        client.close()


def test_a_slow_reader_gets_every_byte_long_past_the_keep_alive_timeout(spikard_server):
    """Both protocols at once, to keep the test short: each transfer lasts longer than
    keep-alive plus the idle-close grace, where a response still being written was
    once taken for an idle connection and cut."""
    server = spikard_server(APP, args=["--keep-alive", "0.5"])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        over_h1 = pool.submit(http1_get, server.port, "/big", RATE)
        over_h2 = pool.submit(http2_get, server.port, "/big", RATE)
        head, body1, seconds1 = over_h1.result()
        status, body2, seconds2 = over_h2.result()
    assert head.startswith(b"HTTP/1.1 200")
    assert status == b"200"
    assert (len(body1), len(body2)) == (SIZE, SIZE)
    assert body1 == BODY and body2 == BODY
    assert min(seconds1, seconds2) > 6.5  # the test spans the old cut
    lines = wait_for_lines(server, 2)
    assert sorted((m["version"], m["status"], m["cut"]) for m in lines) == [
        ("HTTP/1.1", "200", None),
        ("HTTP/2", "200", None),
    ]


def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(spikard_server):
    """The HTTP/1.1 client reads nothing; the HTTP/2 client reads its socket (pings,
    settings) but never opens its window. Each is cut about one second after its
    response last made progress, not at once and not never, and logged as cut."""
    server = spikard_server(APP, args=["--write-timeout", "1"])
    stalled = slow_socket(server.port)
    stalled.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    h2 = H2Client(server.port, "/big")
    try:
        while h2.closed_after is None and time.monotonic() - h2.started < 10:
            h2.read()
        assert h2.status == b"200"
        assert h2.closed_after is not None, "the HTTP/2 connection was never cut"
        assert 0.9 < h2.closed_after < 3.0, h2.closed_after
        assert len(h2.body) <= 65535  # the window it started with
    finally:
        h2.close()
    lines = {m["version"]: m for m in wait_for_lines(server, 2)}
    for version in ("HTTP/1.1", "HTTP/2"):
        line = lines[version]
        assert (line["status"], line["cut"]) == ("200", " cut"), line.string
        assert 900 < float(line["ms"]) < 3000, line.string
    # The HTTP/1.1 connection is closed: what the kernel held arrives, then the end.
    received = b""
    with stalled:
        while chunk := stalled.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert len(received) < SIZE


def test_a_client_that_leaves_mid_response_is_logged_as_cut(spikard_server):
    server = spikard_server(APP)
    with slow_socket(server.port) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(16384).startswith(b"HTTP/1.1 200")
    status, body = server.get("/small")
    assert (status, body) == (200, b'{"ok":true}')
    lines = wait_for_lines(server, 2)
    assert [(m["target"], m["status"], m["cut"]) for m in lines] == [("/big", "200", " cut"), ("/small", "200", None)]


def test_whole_responses_without_a_body_to_write_are_not_cut(spikard_server):
    """HEAD is answered with the GET's length and no body: nothing of it is cut."""
    server = spikard_server(APP)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n")
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {SIZE}".encode() in head.lower()
    lines = wait_for_lines(server, 1)
    assert [(m["method"], m["status"], m["cut"]) for m in lines] == [("HEAD", "200", None)]


def test_a_response_being_written_at_shutdown_is_finished(spikard_server):
    """SIGTERM during a transfer: the response is written whole, logged, and the
    server exits cleanly."""
    server = spikard_server(APP)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        transfer = pool.submit(http1_get, server.port, "/big", 4 * RATE)
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        head, body, _ = transfer.result()
    assert head.startswith(b"HTTP/1.1 200")
    assert body == BODY
    assert server.wait() == 0
    assert [(m["target"], m["status"], m["cut"]) for m in access_lines(server)] == [("/big", "200", None)]


def test_write_timeout_option(tmp_path: Path):
    text = " ".join(run_cli(["run", "--help"], cwd=tmp_path).stdout.split())
    option = text[text.rindex("--write-timeout SECONDS") :].split(" --")[0]
    assert "(default: 60.0)" in option, option
    write_app(tmp_path, APP)
    refused = run_cli(["run", "app.py", "--port", str(free_port()), "--write-timeout", "-1"], cwd=tmp_path)
    assert refused.returncode == 2
    assert "--write-timeout cannot be negative" in refused.stderr

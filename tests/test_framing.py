"""The runtime frames every response itself: what a handler sets that would break
framing (a wrong ``Content-Length``, ``Transfer-Encoding``, hop-by-hop headers, a
status that is not a final HTTP status) never reaches the wire, on HTTP/1.1 (raw
sockets, to see the bytes) and HTTP/2 (an h2c client)."""

from __future__ import annotations

import socket

import pytest
from conftest import SpikardProcess, free_port, run_cli, spikard_command, write_app

h2_connection = pytest.importorskip("h2.connection")
h2_config = pytest.importorskip("h2.config")
h2_events = pytest.importorskip("h2.events")

APP = """
from spikard import Response, Spikard

app = Spikard()
TEXT = "héllo!"  # 6 characters, 7 bytes


def answer(headers=None, status=200, content=TEXT):
    return Response(content, status_code=status, headers=headers)


@app.get("/counted-in-characters")
async def characters():
    return answer({"content-length": str(len(TEXT))})


@app.get("/counted-in-bytes")
async def counted_in_bytes():
    return answer({"content-length": str(len(TEXT.encode()))})


@app.get("/length-not-a-number")
async def not_a_number():
    return answer({"content-length": "abc"})


@app.get("/chunked-and-length")
async def chunked_and_length():
    return answer({"transfer-encoding": "chunked", "content-length": "7"})


@app.get("/hop-by-hop")
async def hop_by_hop():
    return answer({"connection": "close", "keep-alive": "timeout=1", "upgrade": "websocket", "x-kept": "yes"})


@app.get("/status/{code:int}")
async def status(code: int):
    return answer(status=code)


@app.get("/not-modified")
async def not_modified():
    # The length of the representation the 304 stands for (RFC 9110 §8.6).
    return Response(status_code=304, headers={"content-length": "1234", "etag": '"v1"'})


@app.get("/plain")
async def plain():
    return "next"
"""


def exchange(port: int, *paths: str) -> list[tuple[int, dict[str, list[str]], bytes]]:
    """Sends GETs for ``paths`` one after another on one keep-alive connection and
    reads each response by its own framing: (status, headers, body)."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for path in paths:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            status = int(reader.readline().split()[1])
            headers: dict[str, list[str]] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            length = int(headers.get("content-length", ["0"])[0])
            assert "transfer-encoding" not in headers, headers
            answers.append((status, headers, reader.read(length)))
    return answers


def h2_get(port: int, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """One GET over HTTP/2 (prior knowledge): status, headers, body."""
    client = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
    client.initiate_connection()
    stream = client.get_next_available_stream_id()
    client.send_headers(
        stream, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")], end_stream=True
    )
    headers: dict[bytes, bytes] = {}
    body = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(client.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            assert data, "the server closed the connection before the stream ended"
            for event in client.receive_data(data):
                if isinstance(event, h2_events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2_events.DataReceived):
                    body += event.data
                    client.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2_events.StreamEnded):
                    ended = True
                elif isinstance(event, h2_events.StreamReset):
                    pytest.fail(f"stream reset by the server: {event.error_code!r}")
            sock.sendall(client.data_to_send())
    return int(headers[b":status"]), headers, body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("framing")
    write_app(folder, APP)
    port = free_port()
    process = SpikardProcess(
        [*spikard_command(), "run", "app.py", "--port", str(port)],
        folder,
        port,
        folder / "stderr.txt",
        folder / "stdout.txt",
    )
    process.wait_serving()
    yield process
    process.kill()


def test_a_wrong_content_length_is_a_500_and_leaves_nothing_for_the_next_response(server):
    """A length counted in characters would leave a byte on the connection that the
    next response's reader took as its own."""
    (status, _, body), (next_status, _, next_body) = exchange(server.port, "/counted-in-characters", "/plain")
    assert status == 500
    assert b"Internal Server Error" in body
    assert (next_status, next_body) == (200, b'"next"')
    assert "Content-Length: 6, but its body is 7 bytes" in server.stderr


def test_a_content_length_that_is_not_a_number_is_a_500(server):
    (status, headers, _), (next_status, _, _) = exchange(server.port, "/length-not-a-number", "/plain")
    assert status == 500
    assert headers["content-type"] == ["application/problem+json"]
    assert next_status == 200
    assert "Content-Length: abc" in server.stderr


def test_a_content_length_that_states_the_body_is_kept_once(server):
    [(status, headers, body)] = exchange(server.port, "/counted-in-bytes")
    assert (status, body) == (200, "héllo!".encode())
    assert headers["content-length"] == ["7"]


def test_transfer_encoding_with_a_length_is_dropped_and_the_body_arrives_whole(server):
    """Both together gave an empty reply logged as 200."""
    (status, headers, body), (next_status, _, _) = exchange(server.port, "/chunked-and-length", "/plain")
    assert (status, body) == (200, "héllo!".encode())
    assert headers["content-length"] == ["7"]
    assert next_status == 200


def test_hop_by_hop_headers_are_dropped_with_one_warning_per_route(server):
    answers = exchange(server.port, "/hop-by-hop", "/hop-by-hop", "/plain")
    for status, headers, body in answers[:2]:
        assert (status, body) == (200, "héllo!".encode())
        assert headers["x-kept"] == ["yes"]
        assert not {"connection", "keep-alive", "upgrade"} & headers.keys(), headers
    assert answers[2][0] == 200  # the connection was not closed by the handler's "Connection: close"
    warnings = [line for line in server.stderr.splitlines() if "GET /hop-by-hop" in line and "dropped" in line]
    assert len(warnings) == 3, warnings  # connection, keep-alive, upgrade: each said once
    assert all("warning" in line for line in warnings)


@pytest.mark.parametrize("code", [999, 600, 100, 101, 0])
def test_a_status_that_is_not_a_final_http_status_is_a_500(server, code):
    [(status, _, body)] = exchange(server.port, f"/status/{code}")
    assert status == 500, body
    assert f"status {code} is not a final HTTP status" in server.stderr


@pytest.mark.parametrize("code", [204, 205, 304])
def test_no_content_reset_content_and_not_modified_carry_no_body(server, code):
    """The handler gave a body; none is sent, and the next response on the connection
    is read intact."""
    (status, headers, body), (next_status, _, next_body) = exchange(server.port, f"/status/{code}", "/plain")
    assert (status, body) == (code, b"")
    assert "content-type" not in headers
    assert (next_status, next_body) == (200, b'"next"')


def test_a_not_modified_answer_may_state_a_length_and_sends_no_body(server):
    (status, headers, body), (next_status, _, next_body) = exchange(server.port, "/not-modified", "/plain")
    assert (status, body) == (304, b"")
    assert headers["etag"] == ['"v1"']
    assert (next_status, next_body) == (200, b'"next"')


def test_http2_a_wrong_content_length_is_a_500(server):
    status, headers, _ = h2_get(server.port, "/counted-in-characters")
    assert status == 500
    assert headers[b"content-type"] == b"application/problem+json"


def test_http2_connection_headers_are_dropped_and_the_stream_answers(server):
    """HTTP/2 forbids connection-specific headers; the response is sent without them."""
    for path in ("/hop-by-hop", "/chunked-and-length"):
        status, headers, body = h2_get(server.port, path)
        assert (status, body) == (200, "héllo!".encode())
        assert not {b"connection", b"keep-alive", b"upgrade", b"transfer-encoding"} & headers.keys()


def test_a_route_status_that_is_not_a_final_http_status_is_refused_at_startup(tmp_path):
    write_app(
        tmp_path, 'from spikard import Spikard\napp = Spikard()\n@app.get("/", status_code=999)\nasync def r(): ...\n'
    )
    result = run_cli(["run", "app.py", "--port", "0"], cwd=tmp_path)
    assert result.returncode != 0
    assert "status 999 is not a final HTTP status" in result.stderr

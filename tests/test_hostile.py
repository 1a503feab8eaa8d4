"""Hostile clients, over raw sockets: each request gets the right answer, nothing is
exhausted, the log stays trustworthy, and after each the server still answers a
normal request."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PROBLEM_JSON, SpikardProcess, free_port, spikard_command, wait_until, write_app

APP = """
import asyncio
from typing import Annotated
from spikard import Body, Request, Spikard
from spikard.responses import Response

app = Spikard()


@app.get("/hello")
async def hello():
    return {"hello": "world"}


@app.get("/slow")
async def slow(seconds: float = 0.2):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.post("/count")
async def count(items: Annotated[list[str], Body()]):
    return {"count": len(items)}


@app.post("/int")
async def take_int(n: Annotated[int, Body()]):
    return {"n": n, "type": type(n).__name__}


@app.post("/ints")
async def take_ints(ns: Annotated[list[int], Body()]):
    return {"ns": ns, "types": sorted({type(n).__name__ for n in ns})}


@app.post("/float")
async def take_float(x: Annotated[float, Body()]):
    return {"x": x, "type": type(x).__name__}


@app.post("/maybe-int")
async def take_maybe_int(n: Annotated[int | None, Body()] = None):
    return {"n": n}


@app.post("/echo")
async def echo(request: Request):
    return {"length": len(await request.body())}


@app.get("/who")
async def who(request: Request):
    return {"host": request.client.host if request.client else None, "url": str(request.url)}


running = 0
peak = 0


@app.get("/held")
async def held():
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await asyncio.sleep(1.0)
    finally:
        running -= 1
    return {"held": True}


@app.get("/peak")
async def get_peak():
    return {"peak": peak, "running": running}


@app.get("/bare-400")
async def bare_400():
    return Response(status_code=400, headers={"x-mine": "1"})


@app.get("/items/{name}")
async def item(name: str):
    return {"name": name}


@app.get("/files/{rest:path}")
async def files(rest: str):
    return {"rest": rest}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpikardProcess]:
    """One server for the module, with a small body limit, behind a 'proxy' at 127.0.0.1."""
    folder = tmp_path_factory.mktemp("hostile")
    write_app(folder, APP)
    port = free_port()
    command = [*spikard_command(), "run", "app.py", "--port", str(port), "--max-body-size", "100000"]
    process = SpikardProcess(command, folder, port, folder / "stderr.txt", folder / "stdout.txt")
    process.wait_serving()
    yield process
    process.kill()


def exchange(port: int, data: bytes | list[bytes], *, shut_write: bool = False, timeout: float = 10.0) -> bytes:
    """Sends ``data`` (pieces sent apart) and reads until the server closes or a
    complete response is in."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for piece in [data] if isinstance(data, bytes) else data:
            sock.sendall(piece)
            time.sleep(0.02)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    """One response: through its Content-Length, or to the connection's end."""
    answer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return answer
        if not chunk:
            return answer
        answer += chunk
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep and not head.startswith(b"HTTP/1.1 100"):
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if length and len(body) >= int(length[1]):
                return answer


def parts(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def problem(answer: bytes, status: int) -> dict[str, object]:
    """``answer`` is a problem+json response with ``status``; returns its body."""
    got, headers, body = parts(answer)
    assert got == status, answer[:500]
    assert headers["content-type"] == PROBLEM_JSON, headers
    document = json.loads(body)
    assert document["status"] == status and document["title"] and document["detail"], document
    return document


def still_serves(server: SpikardProcess) -> None:
    status, body = server.get("/hello")
    assert (status, json.loads(body)) == (200, {"hello": "world"})


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: t", b"Content-Type: application/json", *extra]
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in extra):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# Requests answered right


def test_a_client_that_half_closes_after_its_request_gets_the_answer(server: SpikardProcess):
    # As `nc -N` does: the request, then shutdown(SHUT_WR), then read. The handler suspends.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?seconds=0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        status, _, body = parts(read_response(sock))
        assert (status, json.loads(body)) == (200, {"slept": 0.3})
        # Then the server closes at once: there is nothing more to read.
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 0.5
    still_serves(server)


def test_a_client_that_ends_its_side_half_way_through_a_body_is_answered_at_once(server: SpikardProcess):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/count", b'["a", "b"', b"Content-Length: 100"))
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        problem(read_response(sock), 400)
        assert time.monotonic() - started < 1


def test_an_apps_own_bare_400_is_its_own(server: SpikardProcess):
    # Not taken for the parser's refusal: the app's headers, kept alive.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /bare-400 HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = parts(read_response(sock))
            assert (status, headers.get("x-mine"), body) == (400, "1", b"")
            assert "connection" not in headers


def test_a_body_over_the_limit_is_refused_from_its_length_before_it_is_read(server: SpikardProcess):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(post("/count", b"", b"Content-Length: 5000000"))
        answer = read_response(sock)
        assert time.monotonic() - started < 2
    document = problem(answer, 413)
    assert "100000" in str(document["detail"])
    assert parts(answer)[1]["connection"] == "close"
    still_serves(server)


def test_a_chunked_body_sent_after_100_continue_is_drained_past_the_limit(server: SpikardProcess):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/echo", b"", b"Transfer-Encoding: chunked", b"Expect: 100-continue"))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        chunk = b"x" * 60_000
        for _ in range(30):  # 1.8 MB, all of it sent before reading
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        problem(read_response(sock), 413)


def test_with_expect_100_continue_no_continue_is_sent_for_a_body_over_the_limit(server: SpikardProcess):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/count", b"", b"Content-Length: 5000000", b"Expect: 100-continue"))
        answer = read_response(sock)
    assert not answer.startswith(b"HTTP/1.1 100"), answer
    problem(answer, 413)
    # Within the limit, the client is asked to continue and its body is read.
    body = b'["a", "b"]'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/count", b"", b"Content-Length: %d" % len(body), b"Expect: 100-continue"))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert json.loads(parts(read_response(sock))[2]) == {"count": 2}


def test_a_client_sending_its_whole_oversized_body_first_still_reads_the_413(server: SpikardProcess):
    # The rest of the body is read and thrown away after the answer, so the
    # close does not reset the connection under the client's feet.
    body = b"[" + b'"x",' * 100_000 + b'"x"]'
    answer = exchange(server.port, post("/count", body))
    problem(answer, 413)


def test_a_chunked_body_stops_at_the_limit(server: SpikardProcess):
    chunk = b"x" * 50_000
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(40)) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/echo", b"", b"Transfer-Encoding: chunked"))
        sock.sendall(framed[:200_000])  # past the limit, and the answer comes before the rest
        answer = read_response(sock)
    problem(answer, 413)
    still_serves(server)


def test_a_request_without_exactly_one_valid_host_is_400(server: SpikardProcess):
    for head in (
        b"GET /hello HTTP/1.1\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET /who HTTP/1.1\r\nHost: evil.com/x?y#\r\n\r\n",
        b"GET /who HTTP/1.1\r\nHost: user@evil.com\r\n\r\n",
    ):
        document = problem(exchange(server.port, head), 400)
        assert "Host" in str(document["detail"]), document
    # HTTP/1.0 may leave it out.
    assert parts(exchange(server.port, b"GET /hello HTTP/1.0\r\n\r\n"))[0] == 200
    still_serves(server)


def test_the_authority_of_an_absolute_target_is_what_request_url_uses(server: SpikardProcess):
    answer = exchange(server.port, b"GET http://real.example:8080/who?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert json.loads(parts(answer)[2])["url"] == "http://real.example:8080/who?x=1"
    answer = exchange(server.port, b"GET /who HTTP/1.1\r\nHost: example.com:81\r\n\r\n")
    assert json.loads(parts(answer)[2])["url"] == "http://example.com:81/who"


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"chunked, chunked", b"identity, chunked"])
def test_transfer_encoding_other_than_exactly_chunked_is_501_and_closes(server: SpikardProcess, coding: bytes):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post("/echo", b"", b"Transfer-Encoding: " + coding) + b"2\r\n{}\r\n0\r\n\r\n")
        answer = read_response(sock)
        problem(answer, 501)
        assert parts(answer)[1]["connection"] == "close"
        assert sock.recv(100) == b""  # closed
    # Exactly chunked is read.
    answer = exchange(server.port, post("/echo", b"", b"Transfer-Encoding: chunked") + b"2\r\n{}\r\n0\r\n\r\n")
    assert json.loads(parts(answer)[2]) == {"length": 2}


def test_a_one_segment_parameter_never_carries_a_slash(server: SpikardProcess):
    def get(path: bytes) -> tuple[int, bytes]:
        status, _, body = parts(exchange(server.port, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"))
        return status, body

    assert get(b"/items/a%20b") == (200, b'{"name":"a b"}')
    problem(exchange(server.port, b"GET /items/a%2Fb HTTP/1.1\r\nHost: t\r\n\r\n"), 404)
    assert get(b"/items/a%2fb")[0] == 404
    # A path parameter keeps what it matched, decoded.
    assert json.loads(get(b"/files/a%2Fb/c")[1]) == {"rest": "a/b/c"}


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"CONNECT example.com:443 HTTP/1.1", 501),
        (b"GET example.com:443 HTTP/1.1", 400),
        (b"GET * HTTP/1.1", 400),
        (b"GET gopher://t/hello HTTP/1.1", 400),
        (b"GET /hello HTTP/2.0", 505),
        (b"GET /hello HTTP/3.0", 505),
    ],
)
def test_targets_and_versions_that_are_not_served(server: SpikardProcess, line: bytes, status: int):
    document = problem(exchange(server.port, line + b"\r\nHost: t\r\n\r\n"), status)
    assert document["detail"]
    still_serves(server)


def test_options_star_asks_about_the_server(server: SpikardProcess):
    status, headers, _ = parts(exchange(server.port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert status == 204
    assert {"GET", "POST", "OPTIONS"} <= {m.strip() for m in headers["allow"].split(",")}


@pytest.mark.parametrize(
    "head",
    [
        b"GET /hello HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        b"\x01\x02\x03 / HTTP/1.1\r\n\r\n",
        b"GET /hel\x7flo HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
def test_heads_the_parser_refuses_get_a_problem_and_a_log_line(server: SpikardProcess, head: bytes):
    document = problem(exchange(server.port, head), 400)
    assert "malformed" in str(document["detail"])
    still_serves(server)
    wait_until(lambda: re.search(r'" 400 [\d.]+ms', server.stdout), what="the refusal's access line")


def test_refusals_are_logged(server: SpikardProcess):
    exchange(server.port, b"GET /logged-refusal HTTP/2.0\r\nHost: t\r\n\r\n")
    exchange(server.port, b"GET /no-host-logged HTTP/1.1\r\n\r\n")
    wait_until(lambda: len([ln for ln in server.stdout.splitlines() if "logged" in ln]) >= 2, what="both lines")
    lines = [ln for ln in server.stdout.splitlines() if "logged" in ln]
    assert any('"GET /logged-refusal HTTP/1.1" 505 ' in ln for ln in lines), lines
    assert any('"GET /no-host-logged HTTP/1.1" 400 ' in ln for ln in lines), lines


def h2_client() -> Any:
    """An HTTP/2 client connection (the h2 library's), its preface ready to send."""
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    connection = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
    connection.initiate_connection()
    return connection


def test_an_http2_preface_split_over_several_writes_is_still_http2(server: SpikardProcess):
    h2_events = pytest.importorskip("h2.events")
    connection = h2_client()
    opening = connection.data_to_send()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for piece in (opening[:3], opening[3:11], opening[11:]):
            sock.sendall(piece)
            time.sleep(0.05)
        headers = [(":method", "GET"), (":path", "/who"), (":scheme", "http"), (":authority", "h2.example")]
        connection.send_headers(1, headers, end_stream=True)
        sock.sendall(connection.data_to_send())
        body, status = b"", None
        while status is None or not body.endswith(b"}"):
            for event in connection.receive_data(sock.recv(65536)):
                if isinstance(event, h2_events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2_events.DataReceived):
                    body += event.data
            sock.sendall(connection.data_to_send())
    assert status == b"200"
    assert json.loads(body)["url"] == "http://h2.example/who"


# Nothing exhausted


def test_validation_errors_are_capped_with_the_total_in_the_detail(server: SpikardProcess):
    body = json.dumps([0] * 20_000).encode()  # 20,000 ints where strings are wanted
    answer = exchange(server.port, post("/count", body))
    document = problem(answer, 422)
    assert document["detail"] == "20000 validation errors (the first 100 are listed)"
    errors = document["errors"]
    assert isinstance(errors, list) and len(errors) == 100
    assert [e["loc"] for e in errors[:2]] == [["body", 0], ["body", 1]]
    assert len(answer) < 30_000


def test_a_head_over_the_bound_is_refused(server: SpikardProcess):
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 1000) for i in range(80))
    answer = exchange(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    document = problem(answer, 431)
    assert "65536" in str(document["detail"])
    still_serves(server)
    # Under the bound (64 KiB): served.
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 1000) for i in range(50))
    answer = exchange(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert parts(answer)[0] == 200


# Types honoured


@pytest.mark.parametrize(
    ("path", "sent", "expected"),
    [
        ("/int", b"2", {"n": 2, "type": "int"}),
        ("/int", b"2.0", {"n": 2, "type": "int"}),
        ("/int", b"1e2", {"n": 100, "type": "int"}),
        ("/ints", b"[1, 2.0, 3e0]", {"ns": [1, 2, 3], "types": ["int"]}),
        ("/float", b"2", {"x": 2.0, "type": "float"}),
        ("/maybe-int", b"4.0", {"n": 4}),
    ],
)
def test_number_bodies_arrive_as_their_annotated_type(server: SpikardProcess, path: str, sent: bytes, expected):
    status, _, body = parts(exchange(server.port, post(path, sent)))
    assert (status, json.loads(body)) == (200, expected)


@pytest.mark.parametrize(("path", "sent"), [("/int", b"2.5"), ("/ints", b"[1, 2.5]"), ("/int", b"1e400")])
def test_numbers_that_are_not_the_annotated_type_are_422(server: SpikardProcess, path: str, sent: bytes):
    problem(exchange(server.port, post(path, sent)), 422)
    still_serves(server)


# Logs an operator can trust


def test_access_log_fields_cannot_be_forged(server: SpikardProcess):
    # What HTTP parsers let through in a target: a backslash and bytes past ASCII
    # (a quote or a control byte is refused); and a proxy header naming a client
    # that is no address.
    target = b"/hello?q=\\%22\xc3\xa9"
    forged = b"GET " + target + b' HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4 - "GET /admin\r\n\r\n'
    assert parts(exchange(server.port, forged))[0] == 200
    line = wait_until(
        lambda: next((ln for ln in server.stdout.splitlines() if "/hello?q=" in ln), None), what="the access line"
    )
    assert line.startswith('unknown - "GET /hello?q=\\\\%22\\xC3\\xA9 HTTP/1.1" 200 '), line


def test_a_client_named_by_a_proxy_is_an_address_or_unknown(server: SpikardProcess):
    def who(forwarded: str) -> object:
        request = b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: " + forwarded.encode() + b"\r\n\r\n"
        return json.loads(parts(exchange(server.port, request))[2])["host"]

    assert who("203.0.113.7") == "203.0.113.7"
    assert who("[2001:db8::1]:443") == "2001:db8::1"
    assert who("evil.com/x?y#") == "unknown"
    assert who("_hidden") == "_hidden"


def test_the_server_log_shows_nothing_went_wrong(server: SpikardProcess, tmp_path: Path):
    still_serves(server)
    assert "Traceback" not in server.stderr, server.stderr


def test_log_records_built_in_python_escape_the_target_too(spikard_server, tmp_path: Path):
    # A --log-config makes each request a LogRecord (not the runtime's own lines).
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(message)s|%(target)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(tmp_path / "access.log"), "formatter": "plain"}
        },
        "loggers": {"spikard.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    logged = spikard_server(APP, args=["--log-config", "log.json"])
    assert parts(exchange(logged.port, b"GET /hello?q=\\\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n"))[0] == 200
    assert logged.stop() == 0
    line = (tmp_path / "access.log").read_text(encoding="utf-8").strip().splitlines()[-1]
    message, _, attribute = line.partition("|")
    assert '"GET /hello?q=\\\\\\xC3\\xA9 HTTP/1.1" 200 ' in message, line
    assert attribute == "/hello?q=\\\u00e9"  # the record's attribute keeps what was sent


def test_http2_rapid_reset_keeps_no_more_handlers_at_work_than_the_stream_limit(server: SpikardProcess):
    h2_errors = pytest.importorskip("h2.errors")
    connection = h2_client()
    headers = [(":method", "GET"), (":path", "/held"), (":scheme", "http"), (":authority", "t")]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(connection.data_to_send())
        # Each stream is reset a few milliseconds after it opens, after the server
        # has taken it: its handler (a one-second sleep) would go on without a bound.
        for _ in range(300):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, headers, end_stream=True)
            sock.sendall(connection.data_to_send())
            time.sleep(0.004)
            connection.reset_stream(stream, error_code=h2_errors.ErrorCodes.CANCEL)
            sock.sendall(connection.data_to_send())
            sock.setblocking(False)
            try:
                while data := sock.recv(65536):
                    connection.receive_data(data)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
    document = json.loads(server.get("/peak")[1])
    print("handlers at work at most:", document)
    # The limit held (100 streams per connection), and the test did keep many at work.
    assert 50 <= document["peak"] <= 100, document
    still_serves(server)


LARGE_APP = """
from typing import Annotated, Any

import msgspec
from spikard import Body, Spikard

app = Spikard()


class Item(msgspec.Struct):
    id: int
    name: str


@app.get("/hello")
async def hello():
    return {"hello": "world"}


@app.post("/echo-json")
async def echo_json(document: Annotated[Any, Body()]):
    return document


@app.post("/ints")
async def ints(ns: Annotated[list[int], Body()]):
    return {"sum": sum(ns), "types": sorted({type(n).__name__ for n in ns})}


@app.post("/scores")
async def scores(scores: Annotated[dict[str, float], Body()]):
    return {"count": len(scores), "types": sorted({type(v).__name__ for v in scores.values()})}


@app.post("/floats")
async def floats(xs: Annotated[list[float] | None, Body()] = None):
    return {"count": len(xs or ()), "types": sorted({type(x).__name__ for x in xs or ()})}


@app.post("/embedded")
async def embedded(numbers: Annotated[list[float], Body()], label: Annotated[str, Body()]):
    return {"count": len(numbers), "label": label, "types": sorted({type(n).__name__ for n in numbers})}


@app.post("/items")
async def items(items: Annotated[list[Item], Body()]):
    return {"count": len(items), "last": items[-1].name}


@app.post("/judged")
async def judged(items: Annotated[list[Item], Body()]):
    return {"count": len(items)}

"""

JUDGING = """
from spikard.exceptions import RequestValidationError
from spikard.responses import JSONResponse


@app.exception_handler(RequestValidationError)
async def judge(request, error):
    body = error.body
    locs = [error["loc"] for error in error.errors()]
    return JSONResponse({"locs": locs, "body_items": len(body) if body else None}, status_code=418)
"""

# Past 256 KiB a body is parsed off the serving thread into a compact document,
# checked in place and made into Python objects a step at a time: nothing may be
# lost, reordered or retyped on the way.
LARGE = 300_000


def large_items(count: int = 6000) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"item n\u00e9 {i}"} for i in range(count)]


def test_a_large_body_reaches_the_handler_whole_and_in_order(spikard_server):
    server = spikard_server(LARGE_APP, args=["--no-access-log"])
    document = {
        "zeta": [
            {"id": i, "name": f"n\u00e9{i}", "tags": ["a", {"deep": [i, i * 0.5, None, True]}]} for i in range(6000)
        ],
        "alpha": {"big": 123456789012345678901234567890, "neg": -(2**70), "float": 1.5e300, "empty": {}, "list": []},
        "order": {str(k): k for k in range(2000, 0, -1)},
    }
    sent = json.dumps(document).encode()
    assert len(sent) > LARGE
    status, _, body = parts(exchange(server.port, post("/echo-json", sent)))
    assert status == 200
    assert json.loads(body) == document
    assert list(json.loads(body)["order"]) == [str(k) for k in range(2000, 0, -1)]
    numbers = json.dumps([float(n) if n % 2 else n for n in range(60_000)]).encode()
    assert len(numbers) > LARGE
    status, _, body = parts(exchange(server.port, post("/ints", numbers)))
    assert (status, json.loads(body)) == (200, {"sum": sum(range(60_000)), "types": ["int"]})
    embedded = json.dumps({"label": "x" * 10, "numbers": list(range(70_000))}).encode()
    assert len(embedded) > LARGE
    status, _, body = parts(exchange(server.port, post("/embedded", embedded)))
    assert (status, json.loads(body)) == (200, {"count": 70_000, "label": "x" * 10, "types": ["float"]})
    still_serves(server)


@pytest.mark.parametrize("count", [3, 40_000])
def test_numbers_in_a_body_of_floats_or_ints_arrive_as_annotated(spikard_server, count):
    # Made as the annotated type where they are made (no second pass copies the
    # body), small or large: ints in a float body are floats, 2.0 in an int body 2.
    server = spikard_server(LARGE_APP, args=["--no-access-log"])
    mixed = [n if n % 2 else n + 0.5 for n in range(count)]
    scores = {f"k{n}": value for n, value in enumerate(mixed)}
    for path, sent, expected in [
        ("/floats", mixed, {"count": count, "types": ["float"]}),
        ("/scores", scores, {"count": count, "types": ["float"]}),
        ("/ints", [float(n) for n in range(count)], {"sum": sum(range(count)), "types": ["int"]}),
    ]:
        status, _, body = parts(exchange(server.port, post(path, json.dumps(sent).encode())))
        assert (status, json.loads(body)) == (200, expected), path
    status, _, body = parts(exchange(server.port, post("/floats", b"null")))
    assert (status, json.loads(body)) == (200, {"count": 0, "types": []})
    still_serves(server)


def test_a_large_invalid_body_gets_the_errors_a_small_one_would(spikard_server):
    server = spikard_server(LARGE_APP, args=["--no-access-log"])
    good = large_items()
    status, _, body = parts(exchange(server.port, post("/items", json.dumps(good).encode())))
    assert (status, json.loads(body)) == (200, {"count": 6000, "last": "item n\u00e9 5999"})
    bad = [*good[:-1], {"id": "5999", "name": 1}]
    document = problem(exchange(server.port, post("/items", json.dumps(bad).encode())), 422)
    locs = sorted(tuple(e["loc"]) for e in document["errors"])
    assert locs == [("body", 5999, "id"), ("body", 5999, "name")], document["errors"]
    # The same shape as for a small body.
    small = problem(exchange(server.port, post("/items", json.dumps(bad[-2:]).encode())), 422)
    assert [e["type"] for e in document["errors"]] == [e["type"] for e in small["errors"]]
    still_serves(server)


@pytest.mark.parametrize("count", [3, 70_000])
def test_a_key_sent_twice_counts_once_with_its_last_value_small_or_large(spikard_server, count):
    server = spikard_server(LARGE_APP, args=["--no-access-log"])
    numbers = json.dumps(list(range(count)))
    sent = f'{{"label": "first", "numbers": {numbers}, "label": 5}}'.encode()
    document = problem(exchange(server.port, post("/embedded", sent)), 422)
    assert [e["loc"] for e in document["errors"]] == [["body", "label"]]
    sent = f'{{"label": 5, "numbers": {numbers}, "label": "last"}}'.encode()
    status, _, body = parts(exchange(server.port, post("/embedded", sent)))
    assert (status, json.loads(body)["label"]) == (200, "last")
    still_serves(server)


def test_a_large_body_python_cannot_hold_is_refused_as_a_small_one_is(spikard_server):
    server = spikard_server(LARGE_APP, args=["--no-access-log"])
    for padding in (0, 80_000):
        sent = b"[" + b"1," * padding + b"1e400]"
        status, _, body = parts(exchange(server.port, post("/echo-json", sent)))
        assert status == 422, body[:300]
        assert b"out of range" in body
    still_serves(server)


def test_a_large_body_reaches_the_apps_validation_handler(spikard_server):
    server = spikard_server(LARGE_APP + JUDGING, args=["--no-access-log"])
    bad = [*large_items()[:-1], {"id": "x", "name": "y"}]
    status, _, body = parts(exchange(server.port, post("/judged", json.dumps(bad).encode())))
    assert (status, json.loads(body)) == (418, {"locs": [["body", 5999, "id"]], "body_items": 6000})
    # A body Python cannot hold reaches the handler as None, small or large.
    for padding in (0, 80_000):
        sent = b"[" + b"1," * padding + b"1e400]"
        status, _, body = parts(exchange(server.port, post("/echo-json", sent)))
        assert (status, json.loads(body)) == (418, {"locs": [["body"]], "body_items": None})
    still_serves(server)


def test_a_target_longer_than_the_parser_takes_is_414(spikard_server):
    # With a head bound above 64 KiB, hyper's own limit on a target is reached first.
    server = spikard_server(APP, args=["--max-head-size", "131072"])
    document = problem(exchange(server.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"), 414)
    assert "too long" in str(document["detail"])
    still_serves(server)

"""The five-stage clock over real sockets: Server-Timing, the access log's stage
fields, and ``spikard.stats`` read inside the serving process."""

from __future__ import annotations

import http.client
import json
import re
import socket
import statistics
import struct
import time

import httpx
import pytest
from conftest import SpikardProcess, wait_until

from spikard.stats import STAGES, ServerTiming, parse_server_timing

APP = """
import asyncio, dataclasses, time
import msgspec
from spikard import Spikard, Query
from spikard import stats

class Item(msgspec.Struct):
    name: str
    price: float

app = Spikard()

@app.get("/items/{item_id:int}")
async def get_item(item_id: int, limit: int = Query(10, ge=1)) -> dict:
    return {"item_id": item_id, "limit": limit}

@app.post("/items", status_code=201)
async def create(body: Item) -> Item:
    return body

@app.get("/sleep")
async def sleep(ms: float = 50) -> dict:
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}

@app.get("/blocking")
def blocking() -> dict:
    time.sleep(0.03)
    return {"ok": True}

@app.get("/boom")
async def boom() -> dict:
    raise RuntimeError("boom")

@app.get("/_stats")
async def read_stats() -> dict:
    return {name: dataclasses.asdict(route) for name, route in stats.snapshot().routes.items()}

@app.post("/_stats/reset")
async def reset_stats() -> dict:
    stats.reset()
    return {}
"""


def request(server: SpikardProcess, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"content-type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def timing(server: SpikardProcess, method: str, path: str, body: bytes | None = None) -> tuple[int, ServerTiming]:
    response = request(server, method, path, body)
    header = response.getheader("server-timing")
    assert header is not None, f"{method} {path}: no Server-Timing header"
    return response.status, parse_server_timing(header)


def route_stats(server: SpikardProcess) -> dict:
    status, body = server.get("/_stats")
    assert status == 200, body
    return json.loads(body)


def test_an_awaiting_handler_shows_its_time_under_handler(spikard_server):
    server = spikard_server(APP, args=["--server-timing"])
    # The quickest of three: a busy machine may pause any one request.
    samples = [timing(server, "GET", "/sleep?ms=50")[1] for _ in range(3)]
    assert all(sample.stages["handler"] >= 50.0 for sample in samples), samples
    assert list(samples[0].stages) == list(STAGES)
    for stage in ("parse", "validate", "ffi", "response"):
        assert min(sample.stages[stage] for sample in samples) < 1.0, (stage, samples)


def test_a_sync_handlers_time_lands_in_handler(spikard_server):
    server = spikard_server(APP, args=["--server-timing"])
    status, measured = timing(server, "GET", "/blocking")
    assert status == 200
    assert measured.stages["handler"] >= 30.0, measured
    assert measured.total - measured.stages["handler"] < 10.0, measured


def test_a_request_refused_in_rust_never_reaches_python(spikard_server):
    server = spikard_server(APP, args=["--server-timing"])
    # Refused while its body is read: parsed no further.
    status, measured = timing(server, "POST", "/items", b'{"name": ')
    assert status == 400
    assert list(measured.stages) == ["parse"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/items", body=b"name=x", headers={"content-type": "text/plain"})
    response = connection.getresponse()
    response.read()
    assert response.status == 415
    assert list(parse_server_timing(response.getheader("server-timing")).stages) == ["parse"]
    status, measured = timing(server, "GET", "/items/seven")
    assert status == 422
    assert list(measured.stages) == ["parse", "validate"]
    status, measured = timing(server, "POST", "/items", b'{"name": "x", "price": "free"}')
    assert status == 422
    assert list(measured.stages) == ["parse", "validate"]
    status, measured = timing(server, "GET", "/nowhere")
    assert status == 404
    assert list(measured.stages) == ["parse"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/items/3?limit=2", None, 200),
        ("POST", "/items", b'{"name": "x", "price": 1.5}', 201),
        ("GET", "/sleep?ms=5", None, 200),
        ("GET", "/boom", None, 500),
        ("GET", "/items/3?limit=0", None, 422),
        ("DELETE", "/items/3", None, 405),
    ],
)
def test_stages_and_other_add_up_to_the_total(spikard_server, method, path, body, status):
    server = spikard_server(APP, args=["--server-timing"])
    got, measured = timing(server, method, path, body)
    assert got == status
    staged = sum(measured.stages.values())
    # Each figure is rounded to the microsecond.
    assert staged <= measured.total + 0.001 * len(measured.stages), measured
    assert all(took >= 0 for took in measured.stages.values())
    # What no stage holds is small: the stages cover the request.
    assert measured.other < 1.0, measured


def test_a_pipelined_request_is_not_charged_for_the_one_before_it(spikard_server):
    server = spikard_server(APP, args=["--server-timing"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /sleep?ms=60 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b"server-timing:") < 2 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    lines = received.split(b"\r\n")
    headers = [line.split(b":", 1)[1].decode() for line in lines if line.startswith(b"server-timing:")]
    first, second = (parse_server_timing(value) for value in headers)
    assert first.stages["handler"] >= 60.0
    assert second.stages["parse"] < 5.0, second
    assert second.total < 50.0, second


def test_a_client_that_leaves_a_suspended_handler_is_counted_as_499(spikard_server):
    server = spikard_server(APP, args=["--stage-stats"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # gone: a reset
    route = wait_until(
        lambda: route_stats(server)["GET /sleep"]["statuses"]["4xx"] == 1 and route_stats(server), what="the 499"
    )
    sleep = route["GET /sleep"]
    assert sleep["total"]["count"] == 1
    assert sleep["stages"]["validate"]["count"] == 1
    assert sleep["stages"]["response"]["count"] == 0


OWN_ANSWERS_APP = """
from spikard import Spikard
from spikard.exceptions import RequestValidationError
from spikard.responses import JSONResponse

app = Spikard()

@app.exception_handler(RequestValidationError)
async def on_invalid(request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"mine": True}, status_code=400)

@app.exception_handler(404)
async def on_missing(request, exc) -> JSONResponse:
    return JSONResponse({"missing": True}, status_code=404)

@app.get("/items/{item_id:int}")
async def item(item_id: int) -> dict:
    return {"item_id": item_id}
"""


def test_an_apps_own_answers_to_refused_requests_count_as_handler(spikard_server):
    server = spikard_server(OWN_ANSWERS_APP, args=["--server-timing"])
    status, measured = timing(server, "GET", "/items/seven")
    assert status == 400
    assert list(measured.stages) == ["parse", "validate", "handler"]
    status, measured = timing(server, "GET", "/nowhere")
    assert status == 404
    assert list(measured.stages) == ["parse", "handler"]


def test_server_timing_is_sent_only_when_asked_for(spikard_server):
    server = spikard_server(APP)
    assert request(server, "GET", "/items/1").getheader("server-timing") is None


def test_server_timing_over_http2(spikard_server):
    server = spikard_server(APP, args=["--server-timing"])
    with httpx.Client(http1=False, http2=True) as client:
        response = client.get(f"http://127.0.0.1:{server.port}/sleep?ms=20")
    assert response.http_version == "HTTP/2"
    measured = parse_server_timing(response.headers["server-timing"])
    assert measured.stages["handler"] >= 20.0
    assert measured.stages["parse"] < 5.0


def test_statistics_agree_with_what_the_client_measured(spikard_server):
    server = spikard_server(APP, args=["--stage-stats"])
    request(server, "POST", "/_stats/reset")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    took = []
    for _ in range(100):
        started = time.perf_counter()
        connection.request("GET", "/sleep?ms=10")
        connection.getresponse().read()
        took.append((time.perf_counter() - started) * 1e6)
    connection.close()
    route = route_stats(server)["GET /sleep"]
    total, handler = route["total"], route["stages"]["handler"]
    assert route["total"]["count"] == 100
    assert all(route["stages"][stage]["count"] == 100 for stage in STAGES)
    assert route["statuses"]["2xx"] == 100
    client_p50 = statistics.median(took)
    # The server's total excludes only the network and the client itself: a fraction
    # of a millisecond here. Two significant digits: within 1%.
    assert total["p50"] <= client_p50 * 1.01, (total, client_p50)
    assert client_p50 - total["p50"] < 2000, (total, client_p50)
    assert total["max"] <= max(took) * 1.01
    assert 10_000 <= handler["p50"] <= total["p50"] * 1.01
    assert handler["p50"] <= handler["p90"] <= handler["p99"] <= handler["max"] * 1.01
    assert total["mean"] == pytest.approx(sum(route["stages"][s]["mean"] for s in STAGES), rel=0.05)


def test_refused_requests_count_under_parse_and_validate_with_their_status(spikard_server):
    server = spikard_server(APP, args=["--stage-stats"])
    request(server, "POST", "/_stats/reset")
    for path in ("/items/1", "/items/2", "/items/x", "/items/1?limit=0"):
        request(server, "GET", path)
    request(server, "GET", "/boom")
    request(server, "GET", "/missing")
    figures = route_stats(server)
    items = figures["GET /items/{item_id}"]
    assert items["total"]["count"] == 4
    assert items["stages"]["parse"]["count"] == items["stages"]["validate"]["count"] == 4
    assert items["stages"]["ffi"]["count"] == items["stages"]["handler"]["count"] == 2
    assert items["statuses"] == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 2, "5xx": 0}
    assert figures["GET /boom"]["statuses"]["5xx"] == 1
    assert figures["unrouted"]["statuses"]["4xx"] == 1
    assert figures["unrouted"]["stages"]["validate"]["count"] == 0
    # Reset forgets them (the read itself is counted after its snapshot).
    request(server, "POST", "/_stats/reset")
    assert route_stats(server)["GET /items/{item_id}"]["total"]["count"] == 0


@pytest.mark.parametrize("args", [[], ["--no-stage-stats"]])
def test_statistics_are_off_unless_asked_for(spikard_server, args):
    server = spikard_server(APP, args=args)
    request(server, "GET", "/items/1")
    assert route_stats(server) == {}


ACCESS_STAGES = re.compile(
    r'"GET /items/1 HTTP/1.1" 200 [\d.]+ms parse=[\d.]+ validate=[\d.]+ ffi=[\d.]+ handler=[\d.]+ response=[\d.]+$'
)


def test_the_access_log_shows_the_stages_when_asked(spikard_server):
    plain = spikard_server(APP)
    staged = spikard_server(APP, args=["--access-log-stages"])
    for server in (plain, staged):
        request(server, "GET", "/items/1")
        request(server, "GET", "/items/x")
        server.stop()
    assert '"GET /items/1 HTTP/1.1" 200' in plain.stdout
    assert "parse=" not in plain.stdout
    lines = staged.stdout.splitlines()
    assert any(ACCESS_STAGES.search(line) for line in lines), lines
    refused = next(line for line in lines if "/items/x" in line)
    assert re.search(r" 422 [\d.]+ms parse=[\d.]+ validate=[\d.]+$", refused), refused


def test_access_log_stages_without_the_access_log_is_refused(spikard_server, tmp_path):
    server = spikard_server(APP, args=["--access-log-stages", "--no-access-log"], wait=False)
    assert server.wait() == 2
    assert "--access-log-stages needs the access log" in server.stderr


def test_server_timing_parser():
    measured = parse_server_timing(
        "parse;dur=0.004, validate;dur=0.011, ffi;dur=0.003, handler;dur=0.152, response;dur=0.007, total;dur=0.180"
    )
    assert measured.stages == {"parse": 0.004, "validate": 0.011, "ffi": 0.003, "handler": 0.152, "response": 0.007}
    assert measured.total == 0.180
    assert measured.other == pytest.approx(0.003)
    # Parameters in any order, quoted descriptions with commas, other metrics, several lines joined.
    other = parse_server_timing('cache;desc="hit, warm", db;dur=2, handler;desc="x;y";dur=1.5, total;dur="3"')
    assert other.stages == {"handler": 1.5}
    assert other.total == 3.0
    with pytest.raises(ValueError, match="no total"):
        parse_server_timing("parse;dur=1")
    with pytest.raises(ValueError, match="not a number"):
        parse_server_timing("total;dur=soon")

"""Stage statistics out of the process, over real sockets: ``--stats-file`` (JSON,
surviving SIGTERM), and the Prometheus exposition of ``--metrics-port`` /
``--metrics-uds``, merged across ``--workers``, with every request counted once."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from conftest import SpikardProcess, free_port, http_get, wait_until
from prometheus_client.parser import text_string_to_metric_families

from spikard.stats import STAGES, Snapshot

APP = """
import os
from spikard import Spikard

app = Spikard()

@app.get("/pid")
async def pid() -> dict:
    return {"pid": os.getpid()}

@app.get("/items/{item_id:int}")
async def item(item_id: int) -> dict:
    return {"item_id": item_id}
"""

PID_ROUTE = "GET /pid"


def until_both_workers_answer(port: int) -> tuple[set[int], int]:
    """GET /pid on fresh connections until both workers have answered: their pids,
    and how many requests that took."""
    pids = fresh_connection_gets(port, "/pid", 40)
    sent = 40
    # The second worker may still be starting on a loaded machine: give it time, not a count.
    deadline = time.monotonic() + 20
    while len(pids) < 2:
        pids |= fresh_connection_gets(port, "/pid", 20)
        sent += 20
        assert time.monotonic() < deadline, f"one worker took every connection ({sent})"
        time.sleep(0.05)
    return pids, sent


def fresh_connection_gets(port: int, path: str, count: int) -> set[int]:
    """``count`` GETs, each on its own connection (so that every worker takes some);
    the pids that answered /pid."""
    pids = set()
    for _ in range(count):
        status, body = http_get(port, path)
        assert status == 200, body
        if path == "/pid":
            pids.add(json.loads(body)["pid"])
    return pids


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The exposition, parsed by prometheus_client: samples by name, then labels."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/plain; version=0.0.4")
    return samples_of(text)


def samples_of(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def route_count(samples, route: str) -> float:
    return samples.get("spikard_request_duration_seconds_count", {}).get((("route", route),), 0.0)


def test_stats_file_is_written_while_serving_and_survives_sigterm(spikard_server, tmp_path: Path):
    stats_file = tmp_path / "stats.json"
    server = spikard_server(APP, args=["--stats-file", str(stats_file), "--stats-interval", "0.2"])
    fresh_connection_gets(server.port, "/pid", 20)

    def written():
        try:
            snapshot = Snapshot.load(stats_file)
        except (OSError, ValueError):
            return None
        route = snapshot.routes.get(PID_ROUTE)
        return snapshot if route and route.count == 20 else None

    snapshot = wait_until(written, what="the periodic statistics file")
    assert snapshot.pid == server.proc.pid
    fresh_connection_gets(server.port, "/items/3", 7)
    assert server.stop(signal.SIGTERM) == 0
    final = Snapshot.load(stats_file)
    items = final.routes["GET /items/{item_id}"]
    assert items.count == 7
    assert set(items.stages) == set(STAGES)
    assert items.stages["handler"].count == 7
    assert items.statuses["2xx"] == 7
    assert final.routes[PID_ROUTE].count == 20
    assert not list(tmp_path.glob("stats.json.*")), "no partial file is left behind"


def test_metrics_parse_with_prometheus_client_and_resolve_microseconds(spikard_server):
    metrics_port = free_port()
    server = spikard_server(APP, args=["--metrics-port", str(metrics_port)])
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for i in range(30):
        connection.request("GET", f"/items/{i}")
        assert connection.getresponse().read()
    connection.request("GET", "/items/x")
    connection.getresponse().read()
    connection.close()
    samples = scrape(metrics_port)
    route = "GET /items/{item_id}"
    assert route_count(samples, route) == 31
    responses = samples["spikard_responses_total"]
    assert responses[(("route", route), ("status", "2xx"))] == 30
    assert responses[(("route", route), ("status", "4xx"))] == 1
    buckets = samples["spikard_stage_duration_seconds_bucket"]

    def stage_buckets(stage: str) -> dict[str, float]:
        return {
            dict(labels)["le"]: value
            for labels, value in buckets.items()
            if dict(labels)["stage"] == stage and dict(labels)["route"] == route
        }

    parse, handler = stage_buckets("parse"), stage_buckets("handler")
    # Buckets from 1 µs; a parse of a few microseconds is told apart from zero.
    assert "1e-06" in parse and parse["+Inf"] == 31
    assert handler["+Inf"] == 30  # the refused request never reached the handler
    assert parse["0.001"] == 31
    assert 0 < samples["spikard_stage_duration_seconds_sum"][(("route", route), ("stage", "validate"))] < 0.1
    counts = list(parse.values())
    assert counts == sorted(counts), "cumulative buckets"
    status, _ = http_get(metrics_port, "/other")
    assert status == 404


def stats_directories() -> set[Path]:
    return set(Path("/dev/shm").glob("spikard-stats-*"))


def test_two_workers_are_merged_and_every_request_counts_once(spikard_server, tmp_path: Path):
    directories = stats_directories()
    metrics_port = free_port()
    stats_file = tmp_path / "stats.json"
    server = spikard_server(
        APP, args=["--workers", "2", "--metrics-port", str(metrics_port), "--stats-file", str(stats_file)]
    )
    pids, sent = until_both_workers_answer(server.port)
    assert server.proc.pid not in pids
    assert route_count(scrape(metrics_port), PID_ROUTE) == sent
    # A rolling restart retires both workers: what they counted stays counted.
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "every worker replaced" in server.stderr, timeout=60, what="the rolling restart")
    fresh_connection_gets(server.port, "/pid", 10)
    samples = scrape(metrics_port)
    assert route_count(samples, PID_ROUTE) == sent + 10
    assert samples["spikard_responses_total"][(("route", PID_ROUTE), ("status", "2xx"))] == sent + 10
    assert server.stop(signal.SIGTERM) == 0
    assert Snapshot.load(stats_file).routes[PID_ROUTE].count == sent + 10
    assert stats_directories() <= directories, "the workers' statistics files are removed at exit"


def test_a_killed_workers_requests_stay_counted(spikard_server):
    metrics_port = free_port()
    server = spikard_server(APP, args=["--workers", "2", "--metrics-port", str(metrics_port)])
    pids, sent = until_both_workers_answer(server.port)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: f"worker {victim} died" in server.stderr, what="the supervisor to notice")
    survivors = fresh_connection_gets(server.port, "/pid", 10)
    assert victim not in survivors
    assert route_count(scrape(metrics_port), PID_ROUTE) == sent + 10
    assert server.stop() == 0


def test_metrics_on_a_unix_socket(spikard_server, tmp_path: Path):
    socket_path = tmp_path / "metrics.sock"
    server = spikard_server(APP, args=["--metrics-uds", str(socket_path)])
    fresh_connection_gets(server.port, "/pid", 3)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path))) as client:
        text = client.get("http://metrics/metrics").text
    assert route_count(samples_of(text), PID_ROUTE) == 3
    assert server.stop() == 0
    assert not socket_path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "0"], "--metrics-port must be a port number"),
        (["--metrics-port", "9999", "--metrics-uds", "m.sock"], "cannot be used together"),
        (["--stats-file", "s.json", "--no-stage-stats"], "--stats-file needs the statistics"),
        (
            ["--metrics-port", "9999", "--stats-file", "s.json", "--no-stage-stats"],
            "--stats-file and --metrics-port need the statistics",
        ),
        (["--stats-interval", "-1"], "--stats-interval must be a number of seconds, 0 or more"),
        (["--stats-interval", "nan"], "--stats-interval must be a number of seconds, 0 or more"),
    ],
)
def test_bad_export_arguments_are_refused_with_a_reason(spikard_server, args, message):
    server: SpikardProcess = spikard_server(APP, args=args, wait=False)
    assert server.wait() != 0
    assert message in server.stderr


def test_metrics_port_already_taken_is_refused(spikard_server):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = spikard_server(APP, args=["--metrics-port", str(port)], wait=False)
        assert server.wait() == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in server.stderr

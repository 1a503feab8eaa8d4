"""``spikard profile`` as a user runs it: a real app served by ``spikard run``, real
load from oha, real samples from py-spy, and the files it leaves behind read back."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import spikard_command

APP = """\
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from spikard import Cookie, Header, Query, Spikard

# Output at import never gets into what the profiler reads of the app.
print("noise from the app at import")

app = Spikard()


def crunch(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@app.get("/busy")
async def busy_handler():
    return {"total": crunch(40_000)}


class Order(msgspec.Struct):
    sku: Annotated[str, msgspec.Meta(min_length=3, max_length=12, pattern="^[a-z]+$")]
    quantity: Annotated[int, msgspec.Meta(ge=2, le=9)]
    unit_price: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    # msgspec's schema says only "string": the first try is refused, the next accepted.
    deliver_at: datetime
    tags: list[str] = []


@app.post("/shops/{shop_id:int}/orders")
async def place_order(
    shop_id: int,
    order: Order,
    priority: int = Query(..., ge=3, le=5),
    x_client: str = Header(..., min_length=2),
    session: str = Cookie(...),
):
    return {"shop": shop_id, "sku": order.sku, "priority": priority, "client": x_client, "session": session}


@app.get("/things/{thing_id:uuid}")
async def get_thing(thing_id: UUID, verbose: bool = False, ids: list[int] = Query(...)):
    return {"id": str(thing_id), "verbose": verbose, "ids": ids}


@app.get("/sync")
def sync_handler(page: int = Query(1, ge=1)):
    return {"page": page}
"""

STAGES = ["parse", "validate", "ffi", "handler", "response"]


def profile(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*spikard_command(), "profile", "app.py", "--connections", "4", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def report(folder: Path) -> dict:
    (path,) = (p for p in (folder / "flamegraphs").glob("app-*.json") if not p.name.endswith(".speedscope.json"))
    return json.loads(path.read_text())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def test_every_route_gets_a_valid_synthesised_request_and_five_stages(project):
    result = profile(project, "--duration", "1", "--no-flamegraph")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    document = report(project)
    requests = {r["route"]: r for r in document["requests"]}
    assert set(requests) == {
        "GET /busy",
        "POST /shops/{shop_id}/orders",
        "GET /things/{thing_id}",
        "GET /sync",
    }
    for route, request in requests.items():
        # Typed path, query, header, cookie and body values, all accepted: no 422.
        assert 200 <= request["check"]["status"] < 300, (route, request)
        load = request["stage_phase"]
        assert load["requests"] > 0
        assert set(load["statuses"]) == {"200"}, (route, load)
        assert not load["errors"]
    post = requests["POST /shops/{shop_id}/orders"]
    assert json.loads(post["body"])["sku"].isalpha()
    for route in requests:
        stages = document["stages"][route]
        assert list(stages["stages"]) == STAGES
        # Every answer oha counted was counted by the runtime too (and the checks), and
        # the server's time (µs) is within what the client waited (ms).
        assert stages["requests"] >= sum(requests[route]["stage_phase"]["statuses"].values())
        assert stages["total_us"]["p50"] / 1000 <= requests[route]["stage_phase"]["latency_ms"]["p50"]
        assert stages["total_us"]["p50"] > 0
        for name in STAGES:
            # Every request passed every stage, but for refused tries (422: parse and
            # validate only) before one was accepted; a stage may take less than a
            # microsecond.
            assert stages["stages"][name]["count"] >= stages["requests"] - 12
            assert stages["stages"][name]["p99"] >= stages["stages"][name]["p50"] >= 0
        shares = [stages["stages"][name]["share"] for name in STAGES] + [stages["other_share"]]
        assert abs(sum(shares) - 1) < 0.01
    # The stage table and the load table are shown.
    assert "Where each route's time goes" in result.stdout
    assert "GET /things/{thing_id}" in result.stdout
    # No sampling phase was asked for: no flamegraph, no stacks.
    assert document["files"] == {}
    assert document["cpu"]["sampled"] is None


def _frames(svg: Path) -> list[tuple[str, float, float, float]]:
    """(title, x, y, width) of every frame box of an inferno flamegraph."""
    tree = ElementTree.parse(svg)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    frames = []
    for group in tree.getroot().iter("{http://www.w3.org/2000/svg}g"):
        title = group.find("svg:title", ns)
        rect = group.find("svg:rect", ns)
        if title is None or rect is None or title.text is None:
            continue
        x = float(rect.get("x", "0").rstrip("%"))
        width = float(rect.get("width", "0").rstrip("%"))
        frames.append((title.text, x, float(rect.get("y", "0")), width))
    return frames


def test_a_busy_handler_shows_in_one_flamegraph_with_the_runtime_and_owns_the_cpu(project):
    result = profile(project, "--url", "GET", "/busy", "--duration", "3", "--format", "both")
    assert result.returncode == 0, result.stderr + result.stdout
    document = report(project)
    svg = project / document["files"]["svg"]
    assert svg.exists() and (project / document["files"]["speedscope"]).exists()
    frames = _frames(svg)
    handlers = [f for f in frames if f[0].startswith("crunch ")]
    assert handlers, "the handler's function is in the flamegraph"
    # A named frame of spikard's Rust (the bridge that steps the handler's coroutine)
    # is an ancestor of the handler's frame in the same stack: it spans the handler's
    # box and sits below it (y grows downwards in inferno's default orientation).
    rust = [f for f in frames if re.search(r"runtime/python/src/\w+\.rs", f[0])]
    assert rust, "named frames of the runtime's Rust are in the flamegraph"
    assert any(
        r[1] <= h[1] + 1e-6 and h[1] + h[3] <= r[1] + r[3] + 1e-6 and r[2] > h[2] for h in handlers for r in rust
    ), "a runtime frame is an ancestor of the handler in one stack"
    cpu = document["cpu"]["sampled"]
    assert cpu["samples"] > 50
    shares = cpu["shares"]
    assert shares["app"] > 0.5, shares
    assert shares["app"] == max(shares.values()), shares
    assert cpu["top_python"][0]["function"].startswith("crunch ")
    assert document["cpu"]["samples_with_runtime_and_app_in_one_stack"] > 0
    speedscope = json.loads((project / document["files"]["speedscope"]).read_text())
    assert speedscope["profiles"][0]["type"] == "sampled"
    names = {frame["name"] for frame in speedscope["shared"]["frames"]}
    assert "crunch" in names
    assert "Where the CPU goes" in result.stdout


def test_without_oha_it_says_how_to_install_it(project):
    result = profile(project, env={"SPIKARD_OHA": str(project / "no-oha")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "oha" in result.stderr
    assert "cargo install --locked oha@" in result.stderr


def stage_table_without_flamegraph(project: Path, py_spy: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """A profile of GET /sync with ``py_spy`` as the sampler that fails: it succeeds,
    with the stage table in its report and no flamegraph."""
    result = profile(project, "--url", "GET", "/sync", "--duration", "1", env={"SPIKARD_PY_SPY": py_spy})
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    document = report(project)
    assert list(document["stages"]["GET /sync"]["stages"]) == STAGES
    assert "svg" not in document["files"]
    return result, document


def test_without_py_spy_the_stage_table_comes_anyway(project):
    result, document = stage_table_without_flamegraph(project, "/nonexistent/py-spy")
    assert "py-spy" in result.stdout and "spikard-devtools[profile]" in result.stdout
    assert any("py-spy" in note for note in document["notes"])


def test_a_sampler_refused_ptrace_gives_the_fix_and_the_stage_table_anyway(project):
    # A py-spy as one refused by the kernel behaves: it says so and exits at once.
    fake = project / "py-spy"
    fake.write_text("#!/bin/sh\necho 'Error: Failed to attach: Permission denied (os error 13)' >&2\nexit 1\n")
    fake.chmod(0o755)
    result, _ = stage_table_without_flamegraph(project, str(fake))
    assert "Permission denied" in result.stdout and "ptrace_scope=0" in result.stdout


def test_a_requests_file_is_sent_as_written(project):
    (project / "requests.json").write_text(
        json.dumps(
            [
                {"method": "GET", "path": "/sync?page=3"},
                {
                    "method": "POST",
                    "path": "/shops/7/orders?priority=4",
                    "headers": {"x-client": "cli", "cookie": "session=s1"},
                    "body": {"sku": "abc", "quantity": 3, "unit_price": 0.5, "deliver_at": "2027-01-01T10:00:00Z"},
                },
            ]
        )
    )
    result = profile(project, "--requests", "requests.json", "--duration", "1", "--no-flamegraph")
    assert result.returncode == 0, result.stderr + result.stdout
    document = report(project)
    assert [r["route"] for r in document["requests"]] == ["GET /sync", "POST /shops/{shop_id}/orders"]
    assert all(set(r["stage_phase"]["statuses"]) == {"200"} for r in document["requests"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('[{"method": "GET", "path": "sync"}]', "must start with '/'"),
        ('[{"method": "GET", "path": "/sync", "bdy": 1}]', "unknown keys ['bdy']"),
        ("[]", "non-empty JSON list"),
    ],
)
def test_a_bad_requests_file_is_refused_with_the_reason(project, content, message):
    (project / "requests.json").write_text(content)
    result = profile(project, "--requests", "requests.json")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "afile"], "exists and is not a folder"),
        (["--duration", "nan"], "--duration must be a number of seconds"),
        (["--duration", "0"], "--duration must be a number of seconds"),
        (["--rate", "inf"], "--rate must be a positive number"),
        (["--url", "GET", "/a\x01b"], "control character"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(project, args, message):
    (project / "afile").write_text("")
    result = profile(project, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "flamegraphs").exists()


def test_a_folder_named_as_the_app_is_refused_with_what_to_name(project):
    (project / "pkg").mkdir()
    result = subprocess.run(
        [*spikard_command(), "profile", "pkg"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pkg is a folder" in result.stderr


def _servers_in(folder: Path) -> list[int]:
    """Processes running ``spikard run`` from ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"run" in cmdline and any(part.endswith(b"spikard") for part in cmdline) and cwd == str(folder):
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_everything_and_keeps_what_was_measured(project):
    # As a terminal delivers Ctrl-C: to the whole process group.
    process = subprocess.Popen(
        [*spikard_command(), "profile", "app.py", "--duration", "20", "--url", "GET", "/sync"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As from a terminal: a suite run in the background (as `cmd &` does) starts
        # its children with SIGINT ignored, and Python then keeps it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not _servers_in(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # under load by now
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in out + err
    assert "interrupted" in err
    assert _servers_in(project) == []
    # What ran before Ctrl-C is in the report: the route's stages.
    assert list(report(project)["stages"]["GET /sync"]["stages"]) == STAGES


def test_an_app_that_does_not_load_is_shown_not_profiled(project):
    (project / "app.py").write_text("from spikard import Spikard\napp = Spikard()\n1 / 0\n")
    result = profile(project)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr
    assert "app.py" in result.stderr
    assert not (project / "flamegraphs").exists()

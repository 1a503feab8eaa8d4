"""``spikard bench`` as a user runs it: the real suite's servers started from their
commands, real load from oha, every answer checked; the files it leaves read back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import spikard_command

from spikard.stats import UNROUTED

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench"
STAGES = ["parse", "validate", "ffi", "handler", "response"]


def bench(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*spikard_command(), "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def the_report(out: Path) -> dict:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def cells(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["framework"], c["workload"]): c for c in report["cells"]}


# The longest runs are taken once per test run, on the default Python (scripts/test.sh).
ONCE = pytest.mark.skipif(
    bool(os.environ.get("SPIKARD_TEST_SECONDARY")), reason="run once, on the default Python (scripts/test.sh)"
)


@ONCE
def test_the_quick_suite_measures_every_workload_on_spikard_fastapi_and_the_ceiling(tmp_path):
    out = tmp_path / "results"
    # --quick, shortened further: answers and shape are checked, not figures.
    short = ("--duration", "0.5", "--warmup", "0.1", "--latency-duration", "0.2", "--stage-duration", "0.3")
    result = bench(ROOT, "--quick", *short, "--framework", "spikard,FastAPI,ceiling", "--out", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    report = the_report(out)
    workloads = [w["name"] for w in json.loads((SUITE / "workloads.json").read_text())["workloads"]]
    assert [w["name"] for w in report["workloads"]] == workloads
    assert [f["name"] for f in report["frameworks"]] == ["spikard", "FastAPI", "ceiling"]
    assert report["reference"] == "FastAPI" and report["ceiling"] == "ceiling"
    found = cells(report)
    for workload in workloads:
        expected = next(w for w in report["workloads"] if w["name"] == workload)["expect"]["status"]
        for framework in ("spikard", "FastAPI", "ceiling"):
            cell = found[(framework, workload)]
            assert cell["failure"] is None, cell
            (sample,) = cell["rounds"]  # --quick: one round
            # Every answer oha counted was the expected one; nothing else.
            assert set(sample["statuses"]) == {str(expected)}, cell
            assert sample["requests_per_second"] > 0
            assert {share: len(runs) for share, runs in cell["latency_at"].items()} == {"50%": 1, "80%": 1}
            assert set(cell["summary"]["p99_ms_at"]) == {"50%", "80%"}
            assert cell["summary"]["share_of_ceiling"] is None or framework != "ceiling"
        spikard = found[("spikard", workload)]
        assert spikard["summary"]["ratio_to_reference"] > 0
        assert spikard["summary"]["share_of_ceiling"] > 0
        # spikard's own account: the five stages of the route this workload reached.
        assert list(spikard["stages"]["stages"]) == STAGES, workload
        assert spikard["stages"]["requests"] > 0
    assert found[("spikard", "not-found")]["stage_route"] == UNROUTED
    assert found[("spikard", "params")]["stage_route"] == "GET /items/{item_id}"
    # The machine and the tools are named; the exact commands are kept.
    assert report["machine"]["cpus"] >= 1 and report["machine"]["kernel"]
    assert report["versions"]["oha"] and report["versions"]["fastapi"]
    assert report["frameworks"][1]["command"][1:3] == ["-m", "uvicorn"]
    assert report["settings"]["quick"] is True
    # The terminal table, the markdown and the chart.
    assert "Requests per second" in result.stdout and "Where spikard's time goes" in result.stdout
    markdown = next(out.glob("*.md")).read_text()
    assert "| hello | **spikard** |" not in markdown  # titles, not names, in the markdown
    assert "| GET JSON hello | **spikard** |" in markdown
    svg = next(out.glob("*.svg")).read_text()
    assert svg.startswith("<?xml") and "FastAPI" in svg


SPIKARD_ONLY = {
    "reference": None,
    "ceiling": None,
    "frameworks": [
        {
            "name": "spikard",
            "label": "spikard",
            "command": ["{python}", "-m", "spikard", "run", "{apps}/app.py", "--port", "{port}", "--no-access-log"],
            "modules": ["spikard"],
            "stages": True,
            "default": True,
        },
        {
            "name": "imaginary",
            "label": "Imaginary framework",
            "command": ["{python}", "-m", "imaginary_framework_xyz", "--port", "{port}"],
            "modules": ["imaginary_framework_xyz"],
            "install": "pip install imaginary-framework",
            "default": True,
        },
    ],
}

FLAKY_APP = """\
from spikard import Spikard

app = Spikard()
served = 0


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@app.get("/tired")
async def tired():
    # Right at first, then failing: only the check under load can tell.
    global served
    served += 1
    if served > 50:
        raise RuntimeError("tired")
    return {"message": "fine"}
"""


def a_suite(folder: Path, workloads: list[dict], app: str = FLAKY_APP) -> Path:
    (folder / "apps").mkdir(parents=True)
    (folder / "apps" / "app.py").write_text(app)
    (folder / "workloads.json").write_text(json.dumps({"connections": 8, "workloads": workloads}))
    (folder / "frameworks.json").write_text(json.dumps(SPIKARD_ONLY))
    return folder


def test_wrong_answers_are_reported_failed_never_fast(tmp_path):
    suite = a_suite(
        tmp_path / "suite",
        [
            {
                "name": "hello",
                "method": "GET",
                "path": "/hello",
                "expect": {"status": 200, "json": {"message": "Hello"}},
            },
            {"name": "wrong", "method": "GET", "path": "/hello", "expect": {"status": 200, "json": {"message": "Bye"}}},
            {
                "name": "tired",
                "method": "GET",
                "path": "/tired",
                "expect": {"status": 200, "json": {"message": "fine"}},
            },
        ],
    )
    out = tmp_path / "out"
    result = bench(tmp_path, "--quick", "--suite", str(suite), "--out", str(out), "--no-chart")
    assert result.returncode == 1, result.stderr + result.stdout
    found = cells(the_report(out))
    assert found[("spikard", "hello")]["failure"] is None
    assert found[("spikard", "hello")]["summary"]["requests_per_second"] > 0
    wrong = found[("spikard", "wrong")]
    assert wrong["failure"].startswith("wrong answer before the load") and '"Bye"' in wrong["failure"]
    assert wrong["summary"] is None and wrong["rounds"] == []
    tired = found[("spikard", "tired")]
    assert tired["summary"] is None
    assert "500" in tired["failure"] and "under load" in tired["failure"], tired["failure"]
    assert "FAILED" in result.stdout
    # A framework that is not installed is named with its install command; the rest ran.
    assert "Imaginary framework: not measured: imaginary_framework_xyz not installed" in result.stderr
    assert "pip install imaginary-framework" in result.stderr


APP = """\
import msgspec
from spikard import Spikard

app = Spikard()


class Item(msgspec.Struct):
    name: str
    price: float


@app.get("/items/{item_id:int}")
async def get_item(item_id: int):
    return {"id": item_id, "name": "widget"}


@app.post("/items")
async def create(item: Item) -> Item:
    return item
"""

FASTAPI_ORIGINAL = """\
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
async def get_item(item_id: int):
    # The port's one difference: the original names the item differently.
    return {"id": item_id, "name": "gadget"}


@app.post("/items")
async def create(item: Item) -> Item:
    return item
"""


def test_a_users_app_against_the_fastapi_original_with_answers_compared(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "old_app.py").write_text(FASTAPI_ORIGINAL)
    (tmp_path / "requests.json").write_text(
        json.dumps(
            [
                {"method": "GET", "path": "/items/7"},
                {"method": "POST", "path": "/items", "body": {"name": "a", "price": 1.5}},
            ]
        )
    )
    against = f"original={sys.executable} -m uvicorn old_app:app --port {{port}} --log-level warning"
    out = tmp_path / "out"
    result = bench(
        tmp_path,
        "app.py",
        "--requests",
        "requests.json",
        "--against",
        against,
        "--quick",
        "--out",
        str(out),
        "--no-chart",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = the_report(out)
    assert report["mode"] == "app"
    assert [f["name"] for f in report["frameworks"]] == ["app", "original"]
    assert report["reference"] == "original"
    # The commands as started: with their ports.
    assert all("{port}" not in part for f in report["frameworks"] for part in f["command"])
    found = cells(report)
    for request in ("GET /items/7", "POST /items"):
        assert found[("app", request)]["summary"]["ratio_to_reference"] > 0
        assert found[("original", request)]["summary"]["requests_per_second"] > 0
    assert found[("app", "GET /items/7")]["stage_route"] == "GET /items/{item_id}"
    # The one request answered differently is shown, both answers side by side.
    (differing,) = report["answers_differ"]
    assert differing["request"] == "GET /items/7"
    assert "widget" in differing["answers"]["app"]["body"] and "gadget" in differing["answers"]["original"]["body"]
    assert "Answers that differ" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--against", "uvicorn app:app"], "must contain {port}"),
        (["--workload", "nonesuch"], "unknown workload nonesuch"),
        (["--framework", "Django"], "unknown framework Django"),
        (["--url", "GET", "/"], "give APP too"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--duration", "nan"], "--duration must be at least"),
        (["--compare", "/nonexistent/old.json"], "/nonexistent/old.json"),
        (["--instructions", "--rounds", "3"], "--rounds do not apply"),
        (["--workload", ","], "names nothing"),
        (["--framework", ""], "names nothing"),
        (["--against", "FastAPI=python3 -m uvicorn x:app --port {port}"], "the name 'FastAPI' is taken"),
        (["--connections", "10000000"], "ulimit -n"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, said):
    result = bench(ROOT, *args, "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_folder_it_cannot_write_is_refused_before_anything_is_measured(tmp_path):
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "below", Path("/proc/nope")):
        result = bench(ROOT, "--quick", "--workload", "hello", "--out", str(out), timeout=60)
        assert result.returncode == 2, result.stderr
        assert f"--out {out}" in result.stderr
        assert "Requests per second" not in result.stdout


def test_without_oha_it_says_how_to_install_it(tmp_path):
    result = bench(ROOT, "--quick", "--out", str(tmp_path), env={"SPIKARD_OHA": str(tmp_path / "no-oha")}, timeout=60)
    assert result.returncode == 2
    assert "oha" in result.stderr and "cargo install --locked oha@1.16.0" in result.stderr


def test_outside_a_checkout_it_says_where_the_suite_lives(tmp_path):
    result = bench(tmp_path, "--quick", timeout=60)
    assert result.returncode == 2
    assert "bench/ folder" in result.stderr and "spikard bench APP" in result.stderr


def test_ctrl_c_stops_every_server_and_keeps_what_was_measured(tmp_path):
    suite = a_suite(
        tmp_path / "suite",
        [{"name": "hello", "method": "GET", "path": "/hello", "expect": {"status": 200, "json": {"message": "Hello"}}}],
    )
    out = tmp_path / "out"
    process = subprocess.Popen(
        [*spikard_command(), "bench", "--suite", str(suite), "--out", str(out), "--no-chart", "--rounds", "5"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: SIGINT at its default (a suite run in the background
        # starts children with it ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    servers: list[str] = []
    while time.monotonic() < deadline and not servers:
        time.sleep(0.5)
        servers = _servers_of(suite)
    time.sleep(8)  # into the rounds: some measured, more to come
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert _servers_of(suite) == []
    report = the_report(out)
    (cell,) = report["cells"]
    assert 1 <= len(cell["rounds"]) < 5


def _servers_of(suite: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"{suite}/apps/app.py"], capture_output=True, text=True).stdout
    return found.split()


@ONCE
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind (callgrind) is not installed")
def test_instructions_are_counted_per_request_with_callgrind(tmp_path):
    out = tmp_path / "out"
    result = bench(
        ROOT, "--instructions", "--framework", "spikard", "--workload", "hello,small-post", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = the_report(out)
    assert report["kind"] == "instructions"
    counts = {row["workload"]: row["per_request"] for row in report["instructions"]}
    # Tens of thousands of instructions per request (a hello is about 18k); a POST
    # that parses, validates and answers a body costs more than the hello.
    assert 3_000 < counts["hello"] < 200_000
    assert counts["small-post"] > counts["hello"]
    assert "Instructions per request" in result.stdout

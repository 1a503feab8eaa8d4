"""Handler faults: a 500 problem without internals (tracebacks only in debug mode),
the traceback on logger ``spikard.error``, and a server that keeps serving."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import assert_problem

from spikard import Spikard
from spikard.testing import TestClient

SECRET = "kaboom-7f3a-secret"


def build_app(debug: bool) -> Spikard:
    app = Spikard(debug=debug)

    @app.get("/boom/sync")
    def boom_sync() -> None:
        raise RuntimeError(f"{SECRET} sync")

    @app.get("/boom/async")
    async def boom_async() -> None:
        raise RuntimeError(f"{SECRET} async-first-step")

    @app.get("/boom/async-after-await")
    async def boom_async_after_await() -> None:
        await asyncio.sleep(0.01)
        raise KeyError(f"{SECRET} async-after-await")

    @app.get("/boom/unserialisable")
    def boom_unserialisable() -> object:
        return object()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(build_app(debug=False)) as client:
        yield client


@pytest.fixture(scope="module")
def debug_client():
    with TestClient(build_app(debug=True)) as client:
        yield client


FAULTS = ["/boom/sync", "/boom/async", "/boom/async-after-await", "/boom/unserialisable"]


@pytest.mark.parametrize("path", FAULTS)
def test_handler_fault_is_a_500_problem_without_internals(client, path, caplog):
    with caplog.at_level(logging.CRITICAL + 1, logger="spikard.error"):
        response = client.get(path)
    body = assert_problem(response, 500)
    assert "Traceback" not in response.text
    assert SECRET not in response.text
    assert 'File "' not in response.text
    assert isinstance(body["detail"], str)


@pytest.mark.parametrize("path", FAULTS)
def test_server_keeps_serving_after_a_fault(client, path, caplog):
    with caplog.at_level(logging.CRITICAL + 1, logger="spikard.error"):
        for _ in range(3):
            assert client.get(path).status_code == 500
    assert client.get("/ok").json() == {"ok": True}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/boom/sync", "RuntimeError: kaboom-7f3a-secret sync"),
        ("/boom/async", "RuntimeError: kaboom-7f3a-secret async-first-step"),
        ("/boom/async-after-await", "KeyError: 'kaboom-7f3a-secret async-after-await'"),
    ],
)
def test_debug_mode_shows_the_traceback_in_the_500(debug_client, path, message, caplog):
    with caplog.at_level(logging.CRITICAL + 1, logger="spikard.error"):
        response = debug_client.get(path)
    body = assert_problem(response, 500)
    assert "Traceback" in body["detail"]
    assert message in body["detail"]
    assert debug_client.get("/ok").status_code == 200


@pytest.mark.parametrize(
    ("path", "exception_type", "text"),
    [
        ("/boom/sync", RuntimeError, f"{SECRET} sync"),
        ("/boom/async", RuntimeError, f"{SECRET} async-first-step"),
        ("/boom/async-after-await", KeyError, f"{SECRET} async-after-await"),
    ],
)
def test_handler_fault_is_logged_with_its_traceback_on_spikard_error(client, caplog, path, exception_type, text):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        assert client.get(path).status_code == 500
    records = [r for r in caplog.records if r.name == "spikard.error"]
    assert len(records) == 1, records
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is exception_type
    assert text in str(record.exc_info[1])
    assert path in record.getMessage()
    assert "Traceback" in caplog.text
    assert text in caplog.text


def test_unserialisable_result_is_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        assert client.get("/boom/unserialisable").status_code == 500
    assert [r for r in caplog.records if r.name == "spikard.error" and r.exc_info]


def test_validation_problem_has_the_standard_shape():
    app = Spikard()

    @app.get("/needs")
    def needs(n: int) -> int:
        return n

    with TestClient(app) as other:
        response = other.get("/needs", params={"n": "x"})
    body = assert_problem(response, 422)
    assert body["type"] == "about:blank"
    assert body["title"] == "Unprocessable Entity"
    assert body["detail"] == "1 validation error"
    assert body["errors"] == [
        {"loc": ["query", "n"], "msg": body["errors"][0]["msg"], "type": "int_parsing", "input": "x"}
    ]

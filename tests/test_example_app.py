"""The bundled example app (the README's first command serves it) works as its
docstring says, and the FastAPI-compatible names it uses exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import assert_problem

import spikard
from spikard.testing import TestClient

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app.py"


@pytest.fixture(scope="module")
def client():
    spec = importlib.util.spec_from_file_location("example_app", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as client:
        yield client


def test_the_example_app_answers_as_documented(client):
    assert client.get("/hello").json() == {"message": "Hello"}
    created = client.post("/items", json={"name": "widget", "price": 9.5, "tags": ["blue"]})
    assert created.status_code == 201
    assert created.headers["location"] == "/items/1"
    assert client.get("/items/1?q=blue&limit=5").json() == {"name": "widget", "price": 9.5, "tags": ["blue"]}
    assert assert_problem(client.get("/items/99"), 404)["detail"] == "No item 99"
    assert_problem(client.post("/items", json={"name": 1}), 422)
    assert client.get("/whoami", cookies={"session": "abc"}).json()["session"] == "abc"
    assert client.get("/slow?seconds=0.05").json() == {"slept": 0.05}
    assert client.get("/sync").json()["thread"].startswith("spikard-sync")


def test_fastapi_names_exist():
    assert spikard.APIRouter is spikard.Router
    assert spikard.status.HTTP_201_CREATED == 201
    assert spikard.status.HTTP_422_UNPROCESSABLE_ENTITY == 422
    # RFC 9110's new names (CPython 3.13's) and the old ones, on every version.
    assert spikard.status.HTTP_422_UNPROCESSABLE_CONTENT == 422
    assert spikard.status.HTTP_413_CONTENT_TOO_LARGE == spikard.status.HTTP_413_REQUEST_ENTITY_TOO_LARGE == 413
    assert {"HTTP_404_NOT_FOUND", "HTTP_414_URI_TOO_LONG", "HTTP_414_REQUEST_URI_TOO_LONG"} <= set(dir(spikard.status))
    with pytest.raises(AttributeError):
        spikard.status.HTTP_404_MISSING  # noqa: B018

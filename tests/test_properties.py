"""Property tests (hypothesis) over a real server: numbers reach handlers as their
annotated type whatever form JSON writes them in, and every refusal, whatever was
sent, is an RFC 9457 problem of the documented shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from conftest import PROBLEM_JSON, SpikardProcess, free_port, spikard_command, write_app

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

APP = """
from typing import Annotated
import msgspec
from spikard import Body, Spikard

app = Spikard()


class Line(msgspec.Struct):
    sku: str
    qty: int
    price: float | None = None


class Order(msgspec.Struct):
    id: int
    lines: list[Line]
    note: str | None = None


@app.post("/int")
async def take_int(n: Annotated[int, Body()]):
    return {"n": str(n), "type": type(n).__name__}


@app.post("/ints")
async def take_ints(ns: Annotated[list[int], Body()]):
    return {"ns": [str(n) for n in ns], "types": sorted({type(n).__name__ for n in ns})}


@app.post("/float")
async def take_float(x: Annotated[float, Body()]):
    return {"x": repr(x), "type": type(x).__name__}


@app.post("/order")
async def take_order(order: Order):
    return {"lines": len(order.lines)}


@app.get("/query")
async def query(limit: int, ratio: float = 1.0):
    return {"limit": str(limit), "ratio": repr(ratio)}
"""

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("properties")
    write_app(folder, APP)
    port = free_port()
    command = [*spikard_command(), "run", "app.py", "--port", str(port), "--no-access-log"]
    server = SpikardProcess(command, folder, port, folder / "stderr.txt")
    server.wait_serving()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    errors = server.stderr
    server.kill()
    assert "Traceback" not in errors, errors


def post(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


def assert_problem(response: httpx.Response) -> dict:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if response.status_code == 422:
        assert 1 <= len(body["errors"]) <= 100
        for error in body["errors"]:
            assert {"loc", "msg", "type"} <= error.keys(), error
            assert error["loc"] and all(isinstance(part, (str, int)) for part in error["loc"])
    return body


def integer_forms(n: int) -> st.SearchStrategy[str]:
    """The ways JSON may write the integer ``n``: plain, with a zero fraction, or in
    exponent form."""
    forms = [str(n), f"{n}.0", f"{n}.000", f"{n}e0", f"{n}E+0"]
    if n != 0 and n % 10 == 0:
        stripped = str(n).rstrip("0")
        forms.append(f"{stripped}e{len(str(n)) - len(stripped)}")
    return st.sampled_from(forms)


@SETTINGS
@given(st.integers(min_value=-(2**53), max_value=2**53).flatmap(lambda n: st.tuples(st.just(n), integer_forms(n))))
def test_an_int_body_gets_an_int_whatever_form_the_number_takes(client: httpx.Client, case: tuple[int, str]):
    n, text = case
    response = post(client, "/int", text)
    assert response.status_code == 200, (text, response.text)
    assert response.json() == {"n": str(n), "type": "int"}


@SETTINGS
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_integers_beyond_64_bits_arrive_exactly(client: httpx.Client, n: int):
    response = post(client, "/int", str(n))
    assert response.json() == {"n": str(n), "type": "int"}


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
def test_a_number_with_a_fraction_is_refused_for_an_int(client: httpx.Client, x: float):
    response = post(client, "/int", json.dumps(x))
    assert response.status_code == 422
    assert assert_problem(response)["errors"][0]["loc"] == ["body"]


@SETTINGS
@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31), max_size=20))
def test_a_list_of_ints_written_as_floats_arrives_as_ints(client: httpx.Client, ns: list[int]):
    response = post(client, "/ints", json.dumps([float(n) for n in ns]))
    assert response.status_code == 200, response.text
    assert response.json()["ns"] == [str(n) for n in ns]
    assert set(response.json()["types"]) <= {"int"}


@SETTINGS
@given(st.one_of(st.integers(min_value=-(2**53), max_value=2**53), st.floats(allow_nan=False, allow_infinity=False)))
def test_a_float_body_gets_a_float_of_the_same_value(client: httpx.Client, x: float):
    response = post(client, "/float", json.dumps(x))
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["type"] == "float"
    assert float(got["x"]) == float(x)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)

ORDERISH = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "lines": st.lists(
            st.fixed_dictionaries({}, optional={"sku": JSON, "qty": JSON, "price": JSON}) | JSON, max_size=8
        ),
        "note": JSON,
    },
)


@SETTINGS
@given(st.one_of(JSON, ORDERISH))
def test_any_json_body_is_served_or_refused_with_a_problem(client: httpx.Client, body: object):
    response = post(client, "/order", json.dumps(body))
    if response.status_code == 200:
        assert isinstance(body, dict) and response.json() == {"lines": len(body["lines"])}
    else:
        assert response.status_code == 422, response.text
        assert_problem(response)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_as_a_body_are_served_or_refused_with_a_problem(client: httpx.Client, raw: bytes):
    response = client.post("/order", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        assert_problem(response)


@SETTINGS
@given(st.one_of(st.text(max_size=30), st.integers().map(str)), st.text(max_size=30))
def test_query_text_is_coerced_or_refused_with_a_problem(client: httpx.Client, limit: str, ratio: str):
    response = client.get("/query", params={"limit": limit, "ratio": ratio})
    plain_int = re.fullmatch(r"[+-]?[0-9]+", limit) is not None
    if response.status_code == 200:
        assert int(response.json()["limit"]) == int(limit.strip())
    else:
        assert response.status_code == 422, response.text
        located = {tuple(e["loc"]) for e in assert_problem(response)["errors"]}
        assert located <= {("query", "limit"), ("query", "ratio")}
        if plain_int:
            assert ("query", "limit") not in located

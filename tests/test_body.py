"""JSON request bodies: which parameter reads the body, accepted media types,
strict JSON types, and the 400/413/415/422 problems for bodies that cannot be used."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import msgspec
import pytest
from conftest import assert_problem, errors_of

from spikard import Body, Spikard
from spikard.testing import TestClient

MIB = 1024 * 1024


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = msgspec.field(default_factory=list)


class Limits(msgspec.Struct):
    count: int
    ratio: float
    enabled: bool
    label: str


app = Spikard()


@app.post("/items", status_code=201)
def create_item(item: Item) -> dict[str, object]:
    return {"type": type(item).__name__, "name": item.name, "price": item.price, "tags": item.tags}


@app.put("/items/{item_id:int}")
async def replace_item(item_id: int, item: Item) -> dict[str, object]:
    return {"id": item_id, "type": type(item).__name__, "name": item.name}


@app.post("/limits")
def limits(limits: Limits) -> Limits:
    return limits


@app.post("/dict")
def take_dict(payload: dict) -> dict[str, object]:
    return {"type": type(payload).__name__, "payload": payload}


@app.post("/dict-typed")
def take_dict_typed(payload: dict[str, int]) -> dict[str, object]:
    return {"total": sum(payload.values())}


@app.post("/list-body")
def take_list_body(ids: Annotated[list[int], Body()]) -> dict[str, object]:
    return {"ids": ids, "sum": sum(ids)}


@app.post("/list-body-default")
def take_list_body_default(ids: list[int] = Body()) -> dict[str, object]:  # noqa: B008 - the marker form under test
    return {"ids": ids, "sum": sum(ids)}


@app.post("/list-query")
def take_list_query(ids: list[int]) -> dict[str, object]:
    return {"ids": ids}


@app.post("/list-of-structs")
def take_list_of_structs(items: list[Item]) -> dict[str, object]:
    return {"names": [i.name for i in items], "types": sorted({type(i).__name__ for i in items})}


@app.post("/optional-body")
def take_optional_body(item: Item | None = None) -> dict[str, object]:
    return {"item": None if item is None else item.name}


@app.post("/any")
def take_any(payload: dict) -> int:
    return len(json.dumps(payload))


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


# --- which parameter is the body ------------------------------------------------


def test_struct_body_is_decoded_into_the_struct(client):
    response = client.post("/items", json={"name": "pen", "price": 1.5, "tags": ["a"]})
    assert response.status_code == 201, response.text
    assert response.json() == {"type": "Item", "name": "pen", "price": 1.5, "tags": ["a"]}


def test_struct_defaults_apply_for_absent_fields(client):
    response = client.post("/items", json={"name": "pen", "price": 2})
    assert response.status_code == 201, response.text
    assert response.json() == {"type": "Item", "name": "pen", "price": 2.0, "tags": []}


def test_body_and_path_parameter_together(client):
    response = client.put("/items/9", json={"name": "cup", "price": 3})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": 9, "type": "Item", "name": "cup"}


def test_struct_round_trips_every_json_scalar(client):
    sent = {"count": 3, "ratio": 0.5, "enabled": True, "label": "x"}
    response = client.post("/limits", json=sent)
    assert response.status_code == 200, response.text
    assert response.json() == sent


def test_dict_parameter_reads_the_body(client):
    payload = {"a": 1, "nested": {"b": [1, 2]}, "n": None}
    response = client.post("/dict", json=payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"type": "dict", "payload": payload}


def test_typed_dict_body_values_are_validated(client):
    assert client.post("/dict-typed", json={"a": 1, "b": 2}).json() == {"total": 3}
    assert errors_of(client.post("/dict-typed", json={"a": 1, "b": "2"})) == [(("body", "b"), "int_type")]


@pytest.mark.parametrize("path", ["/list-body", "/list-body-default"])
def test_list_marked_body_reads_the_body(client, path):
    response = client.post(path, json=[1, 2, 3])
    assert response.status_code == 200, response.text
    assert response.json() == {"ids": [1, 2, 3], "sum": 6}


def test_unmarked_list_of_scalars_is_a_query_parameter(client):
    response = client.post("/list-query", params=[("ids", "4"), ("ids", "5")])
    assert response.status_code == 200, response.text
    assert response.json() == {"ids": [4, 5]}


def test_unmarked_list_of_structs_is_the_body(client):
    response = client.post("/list-of-structs", json=[{"name": "a", "price": 1}, {"name": "b", "price": 2}])
    assert response.status_code == 200, response.text
    assert response.json() == {"names": ["a", "b"], "types": ["Item"]}


def test_list_body_locates_a_bad_item_by_index(client):
    assert errors_of(client.post("/list-body", json=[1, "2", 3])) == [(("body", 1), "int_type")]
    errors = errors_of(client.post("/list-of-structs", json=[{"name": "a", "price": 1}, {"name": "b"}]))
    assert errors == [(("body", 1, "price"), "missing")]


def test_optional_body_may_be_absent(client):
    assert client.post("/optional-body").json() == {"item": None}
    assert client.post("/optional-body", json={"name": "x", "price": 1}).json() == {"item": "x"}


# --- strict JSON types ----------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "loc", "error_type"),
    [
        ({"count": 1, "ratio": "1.5", "enabled": True, "label": "x"}, ("body", "ratio"), "float_type"),
        ({"count": "1", "ratio": 1.5, "enabled": True, "label": "x"}, ("body", "count"), "int_type"),
        ({"count": 1.5, "ratio": 1.5, "enabled": True, "label": "x"}, ("body", "count"), "int_type"),
        ({"count": 1, "ratio": 1.5, "enabled": "true", "label": "x"}, ("body", "enabled"), "bool_type"),
        ({"count": 1, "ratio": 1.5, "enabled": 1, "label": "x"}, ("body", "enabled"), "bool_type"),
        ({"count": 1, "ratio": 1.5, "enabled": True, "label": 5}, ("body", "label"), "string_type"),
    ],
)
def test_body_json_types_are_strict(client, payload, loc, error_type):
    assert errors_of(client.post("/limits", json=payload)) == [(loc, error_type)]


def test_string_number_for_a_float_field_is_a_422_at_the_field(client):
    errors = errors_of(client.post("/items", json={"name": "pen", "price": "1.5"}))
    assert [loc for loc, _ in errors] == [("body", "price")]


# --- media types ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.api+json", None],
    ids=["json", "json-charset", "vnd-api-json", "no-content-type"],
)
def test_json_media_types_are_accepted(client, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post("/items", content=b'{"name": "pen", "price": 1}', headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "pen"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_non_json_media_type_is_415(client, content_type):
    response = client.post("/items", content=b'{"name": "pen", "price": 1}', headers={"Content-Type": content_type})
    assert_problem(response, 415)


@pytest.mark.parametrize("raw", [b'{"name": "pen", "price": ', b"{bad}", b"not json", b'{"a": 1} trailing'])
def test_malformed_json_is_400(client, raw):
    response = client.post("/items", content=raw, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


# --- missing and invalid --------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \n"], ids=["empty", "whitespace"])
def test_missing_required_body_is_a_422_at_body(client, raw):
    response = client.post("/items", content=raw, headers={"Content-Type": "application/json"})
    assert errors_of(response) == [(("body",), "missing")]


def test_missing_body_without_content_type_is_a_422_at_body(client):
    assert errors_of(client.post("/items")) == [(("body",), "missing")]


def test_missing_required_field_is_a_422_missing_at_the_field(client):
    assert errors_of(client.post("/items", json={"price": 1})) == [(("body", "name"), "missing")]


def test_every_bad_field_is_reported_at_once(client):
    errors = errors_of(client.post("/limits", json={"count": "1", "ratio": "x", "label": 3}))
    assert sorted(errors) == sorted(
        [
            (("body", "count"), "int_type"),
            (("body", "ratio"), "float_type"),
            (("body", "enabled"), "missing"),
            (("body", "label"), "string_type"),
        ]
    )


def test_body_of_the_wrong_json_type_is_a_422(client):
    assert errors_of(client.post("/items", json=[1, 2])) == [(("body",), "dict_type")]


def test_body_and_parameter_errors_are_reported_together(client):
    response = client.put("/items/abc", json={"price": "x"})
    assert sorted(errors_of(response)) == sorted(
        [
            (("path", "item_id"), "int_parsing"),
            (("body", "name"), "missing"),
            (("body", "price"), "float_type"),
        ]
    )


# --- size limit -----------------------------------------------------------------


def test_body_under_the_default_limit_is_accepted(client):
    payload = {"blob": "x" * (9 * MIB)}
    response = client.post("/any", json=payload)
    assert response.status_code == 200, response.text[:300]
    assert response.json() == len(json.dumps(payload))


def oversize_body() -> bytes:
    return b'{"blob": "' + b"x" * (11 * MIB) + b'"}'


def test_body_over_the_default_10_mib_limit_is_413(client):
    """Through the TestClient: the server answers 413 before reading the whole body,
    and the client must still return that answer."""
    response = client.post("/any", content=oversize_body(), headers={"Content-Type": "application/json"})
    assert_problem(response, 413)


def test_body_over_the_default_10_mib_limit_is_413_for_a_client_that_reads_early_answers(client):
    """The server side of the limit, seen by httpx (which reads a response that
    arrives while the request body is still being sent)."""
    response = httpx.post(
        f"{client.base_url}/any", content=oversize_body(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert_problem(response, 413)


def test_chunked_body_over_the_limit_is_413(client):
    """Without a Content-Length the limit is enforced while reading."""
    chunk = b"x" * MIB

    def chunks():
        yield b'{"blob": "'
        for _ in range(11):
            yield chunk
        yield b'"}'

    response = httpx.post(
        f"{client.base_url}/any", content=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


# --- problem shape --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{}", "text/plain", 415),
        (b"{", "application/json", 400),
        (b"{}", "application/json", 422),
    ],
)
def test_body_errors_are_problem_json_with_the_standard_keys(client, content, content_type, status):
    response = client.post("/items", content=content, headers={"Content-Type": content_type})
    body = assert_problem(response, status)
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 422:
        for error in body["errors"]:
            assert isinstance(error["loc"], list) and error["loc"][0] == "body"
            assert isinstance(error["msg"], str) and error["msg"]
            assert isinstance(error["type"], str) and error["type"]

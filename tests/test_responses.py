"""Handler results: plain values are sent as JSON with the route's status;
``Response`` objects are sent as given."""

from __future__ import annotations

import json

import msgspec
import pytest

from spikard import Response, Spikard
from spikard.testing import TestClient


class Point(msgspec.Struct):
    x: int
    y: float
    label: str | None = None


RESULTS: dict[str, object] = {
    "dict": {"a": 1, "b": [True, None]},
    "list": [1, "two", 3.5, None],
    "str": "hello ü",
    "int": 42,
    "float": 2.5,
    "bool": True,
    "false": False,
    "none": None,
    "empty-list": [],
}

app = Spikard()


def make_endpoint(value: object, is_async: bool):
    if is_async:

        async def endpoint() -> object:
            return value

    else:

        def endpoint() -> object:
            return value

    return endpoint


for _name, _value in RESULTS.items():
    app.get(f"/value/sync/{_name}")(make_endpoint(_value, False))
    app.get(f"/value/async/{_name}")(make_endpoint(_value, True))


@app.get("/value/struct")
def struct_result() -> Point:
    return Point(x=1, y=2.5)


@app.get("/value/struct-list")
async def struct_list_result() -> list[Point]:
    return [Point(x=1, y=2.0, label="a"), Point(x=2, y=3.0)]


@app.post("/created", status_code=201)
def created() -> dict[str, bool]:
    return {"created": True}


@app.post("/created-async", status_code=201)
async def created_async() -> Point:
    return Point(x=0, y=0.0)


@app.delete("/gone", status_code=204)
def gone() -> None:
    return None


@app.put("/accepted", status_code=202)
def accepted() -> list[int]:
    return [1]


@app.get("/response/bytes")
def response_bytes() -> Response:
    return Response(b"\x00\x01binary\xff")


@app.get("/response/bytes-typed")
def response_bytes_typed() -> Response:
    return Response(b"\x89PNG", media_type="image/png")


@app.get("/response/text")
def response_text() -> Response:
    return Response("plain text ü")


@app.get("/response/html")
async def response_html() -> Response:
    return Response("<p>hi</p>", media_type="text/html")


@app.get("/response/dict")
def response_dict() -> Response:
    return Response({"k": [1, 2]})


@app.get("/response/custom")
async def response_custom() -> Response:
    return Response({"ok": True}, status_code=202, headers={"X-Custom": "yes", "Cache-Control": "no-store"})


@app.get("/response/explicit-content-type")
def response_explicit_content_type() -> Response:
    return Response('{"raw": 1}', headers={"Content-Type": "application/vnd.custom+json"})


@app.get("/response/no-content")
def response_no_content() -> Response:
    return Response(status_code=204)


@app.get("/response/redirect")
def response_redirect() -> Response:
    return Response(status_code=307, headers={"Location": "/value/sync/int"})


@app.post("/response/overrides-route-status", status_code=201)
def response_overrides_route_status() -> Response:
    return Response("teapot", status_code=418)


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def media_type(response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("name", list(RESULTS))
def test_plain_results_are_sent_as_json_with_status_200(client, kind, name):
    response = client.get(f"/value/{kind}/{name}")
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    assert response.json() == RESULTS[name]
    assert type(response.json()) is type(RESULTS[name])


def test_struct_result_is_sent_as_json(client):
    response = client.get("/value/struct")
    assert response.status_code == 200
    assert media_type(response) == "application/json"
    assert response.json() == {"x": 1, "y": 2.5, "label": None}


def test_list_of_structs_result_is_sent_as_json(client):
    response = client.get("/value/struct-list")
    assert response.json() == [{"x": 1, "y": 2.0, "label": "a"}, {"x": 2, "y": 3.0, "label": None}]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("POST", "/created", 201, {"created": True}),
        ("POST", "/created-async", 201, {"x": 0, "y": 0.0, "label": None}),
        ("PUT", "/accepted", 202, [1]),
    ],
)
def test_decorator_status_code_applies_to_plain_results(client, method, path, status, body):
    response = client.request(method, path)
    assert response.status_code == status, response.text
    assert response.json() == body


def test_decorator_status_204_with_none(client):
    response = client.delete("/gone")
    assert response.status_code == 204
    assert response.content == b""


def test_response_bytes_are_sent_unchanged_as_octet_stream(client):
    response = client.get("/response/bytes")
    assert response.status_code == 200
    assert response.content == b"\x00\x01binary\xff"
    assert media_type(response) == "application/octet-stream"


def test_response_bytes_with_media_type(client):
    response = client.get("/response/bytes-typed")
    assert response.content == b"\x89PNG"
    assert response.headers["content-type"] == "image/png"


def test_response_str_is_utf8_text_plain(client):
    response = client.get("/response/text")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.content == "plain text ü".encode()
    assert response.text == "plain text ü"


def test_response_str_with_text_media_type_gets_a_charset(client):
    response = client.get("/response/html")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<p>hi</p>"


def test_response_dict_is_json(client):
    response = client.get("/response/dict")
    assert media_type(response) == "application/json"
    assert json.loads(response.content) == {"k": [1, 2]}


def test_response_status_and_headers_are_sent_as_given(client):
    response = client.get("/response/custom")
    assert response.status_code == 202
    assert response.headers["x-custom"] == "yes"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"ok": True}


def test_response_explicit_content_type_header_wins(client):
    response = client.get("/response/explicit-content-type")
    assert response.headers.get_list("content-type") == ["application/vnd.custom+json"]
    assert response.json() == {"raw": 1}


def test_response_without_content_has_an_empty_body(client):
    response = client.get("/response/no-content")
    assert response.status_code == 204
    assert response.content == b""


def test_response_redirect_status_and_location(client):
    response = client.get("/response/redirect")
    assert response.status_code == 307
    assert response.headers["location"] == "/value/sync/int"


def test_response_status_overrides_the_decorator_status(client):
    response = client.post("/response/overrides-route-status")
    assert response.status_code == 418
    assert response.text == "teapot"

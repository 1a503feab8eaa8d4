"""``request: Request`` parameters: the method, path, URL, headers, query, path
parameters, cookies, client address, raw body and app of the request being served."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

import spikard
from spikard import Spikard
from spikard.requests import Request
from spikard.testing import TestClient


class Item(msgspec.Struct):
    name: str
    price: float


app = Spikard()


def describe(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "url": str(request.url),
        "path_params": request.path_params,
    }


@app.route("/echo/method", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def echo_method(request: Request) -> dict[str, Any]:
    return describe(request)


@app.get("/echo/sync/{item_id:int}/{name}")
def echo_sync(request: Request) -> dict[str, Any]:
    return describe(request)


@app.get("/echo/async/{item_id:int}/{name}")
async def echo_async(request: Request) -> dict[str, Any]:
    return describe(request)


@app.get("/headers")
async def headers(request: Request) -> dict[str, Any]:
    return {
        "first": request.headers["x-multi"],
        "upper": request.headers.get("X-MULTI"),
        "all": request.headers.getlist("X-Multi"),
        "contains": "X-MuLtI" in request.headers,
        "missing": request.headers.get("x-absent", "default"),
        "single": request.headers.get("X-Single"),
    }


@app.get("/query")
def query(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {
        "tags": params.getlist("tag"),
        "last": params["tag"],
        "keys": list(params),
        "missing": params.getlist("nope"),
        "blank": params.get("blank"),
        "string": request.query_params.multi_items(),
    }


@app.get("/cookies")
async def cookies(request: Request) -> dict[str, str]:
    return request.cookies


@app.get("/client")
def client_address(request: Request) -> dict[str, Any]:
    assert request.client is not None
    return {"host": request.client.host, "port": request.client.port, "port_type": type(request.client.port).__name__}


@app.route("/body", methods=["POST", "PUT"])
async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return {
        "type": type(raw).__name__,
        "hex": raw.hex(),
        "content_type": request.headers.get("content-type"),
        "again": (await request.body()) == raw,
    }


@app.post("/json")
async def json_body(request: Request) -> Any:
    return {"decoded": await request.json()}


@app.post("/mixed/{shop}")
async def mixed(shop: str, item: Item, limit: int, request: Request, verbose: bool = False) -> dict[str, Any]:
    return {
        "shop": shop,
        "item": {"name": item.name, "price": item.price},
        "limit": limit,
        "verbose": verbose,
        "raw": (await request.body()).decode(),
        "json": await request.json(),
        "query": dict(request.query_params),
        "path_params": request.path_params,
    }


@app.get("/mixed-sync")
def mixed_sync(request: Request, limit: int = 10) -> dict[str, Any]:
    return {"limit": limit, "raw_limit": request.query_params.get("limit")}


@app.get("/is-app")
async def is_app(request: Request) -> dict[str, Any]:
    return {"is_app": request.app is app, "state_value": request.app.state.marker}


@app.get("/per-request-state")
async def per_request_state(request: Request) -> dict[str, Any]:
    before = hasattr(request.state, "seen")
    request.state.seen = True
    return {"before": before, "after": request.state.seen}


@app.get("/decoded/{name}")
def decoded(name: str, request: Request) -> dict[str, str]:
    return {"typed": name, "raw": request.path_params["name"]}


app.state.marker = "the-app"


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def raw_request(
    client: TestClient, method: str, path: str, header_pairs: list[tuple[str, str]], body: bytes | None = None
) -> tuple[int, bytes, int]:
    """Sends headers exactly as given (repeats included); returns status, body and
    the client's local port."""
    port = urlsplit(client.base_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in header_pairs:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        local_port = connection.sock.getsockname()[1]
        response = connection.getresponse()
        return response.status, response.read(), local_port
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method_is_the_request_method(client, method):
    response = client.request(method, "/echo/method")
    assert response.status_code == 200, response.text
    assert response.json()["method"] == method


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("query", "expected_suffix"),
    [("", ""), ("?a=1&b=two", "?a=1&b=two"), ("?tag=x&tag=y", "?tag=x&tag=y")],
)
def test_path_and_url(client, kind, query, expected_suffix):
    path = f"/echo/{kind}/7/widget"
    response = client.get(path + query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == path
    assert body["url"] == f"{client.base_url}{path}{expected_suffix}"
    assert urlsplit(body["url"]).path == path


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_path_params_are_the_raw_strings(client, kind):
    body = client.get(f"/echo/{kind}/42/gadget").json()
    assert body["path_params"] == {"item_id": "42", "name": "gadget"}
    assert isinstance(body["path_params"]["item_id"], str)


def test_path_params_are_empty_for_a_route_without_any(client):
    assert client.get("/echo/method").json()["path_params"] == {}


def test_path_params_are_percent_decoded_like_the_typed_parameter(client):
    body = client.get("/decoded/a%20b").json()
    assert body["typed"] == "a b"
    assert body["raw"] == body["typed"]


def test_headers_are_case_insensitive_and_multi_valued(client):
    status, content, _ = raw_request(
        client,
        "GET",
        "/headers",
        [("X-Multi", "one"), ("x-multi", "two"), ("X-MULTI", "three"), ("X-Single", "solo")],
    )
    assert status == 200, content
    assert json.loads(content) == {
        "first": "one",
        "upper": "one",
        "all": ["one", "two", "three"],
        "contains": True,
        "missing": "default",
        "single": "solo",
    }


@pytest.mark.parametrize(
    ("query", "tags", "last"),
    [
        ("tag=a&tag=b&tag=c", ["a", "b", "c"], "c"),
        ("tag=only", ["only"], "only"),
        ("tag=x%20y&tag=%C3%BC&tag=1+2", ["x y", "ü", "1 2"], "1 2"),
    ],
)
def test_query_params_with_repeated_keys(client, query, tags, last):
    response = client.get(f"/query?{query}&blank=&other=1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tags"] == tags
    assert body["last"] == last
    assert body["keys"] == ["tag", "blank", "other"]
    assert body["missing"] == []
    assert body["blank"] == ""
    assert [tuple(pair) for pair in body["string"]] == [*(("tag", t) for t in tags), ("blank", ""), ("other", "1")]


@pytest.mark.parametrize(
    ("cookie_header", "expected"),
    [
        ("session=abc123", {"session": "abc123"}),
        ("a=1; b=two; c=", {"a": "1", "b": "two", "c": ""}),
        ('quoted="hello world"', {"quoted": "hello world"}),
        ("dup=first; dup=second", {"dup": "second"}),
    ],
)
def test_cookies(client, cookie_header, expected):
    response = client.get("/cookies", headers={"Cookie": cookie_header})
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_cookies_from_the_test_client(client):
    assert client.get("/cookies", cookies={"x": "1", "y": "2"}).json() == {"x": "1", "y": "2"}


def test_no_cookie_header_means_no_cookies(client):
    assert client.get("/cookies").json() == {}


def test_client_is_the_peer_address(client):
    status, content, local_port = raw_request(client, "GET", "/client", [])
    assert status == 200, content
    body = json.loads(content)
    assert body == {"host": "127.0.0.1", "port": local_port, "port_type": "int"}


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        ("text/plain", "hello, plain text ü".encode()),
        ("application/octet-stream", bytes(range(256))),
        ("application/x-www-form-urlencoded", b"a=1&b=2"),
        ("application/json", b'{"not": "parsed", "n": 1}'),
        ("application/json", b"{broken json"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_body_is_the_raw_bytes_whatever_the_content_type(client, method, content_type, payload):
    response = client.request(method, "/body", content=payload, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "bytes"
    assert bytes.fromhex(body["hex"]) == payload
    assert body["content_type"] == content_type
    assert body["again"] is True


def test_body_without_content_type_or_body(client):
    status, content, _ = raw_request(client, "POST", "/body", [], body=b"")
    assert status == 200, content
    body = json.loads(content)
    assert body["hex"] == ""
    assert body["content_type"] is None


def test_body_without_content_type_but_with_bytes(client):
    status, content, _ = raw_request(client, "POST", "/body", [], body=b"\x00\x01raw")
    assert status == 200, content
    assert bytes.fromhex(json.loads(content)["hex"]) == b"\x00\x01raw"


@pytest.mark.parametrize(
    ("payload", "decoded"),
    [
        ({"a": [1, 2, {"b": None}]}, {"a": [1, 2, {"b": None}]}),
        ([1, "two", 3.5], [1, "two", 3.5]),
        ("just a string", "just a string"),
        (12345678901234567890, 12345678901234567890),
    ],
)
def test_json_decodes_the_body(client, payload, decoded):
    response = client.post("/json", json=payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"decoded": decoded}


def test_json_reads_the_body_whatever_the_content_type(client):
    response = client.post("/json", content=b'{"k": true}', headers={"Content-Type": "text/plain"})
    assert response.json() == {"decoded": {"k": True}}


def test_request_parameter_alongside_typed_parameters(client):
    response = client.post("/mixed/corner", params={"limit": "5", "verbose": "true"}, json={"name": "nut", "price": 2})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "shop": "corner",
        "item": {"name": "nut", "price": 2.0},
        "limit": 5,
        "verbose": True,
        "raw": '{"name": "nut", "price": 2}',
        "json": {"name": "nut", "price": 2},
        "query": {"limit": "5", "verbose": "true"},
        "path_params": {"shop": "corner"},
    }


def test_typed_parameters_beside_a_request_are_still_validated(client):
    response = client.post("/mixed/corner", params={"limit": "many"}, json={"name": "nut"})
    assert response.status_code == 422
    locs = [tuple(error["loc"]) for error in response.json()["errors"]]
    assert ("query", "limit") in locs
    assert ("body", "price") in locs


@pytest.mark.parametrize(("params", "limit", "raw"), [({}, 10, None), ({"limit": "3"}, 3, "3")])
def test_request_parameter_in_a_sync_handler_beside_a_query_parameter(client, params, limit, raw):
    assert client.get("/mixed-sync", params=params).json() == {"limit": limit, "raw_limit": raw}


def test_request_app_is_the_app(client):
    assert client.get("/is-app").json() == {"is_app": True, "state_value": "the-app"}


def test_request_state_is_per_request(client):
    for _ in range(2):
        assert client.get("/per-request-state").json() == {"before": False, "after": True}


@pytest.mark.skipif(not hasattr(spikard, "Request"), reason="spikard does not export Request (yet)")
def test_request_is_exported_from_the_package():
    assert spikard.Request is Request

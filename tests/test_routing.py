"""Routing: methods, static segments over parameters, 404/405 problems, and routes
that cannot be told apart (a startup error naming both)."""

from __future__ import annotations

import pytest
from conftest import assert_problem

from spikard import Spikard
from spikard.testing import TestClient

app = Spikard()


@app.get("/items/{item_id}")
def item(item_id: str) -> dict[str, str]:
    return {"route": "param", "item_id": item_id}


@app.get("/items/latest")
def latest() -> dict[str, str]:
    return {"route": "latest"}


@app.get("/static-first/special")
def static_first() -> dict[str, str]:
    return {"route": "special"}


@app.get("/static-first/{name}")
def param_after(name: str) -> dict[str, str]:
    return {"route": "param", "name": name}


@app.get("/things/{thing_id:int}/parts/all")
def parts_all(thing_id: int) -> dict[str, object]:
    return {"route": "all", "thing_id": thing_id}


@app.get("/things/{thing_id:int}/parts/{part}")
def part(thing_id: int, part: str) -> dict[str, object]:
    return {"route": "part", "thing_id": thing_id, "part": part}


@app.get("/resource")
def resource_get() -> str:
    return "GET"


@app.post("/resource")
def resource_post() -> str:
    return "POST"


@app.put("/resource")
async def resource_put() -> str:
    return "PUT"


@app.patch("/resource")
def resource_patch() -> str:
    return "PATCH"


@app.delete("/resource")
async def resource_delete() -> str:
    return "DELETE"


@app.route("/multi", methods=["get", "POST"])
def multi() -> str:
    return "multi"


@app.get("/orders/{order_id}")
def order_get(order_id: str) -> dict[str, str]:
    return {"method": "GET", "id": order_id}


@app.delete("/orders/{oid}")
def order_delete(oid: str) -> dict[str, str]:
    return {"method": "DELETE", "id": oid}


@app.get("/files/{rest:path}")
def files(rest: str) -> str:
    return rest


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/items/latest", {"route": "latest"}),
        ("/items/7", {"route": "param", "item_id": "7"}),
        ("/items/latest2", {"route": "param", "item_id": "latest2"}),
        ("/static-first/special", {"route": "special"}),
        ("/static-first/other", {"route": "param", "name": "other"}),
        ("/things/3/parts/all", {"route": "all", "thing_id": 3}),
        ("/things/3/parts/wheel", {"route": "part", "thing_id": 3, "part": "wheel"}),
    ],
)
def test_static_segments_win_over_parameters_whatever_the_registration_order(client, path, body):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == body


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_each_method_decorator_reaches_its_own_handler(client, method):
    response = client.request(method, "/resource")
    assert response.status_code == 200, response.text
    assert response.json() == method


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_route_with_several_methods(client, method):
    assert client.request(method, "/multi").json() == "multi"


def test_methods_may_name_the_same_path_parameter_differently(client):
    assert client.get("/orders/5").json() == {"method": "GET", "id": "5"}
    assert client.delete("/orders/6").json() == {"method": "DELETE", "id": "6"}


def test_path_converter_captures_slashes(client):
    assert client.get("/files/a/b/c.txt").json() == "a/b/c.txt"


@pytest.mark.parametrize("path", ["/nope", "/items", "/items/1/extra", "/resource/1", "/"])
def test_unknown_path_is_a_404_problem(client, path):
    body = assert_problem(client.get(path), 404)
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/multi", {"GET", "POST", "HEAD", "OPTIONS"}),
        ("DELETE", "/items/latest", {"GET", "HEAD", "OPTIONS"}),
        ("POST", "/orders/1", {"GET", "DELETE", "HEAD", "OPTIONS"}),
        ("TRACE", "/resource", {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}),
    ],
)
def test_wrong_method_is_a_405_problem_with_an_allow_header(client, method, path, allowed):
    response = client.request(method, path)
    body = assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/multi", {"GET", "POST", "HEAD", "OPTIONS"}), ("/orders/1", {"GET", "DELETE", "HEAD", "OPTIONS"})],
)
def test_options_answers_with_the_allowed_methods(client, path, allowed):
    response = client.options(path)
    assert response.status_code == 204
    assert response.content == b""
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_head_is_answered_by_the_get_route_without_a_body(client):
    get = client.get("/multi")
    head = client.head("/multi")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))


# --- routes that cannot be told apart -------------------------------------------


def conflicting_app(first: tuple[str, str], second: tuple[str, str]) -> Spikard:
    app = Spikard()
    for method, path in (first, second):

        def endpoint() -> str:
            return "x"

        app.route(path, methods=[method])(endpoint)
    return app


CONFLICTS = [
    (("GET", "/items/{a}"), ("GET", "/items/{b:int}")),
    (("POST", "/users/{user_id:int}"), ("POST", "/users/{name:str}")),
    (("GET", "/files/{rest:path}"), ("POST", "/files/{name}")),
]


@pytest.mark.parametrize(("first", "second"), CONFLICTS)
def test_indistinguishable_routes_fail_at_start_naming_both(first, second):
    app = conflicting_app(first, second)
    with pytest.raises(ValueError) as raised, TestClient(app):
        pass
    message = str(raised.value)
    assert f"{first[0]} {first[1]}" in message
    assert f"{second[0]} {second[1]}" in message


def test_indistinguishable_routes_fail_on_the_first_request_without_with():
    client = TestClient(conflicting_app(*CONFLICTS[0]))
    try:
        with pytest.raises(ValueError, match=r"GET /items/\{a\}") as raised:
            client.get("/items/1")
        assert "GET /items/{b:int}" in str(raised.value)
    finally:
        client.close()


def test_same_path_different_methods_is_not_a_conflict():
    app = conflicting_app(("GET", "/items/{a}"), ("DELETE", "/items/{b:int}"))
    with TestClient(app) as client:
        assert client.get("/items/x").json() == "x"
        assert client.delete("/items/3").json() == "x"


def test_a_failed_start_leaves_the_process_able_to_serve_other_apps():
    with pytest.raises(ValueError), TestClient(conflicting_app(*CONFLICTS[0])):
        pass
    with TestClient(app) as client:
        assert client.get("/items/latest").json() == {"route": "latest"}

"""Routers: routes grouped under a prefix, included (and nested) with further
prefixes; bad prefixes and routes that clash are errors naming what is wrong."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from conftest import assert_problem

from spikard import Path, Spikard
from spikard.exceptions import HTTPException
from spikard.responses import JSONResponse
from spikard.routers import Router
from spikard.testing import TestClient


class Item(msgspec.Struct):
    name: str
    price: float = 0.0


class SecretItem(Item):
    password: str = "hidden"


class ItemMissing(Exception):
    pass


items = Router(prefix="/items", tags=["items"])


@items.get("")
def list_items() -> list[str]:
    return ["a", "b"]


@items.get("/{item_id:int}")
async def get_item(item_id: int) -> dict[str, int]:
    if item_id == 404:
        raise HTTPException(404, "no such item")
    if item_id == 0:
        raise ItemMissing()
    return {"item_id": item_id}


@items.post("", status_code=201)
async def create_item(item: Item) -> Item:
    return SecretItem(name=item.name, price=item.price)


@items.put("/{item_id:int}")
def replace_item(item_id: int, item: Item) -> dict[str, object]:
    return {"item_id": item_id, "name": item.name}


@items.patch("/{item_id:int}")
def patch_item(item_id: int) -> str:
    return f"patched {item_id}"


@items.delete("/{item_id:int}", status_code=204)
def delete_item(item_id: int) -> None:
    return None


@items.get("/model", response_model=Item)
def item_with_model() -> dict[str, object]:
    return {"name": "m", "price": 1.0, "password": "hidden"}


plain = Router()


@plain.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


users = Router(prefix="/users")


@users.get("/{user_id}")
def get_user(user_id: str) -> dict[str, str]:
    return {"user_id": user_id}


admin = Router(prefix="/admin")


@admin.get("/stats")
def stats() -> str:
    return "stats"


admin.include_router(users)
api = Router(prefix="/api")
api.include_router(admin, prefix="/v2")

root_router = Router(prefix="/root")


@root_router.get("/")
def root_index() -> str:
    return "root index"


app = Spikard()


@app.get("/")
def index() -> str:
    return "app index"


@app.exception_handler(ItemMissing)
def on_item_missing(request, exc: ItemMissing) -> JSONResponse:
    return JSONResponse({"missing": request.path}, status_code=404)


app.include_router(items)
app.include_router(items, prefix="/v1")
app.include_router(plain)
app.include_router(api)
app.include_router(root_router)


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("prefix", ["", "/v1"])
@pytest.mark.parametrize(
    ("method", "path", "options", "status", "body"),
    [
        ("GET", "/items", {}, 200, ["a", "b"]),
        ("GET", "/items/5", {}, 200, {"item_id": 5}),
        ("POST", "/items", {"json": {"name": "n", "price": 2}}, 201, {"name": "n", "price": 2.0}),
        ("PUT", "/items/6", {"json": {"name": "r"}}, 200, {"item_id": 6, "name": "r"}),
        ("PATCH", "/items/7", {}, 200, "patched 7"),
        ("GET", "/items/model", {}, 200, {"name": "m", "price": 1.0}),
    ],
)
def test_router_routes_under_their_prefixes(client, prefix, method, path, options, status, body):
    response = client.request(method, prefix + path, **options)
    assert response.status_code == status, response.text
    assert response.json() == body


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_router_delete_with_status_204(client, prefix):
    response = client.delete(f"{prefix}/items/3")
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", "app index"),
        ("/health", {"status": "ok"}),
        ("/api/v2/admin/stats", "stats"),
        ("/api/v2/admin/users/u1", {"user_id": "u1"}),
        ("/root/", "root index"),
    ],
)
def test_unprefixed_nested_and_root_routes(client, path, body):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == body


@pytest.mark.parametrize(
    "path",
    [
        "/items/",
        "/v1",
        "/v1/items/5/extra",
        "/stats",
        "/admin/stats",
        "/v2/admin/stats",
        "/api/admin/stats",
        "/users/u1",
        "/api/v2/users/u1",
        "/v1/health",
    ],
)
def test_paths_outside_the_prefixes_are_not_found(client, path):
    assert_problem(client.get(path), 404)


def test_router_method_not_allowed(client):
    response = client.request("POST", "/items/5")
    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_router_routes_validate_and_use_the_app_exception_handlers(client, prefix):
    errors = assert_problem(client.post(f"{prefix}/items", json={"price": 1}), 422)["errors"]
    assert [error["loc"] for error in errors] == [["body", "name"]]
    assert assert_problem(client.get(f"{prefix}/items/404"), 404)["detail"] == "no such item"
    response = client.get(f"{prefix}/items/0")
    assert response.status_code == 404
    assert response.json() == {"missing": f"{prefix}/items/0"}


def test_app_routes_list_the_full_paths():
    paths = {(route.method, route.path) for route in app.routes}
    assert {
        ("GET", "/items"),
        ("GET", "/items/{item_id:int}"),
        ("POST", "/items"),
        ("GET", "/v1/items"),
        ("DELETE", "/v1/items/{item_id:int}"),
        ("GET", "/health"),
        ("GET", "/api/v2/admin/stats"),
        ("GET", "/api/v2/admin/users/{user_id}"),
        ("GET", "/root/"),
    } <= paths
    assert len(app.routes) == len(paths)


def test_routes_added_to_a_router_after_it_was_included_are_not_served():
    router = Router(prefix="/late")
    other = Spikard()

    @router.get("/early")
    def early() -> str:
        return "early"

    other.include_router(router)

    @router.get("/later")
    def later() -> str:
        return "later"

    with TestClient(other) as client:
        assert client.get("/late/early").json() == "early"
        assert_problem(client.get("/late/later"), 404)


@pytest.mark.parametrize("prefix", ["/items/", "items", "/", "v1/", "/a/b/"])
def test_bad_router_prefix_is_a_value_error(prefix):
    with pytest.raises(ValueError, match="prefix") as raised:
        Router(prefix=prefix)
    assert repr(prefix) in str(raised.value)


@pytest.mark.parametrize("prefix", ["/v1/", "v1", "/"])
def test_bad_include_prefix_is_a_value_error(prefix):
    router = Router(prefix="/x")

    @router.get("/y")
    def endpoint() -> str:
        return "y"

    other = Spikard()
    with pytest.raises(ValueError, match="prefix"):
        other.include_router(router, prefix=prefix)
    assert other.routes == []


@pytest.mark.parametrize("prefix", ["", "/a", "/a/b", "/v1-beta"])
def test_good_prefixes_are_accepted(prefix):
    assert Router(prefix=prefix).prefix == prefix


def test_unservable_handler_fails_where_it_is_declared_on_the_app():
    app = Spikard()
    with pytest.raises(TypeError, match="only_args"):

        @app.get("/{x}")
        def only_args(*args: str) -> None:
            return None


def test_unservable_router_handler_fails_when_included_in_the_app():
    router = Router(prefix="/bad")

    @router.get("/{x}")
    def only_args(*args: str) -> None:
        return None

    with pytest.raises(TypeError, match="only_args"):
        Spikard().include_router(router)


def test_a_router_handler_may_read_a_path_parameter_of_an_outer_prefix():
    # As in FastAPI: the parameter exists once the router is included under the prefix.
    items = Router(prefix="/items")

    @items.get("/{item_id}")
    async def item(shop: Annotated[str, Path()], item_id: int) -> dict:
        return {"shop": shop, "item_id": item_id}

    shops = Router(prefix="/shops/{shop}")
    shops.include_router(items)
    app = Spikard()
    app.include_router(shops)
    with TestClient(app) as client:
        assert client.get("/shops/corner/items/3").json() == {"shop": "corner", "item_id": 3}


def clashing_routers(first_path: str, second_path: str) -> tuple[Spikard, Router, Router]:
    first = Router(prefix="/shared")
    second = Router(prefix="/shared")

    @first.get(first_path)
    def first_handler() -> str:
        return "first"

    @second.get(second_path)
    def second_handler() -> str:
        return "second"

    return Spikard(), first, second


@pytest.mark.parametrize(
    ("first_path", "second_path"),
    [("/dup", "/dup"), ("/{a}", "/{b:int}"), ("/{item_id:int}", "/{item_id:int}")],
)
def test_two_routers_with_the_same_route_fail_at_start_naming_both(first_path, second_path):
    app_, first, second = clashing_routers(first_path, second_path)
    # include_router accepts both: the clash is found when the app starts.
    app_.include_router(first)
    app_.include_router(second)
    assert len(app_.routes) == 2
    with pytest.raises(ValueError, match="cannot be told apart") as raised, TestClient(app_):
        pass
    message = str(raised.value)
    first_label, second_label = f"GET /shared{first_path}", f"GET /shared{second_path}"
    if first_label == second_label:
        assert message.count(first_label) == 2, message
    else:
        assert first_label in message and second_label in message, message


def test_same_router_included_twice_under_the_same_prefix_fails_at_start():
    router = Router(prefix="/twice")

    @router.post("/x")
    def endpoint() -> str:
        return "x"

    other = Spikard()
    other.include_router(router)
    other.include_router(router)
    client = TestClient(other)
    try:
        with pytest.raises(ValueError, match=r"POST /twice/x.*POST /twice/x"):
            client.post("/twice/x")
    finally:
        client.close()


def test_router_route_clashing_with_an_app_route_fails_at_start():
    router = Router(prefix="/things")

    @router.get("/{thing_id}")
    def from_router(thing_id: str) -> str:
        return thing_id

    other = Spikard()

    @other.get("/things/{name:str}")
    def from_app(name: str) -> str:
        return name

    other.include_router(router)
    with pytest.raises(ValueError) as raised, TestClient(other):
        pass
    assert "GET /things/{name:str}" in str(raised.value)
    assert "GET /things/{thing_id}" in str(raised.value)


def test_same_path_different_methods_in_two_routers_is_not_a_clash():
    reader, writer = Router(prefix="/docs"), Router(prefix="/docs")

    @reader.get("/{doc_id:int}")
    def read(doc_id: int) -> str:
        return f"read {doc_id}"

    @writer.put("/{doc_id:int}")
    def write(doc_id: int) -> str:
        return f"write {doc_id}"

    other = Spikard()
    other.include_router(reader)
    other.include_router(writer)
    with TestClient(other) as client:
        assert client.get("/docs/1").json() == "read 1"
        assert client.put("/docs/2").json() == "write 2"


def test_path_parameters_in_router_prefixes():
    shops = Router(prefix="/shops/{shop_id:int}")

    @shops.get("/info")
    def info(shop_id: int) -> dict[str, int]:
        return {"shop_id": shop_id}

    shop_items = Router(prefix="/items")

    @shop_items.get("/{item_id:int}")
    async def shop_item(shop_id: int, item_id: int) -> dict[str, int]:
        return {"shop_id": shop_id, "item_id": item_id}

    shops.include_router(shop_items)
    other = Spikard()
    other.include_router(shops, prefix="/v1")
    with TestClient(other) as client:
        assert client.get("/v1/shops/3/info").json() == {"shop_id": 3}
        assert client.get("/v1/shops/3/items/4").json() == {"shop_id": 3, "item_id": 4}
        errors = assert_problem(client.get("/v1/shops/x/items/4"), 422)["errors"]
        assert [error["loc"] for error in errors] == [["path", "shop_id"]]

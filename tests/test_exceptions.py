"""``HTTPException`` answers as a problem; ``@app.exception_handler`` answers for an
exception class (and its subclasses), an HTTP status code, or ``RequestValidationError``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest
from conftest import PROBLEM_JSON, assert_problem

from spikard import Spikard
from spikard.exceptions import HTTPException, RequestValidationError
from spikard.requests import Request
from spikard.responses import JSONResponse, PlainTextResponse
from spikard.testing import TestClient


class MyError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class MySubError(MyError):
    pass


class AsyncHandled(Exception):
    pass


class HandlerRaises(Exception):
    pass


class HandlerReturnsWrongType(Exception):
    pass


class Unhandled(Exception):
    pass


# --- HTTPException without handlers ------------------------------------------------

plain_app = Spikard()

DETAILS: dict[str, Any] = {
    "str": "Item not found",
    "dict": {"code": "E42", "fields": ["a", "b"], "n": None},
    "list": [1, {"two": 2}],
}


def raising(status: int, detail: Any, headers: dict[str, str] | None, mode: str):
    if mode == "sync":

        def endpoint() -> None:
            raise HTTPException(status, detail, headers=headers)

    elif mode == "async":

        async def endpoint() -> None:
            raise HTTPException(status, detail, headers=headers)

    else:

        async def endpoint() -> None:
            await asyncio.sleep(0)
            raise HTTPException(status, detail, headers=headers)

    return endpoint


MODES = ["sync", "async", "async-after-await"]
for _mode in MODES:
    for _kind, _detail in DETAILS.items():
        plain_app.get(f"/http/{_mode}/{_kind}")(raising(404, _detail, None, _mode))
    plain_app.get(f"/http/{_mode}/headers")(
        raising(401, "Not authenticated", {"WWW-Authenticate": "Bearer", "X-Reason": "expired"}, _mode)
    )
    plain_app.get(f"/http/{_mode}/default-detail")(raising(403, None, None, _mode))
    plain_app.get(f"/http/{_mode}/teapot")(raising(418, "short and stout", None, _mode))


@plain_app.post("/http/after-work", status_code=201)
async def after_work(n: int) -> dict[str, int]:
    await asyncio.sleep(0.01)
    if n > 3:
        raise HTTPException(409, {"n": n})
    return {"n": n}


@plain_app.get("/validated")
def validated(limit: int) -> int:
    return limit


@pytest.fixture(scope="module")
def plain_client():
    with TestClient(plain_app) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(DETAILS))
def test_http_exception_is_a_problem_with_its_detail(plain_client, mode, kind):
    response = plain_client.get(f"/http/{mode}/{kind}")
    body = assert_problem(response, 404)
    assert body["detail"] == DETAILS[kind]
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"


@pytest.mark.parametrize("mode", MODES)
def test_http_exception_headers_are_added(plain_client, mode):
    response = plain_client.get(f"/http/{mode}/headers")
    body = assert_problem(response, 401)
    assert body["detail"] == "Not authenticated"
    assert response.headers.get_list("www-authenticate") == ["Bearer"]
    assert response.headers["x-reason"] == "expired"
    assert response.headers.get_list("content-type") == [PROBLEM_JSON]


@pytest.mark.parametrize("mode", MODES)
def test_http_exception_without_detail_uses_the_status_phrase(plain_client, mode):
    body = assert_problem(plain_client.get(f"/http/{mode}/default-detail"), 403)
    assert body["detail"] == "Forbidden"
    assert body["title"] == "Forbidden"


@pytest.mark.parametrize("mode", MODES)
def test_http_exception_with_an_uncommon_status(plain_client, mode):
    body = assert_problem(plain_client.get(f"/http/{mode}/teapot"), 418)
    assert body["detail"] == "short and stout"


@pytest.mark.parametrize(("n", "status"), [(1, 201), (5, 409)])
def test_http_exception_overrides_the_route_status(plain_client, n, status):
    response = plain_client.post("/http/after-work", params={"n": n})
    assert response.status_code == status
    if status == 409:
        assert assert_problem(response, 409)["detail"] == {"n": 5}


def test_http_exception_is_not_logged_as_a_fault(plain_client, caplog):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        assert plain_client.get("/http/async-after-await/str").status_code == 404
    assert not [r for r in caplog.records if r.name == "spikard.error"]


def test_validation_error_without_a_handler_is_the_422_problem(plain_client):
    body = assert_problem(plain_client.get("/validated", params={"limit": "x"}), 422)
    assert [error["loc"] for error in body["errors"]] == [["query", "limit"]]


def test_http_exception_attributes():
    exc = HTTPException(404, {"k": 1}, headers={"X": "y"})
    assert (exc.status_code, exc.detail, exc.headers) == (404, {"k": 1}, {"X": "y"})
    assert HTTPException(400).detail == "Bad Request"
    assert HTTPException(400).headers is None


# --- exception handlers ---------------------------------------------------------------

app = Spikard()


@app.exception_handler(MyError)
def handle_my_error(request: Request, exc: MyError) -> JSONResponse:
    return JSONResponse(
        {"handled": type(exc).__name__, "code": exc.code, "method": request.method, "path": request.path},
        status_code=418,
        headers={"X-Handled-By": "sync"},
    )


@app.exception_handler(AsyncHandled)
async def handle_async(request: Request, exc: AsyncHandled) -> JSONResponse:
    await asyncio.sleep(0)
    return JSONResponse({"handled": "async", "message": str(exc), "query": dict(request.query_params)}, status_code=409)


@app.exception_handler(404)
async def handle_404(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"custom_404": exc.detail}, status_code=404)


@app.exception_handler(HTTPException)
def handle_http_exception(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(f"http {exc.status_code}: {exc.detail}", status_code=exc.status_code)


@app.exception_handler(HandlerRaises)
def handler_that_raises(request: Request, exc: HandlerRaises) -> JSONResponse:
    raise RuntimeError("the exception handler itself failed")


@app.exception_handler(HandlerReturnsWrongType)
async def handler_returns_wrong_type(request: Request, exc: HandlerReturnsWrongType) -> Any:
    return {"not": "a response"}


def raise_in(mode: str, make: Any):
    if mode == "sync":

        def endpoint(request: Request) -> None:
            raise make()

    elif mode == "async":

        async def endpoint() -> None:
            raise make()

    else:

        async def endpoint(q: str = "") -> None:
            await asyncio.sleep(0)
            raise make()

    return endpoint


EXCEPTIONS: dict[str, Any] = {
    "my": lambda: MyError("c1"),
    "my-sub": lambda: MySubError("c2"),
    "async-handled": lambda: AsyncHandled("async message"),
    "http-404": lambda: HTTPException(404, "no such thing"),
    "http-400": lambda: HTTPException(400, "bad"),
    "handler-raises": lambda: HandlerRaises(),
    "wrong-type": lambda: HandlerReturnsWrongType(),
    "unhandled": lambda: Unhandled("plain fault"),
}
for _mode in MODES:
    for _name, _make in EXCEPTIONS.items():
        app.get(f"/{_mode}/{_name}")(raise_in(_mode, _make))


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "class_name", "code"), [("my", "MyError", "c1"), ("my-sub", "MySubError", "c2")])
def test_sync_handler_for_a_class_and_its_subclasses(client, mode, name, class_name, code):
    response = client.get(f"/{mode}/{name}")
    assert response.status_code == 418, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-handled-by"] == "sync"
    assert response.json() == {"handled": class_name, "code": code, "method": "GET", "path": f"/{mode}/{name}"}


@pytest.mark.parametrize("mode", MODES)
def test_async_handler(client, mode):
    response = client.get(f"/{mode}/async-handled", params={"q": "v"})
    assert response.status_code == 409, response.text
    assert response.json() == {"handled": "async", "message": "async message", "query": {"q": "v"}}


@pytest.mark.parametrize("mode", MODES)
def test_status_code_handler_takes_precedence_over_the_class_handler(client, mode):
    response = client.get(f"/{mode}/http-404")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"custom_404": "no such thing"}


@pytest.mark.parametrize("mode", MODES)
def test_http_exception_class_handler_replaces_the_problem(client, mode):
    response = client.get(f"/{mode}/http-400")
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "http 400: bad"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["handler-raises", "wrong-type", "unhandled"])
def test_failing_or_missing_handler_is_a_500_and_the_server_keeps_serving(client, mode, name, caplog):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        for _ in range(2):
            response = client.get(f"/{mode}/{name}")
            body = assert_problem(response, 500)
            assert "Traceback" not in response.text
            assert "the exception handler itself failed" not in body["detail"]
    assert [r for r in caplog.records if r.name == "spikard.error"]
    assert client.get("/ok").json() == {"ok": True}


def test_handler_that_raises_is_logged_with_its_own_error(client, caplog):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        assert client.get("/sync/handler-raises").status_code == 500
    assert "the exception handler itself failed" in caplog.text


def test_exception_handlers_given_to_the_constructor():
    def handle(request: Request, exc: MyError) -> JSONResponse:
        return JSONResponse({"from": "constructor", "code": exc.code}, status_code=400)

    other = Spikard(exception_handlers={MyError: handle})

    @other.get("/raise")
    def endpoint() -> None:
        raise MySubError("k")

    with TestClient(other) as client:
        response = client.get("/raise")
    assert response.status_code == 400
    assert response.json() == {"from": "constructor", "code": "k"}


def test_exception_handler_rejects_what_is_not_an_exception_or_status():
    with pytest.raises(TypeError):
        Spikard().exception_handler(str)(lambda request, exc: None)


# --- catch-all handlers ---------------------------------------------------------------


def catch_all_app() -> Spikard:
    other = Spikard()

    @other.exception_handler(Exception)
    def catch_all(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"caught": type(exc).__name__}, status_code=500)

    @other.get("/fault")
    def fault() -> None:
        raise ValueError("x")

    @other.get("/missing")
    async def missing() -> None:
        raise HTTPException(404, "missing")

    @other.get("/validated")
    def validated(limit: int) -> int:
        return limit

    return other


def test_catch_all_handler_answers_unexpected_faults():
    with TestClient(catch_all_app()) as client:
        response = client.get("/fault")
    assert response.status_code == 500
    assert response.json() == {"caught": "ValueError"}


def test_catch_all_handler_leaves_http_exceptions_alone():
    with TestClient(catch_all_app()) as client:
        response = client.get("/missing")
    assert assert_problem(response, 404)["detail"] == "missing"


def test_catch_all_handler_leaves_validation_errors_alone():
    with TestClient(catch_all_app()) as client:
        response = client.get("/validated", params={"limit": "x"})
    assert_problem(response, 422)


# --- RequestValidationError handlers ------------------------------------------------------


class Item(msgspec.Struct):
    name: str
    price: float


class Checked(msgspec.Struct):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("value must not be negative")


def validation_app(is_async: bool) -> Spikard:
    other = Spikard()
    seen: list[RequestValidationError] = []
    other.state.seen = seen

    if is_async:

        @other.exception_handler(RequestValidationError)
        async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            await asyncio.sleep(0)
            seen.append(exc)
            return JSONResponse(
                {"errors": exc.errors(), "path": request.path, "method": request.method, "kind": "async"},
                status_code=400,
            )

    else:

        @other.exception_handler(RequestValidationError)
        def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            seen.append(exc)
            return JSONResponse(
                {"errors": exc.errors(), "path": request.path, "method": request.method, "kind": "sync"},
                status_code=400,
            )

    @other.get("/items")
    def list_items(limit: int, offset: int = 0) -> dict[str, int]:
        return {"limit": limit, "offset": offset}

    @other.post("/items/{shop_id:int}")
    async def create_item(shop_id: int, item: Item, request: Request) -> dict[str, Any]:
        return {"shop_id": shop_id, "name": item.name, "path_params": request.path_params}

    @other.get("/headers")
    def with_header(x_token: str | None = None) -> str | None:
        return x_token

    @other.post("/checked")
    def checked(body: Checked) -> int:
        return body.value

    return other


@pytest.fixture(scope="module", params=[False, True], ids=["sync-handler", "async-handler"])
def validation_client(request):
    app_ = validation_app(request.param)
    with TestClient(app_) as client:
        client.kind = "async" if request.param else "sync"
        yield client


@pytest.mark.parametrize(
    ("method", "path", "options", "locs"),
    [
        ("GET", "/items", {}, [["query", "limit"]]),
        ("GET", "/items", {"params": {"limit": "many"}}, [["query", "limit"]]),
        ("GET", "/items", {"params": {"limit": "1", "offset": "x"}}, [["query", "offset"]]),
        ("POST", "/items/1", {"json": {"name": "a"}}, [["body", "price"]]),
        ("POST", "/items/1", {"json": {"name": 5, "price": 1}}, [["body", "name"]]),
        ("POST", "/items/x", {"json": {"name": "a", "price": 1}}, [["path", "shop_id"]]),
    ],
)
def test_validation_handler_overrides_the_422(validation_client, method, path, options, locs):
    response = validation_client.request(method, path, **options)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [error["loc"] for error in body["errors"]] == locs
    for error in body["errors"]:
        assert {"loc", "msg", "type"} <= error.keys()
        assert isinstance(error["msg"], str) and error["msg"]
    assert body["path"] == path
    assert body["method"] == method
    assert body["kind"] == validation_client.kind


def test_validation_handler_receives_the_exception_object(validation_client):
    seen = validation_client.app.state.seen
    seen.clear()
    validation_client.get("/items", params={"limit": "x"})
    [exc] = seen
    assert isinstance(exc, RequestValidationError)
    [error] = exc.errors()
    assert error["loc"] == ["query", "limit"]
    assert error["type"] == "int_parsing"
    assert error["input"] == "x"


def test_valid_requests_do_not_reach_the_validation_handler(validation_client):
    response = validation_client.get("/items", params={"limit": "3"})
    assert response.status_code == 200
    assert response.json() == {"limit": 3, "offset": 0}
    response = validation_client.post("/items/7", json={"name": "a", "price": 1})
    assert response.json() == {"shop_id": 7, "name": "a", "path_params": {"shop_id": "7"}}


def test_validation_handler_also_gets_python_side_rejections(validation_client):
    response = validation_client.post("/checked", json={"value": -1})
    assert response.status_code == 400, response.text
    assert [error["loc"] for error in response.json()["errors"]] == [["body"]]


def test_validation_handler_request_has_the_path_params():
    other = Spikard()

    @other.exception_handler(RequestValidationError)
    def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"path_params": request.path_params}, status_code=400)

    @other.post("/shops/{shop}/items")
    def create(shop: str, item: Item) -> str:
        return shop

    with TestClient(other) as client:
        response = client.post("/shops/corner/items", json={"name": "a"})
    assert response.status_code == 400
    assert response.json() == {"path_params": {"shop": "corner"}}


def test_validation_handler_exception_carries_the_received_body():
    other = Spikard()

    @other.exception_handler(RequestValidationError)
    def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"body": exc.body}, status_code=400)

    @other.post("/items")
    def create(item: Item) -> str:
        return item.name

    with TestClient(other) as client:
        response = client.post("/items", json={"name": "a", "price": "free"})
    assert response.status_code == 400
    assert response.json() == {"body": {"name": "a", "price": "free"}}


def test_status_code_handler_also_answers_unmatched_paths(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"custom_404": "Not Found"}

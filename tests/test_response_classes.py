"""Response classes (JSON, plain text, HTML, redirects, the base ``Response``), their
headers and cookies, bodiless statuses, and the ``response: Response`` parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from spikard import Spikard
from spikard.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from spikard.testing import TestClient

app = Spikard()


# --- response classes -------------------------------------------------------------


@app.get("/json/dict")
def json_dict() -> JSONResponse:
    return JSONResponse({"a": 1, "b": [True, None]})


@app.get("/json/list-status")
async def json_list_status() -> JSONResponse:
    return JSONResponse([1, 2, 3], status_code=201)


@app.get("/json/str")
def json_str() -> JSONResponse:
    return JSONResponse("text is a JSON string here")


@app.get("/json/bytes-inside")
def json_bytes_inside() -> JSONResponse:
    return JSONResponse({"data": b"raw"})


@app.get("/json/none")
def json_none() -> JSONResponse:
    return JSONResponse(None)


@app.get("/plain")
def plain() -> PlainTextResponse:
    return PlainTextResponse("plain ü text")


@app.get("/plain/bytes")
def plain_bytes() -> PlainTextResponse:
    return PlainTextResponse(b"bytes as text")


@app.get("/html")
async def html() -> HTMLResponse:
    return HTMLResponse("<h1>Hello ü</h1>", status_code=201)


@app.get("/redirect/default")
def redirect_default() -> RedirectResponse:
    return RedirectResponse("/target")


@app.get("/redirect/absolute")
def redirect_absolute() -> RedirectResponse:
    return RedirectResponse("https://example.com/a/b?c=d#frag", status_code=301)


@app.get("/redirect/see-other")
async def redirect_see_other() -> RedirectResponse:
    return RedirectResponse("/after-post", status_code=303, headers={"X-Extra": "1"})


@app.get("/redirect/quoted")
def redirect_quoted() -> RedirectResponse:
    return RedirectResponse("/path with spaces/ü?q=a b")


@app.get("/target")
def target() -> str:
    return "target reached"


@app.get("/base/bytes")
def base_bytes() -> Response:
    return Response(b"\x00\xffbytes")


@app.get("/base/str")
def base_str() -> Response:
    return Response("some text")


@app.get("/base/media-type")
def base_media_type() -> Response:
    return Response("a,b\n1,2\n", media_type="text/csv")


@app.get("/base/empty")
def base_empty() -> Response:
    return Response()


# --- headers and cookies ------------------------------------------------------------


@app.get("/headers/given")
def headers_given() -> Response:
    return JSONResponse({"ok": True}, headers={"X-One": "1", "Cache-Control": "no-cache"})


@app.get("/headers/appended")
def headers_appended() -> Response:
    response = PlainTextResponse("repeated")
    response.headers.append("X-Repeat", "first")
    response.headers.append("x-repeat", "second")
    response.headers.append("X-REPEAT", "third")
    response.headers["X-Replaced"] = "old"
    response.headers["x-replaced"] = "new"
    return response


@app.get("/cookies/several")
def cookies_several() -> Response:
    response = JSONResponse({"cookies": 3})
    response.set_cookie("session", "abc123", max_age=3600, httponly=True, samesite="strict")
    response.set_cookie("theme", "dark", path="/app")
    response.set_cookie("tracking", "t", secure=True, samesite="none", domain="example.com")
    return response


@app.get("/cookies/delete")
def cookies_delete() -> Response:
    response = Response(status_code=204)
    response.delete_cookie("session")
    return response


@app.get("/cookies/expires")
def cookies_expires() -> Response:
    response = PlainTextResponse("x")
    response.set_cookie("dated", "v", expires=datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), samesite=None)
    return response


# --- bodiless statuses ----------------------------------------------------------------


@app.get("/status/{code:int}")
def with_status(code: int) -> Response:
    return Response("this body must not be sent", status_code=code, media_type="text/plain")


@app.get("/status-json/{code:int}")
async def json_with_status(code: int) -> Response:
    return JSONResponse({"not": "sent"}, status_code=code)


# --- the response parameter -----------------------------------------------------------


@app.get("/param/all")
def param_all(response: Response) -> dict[str, str]:
    response.status_code = 202
    response.headers["X-Handler"] = "set"
    response.set_cookie("from_param", "yes", httponly=True)
    return {"body": "json"}


@app.post("/param/keeps-route-status", status_code=201)
async def param_keeps_route_status(response: Response) -> dict[str, str]:
    response.headers["X-Only-Header"] = "h"
    response.set_cookie("c1", "1")
    response.set_cookie("c2", "2")
    return {"created": "yes"}


@app.get("/param/overrides-route-status", status_code=201)
async def param_overrides_route_status(response: Response) -> list[int]:
    response.status_code = 200
    return [1]


@app.get("/param/with-explicit-response")
def param_with_explicit_response(response: Response) -> Response:
    response.headers["X-From-Param"] = "p"
    response.set_cookie("p", "1")
    return PlainTextResponse("explicit", headers={"X-Own": "o"})


@app.get("/param/query")
def param_query(response: Response, n: int) -> dict[str, int]:
    response.headers["X-N"] = str(n)
    return {"n": n}


@app.get("/param/no-content")
def param_no_content(response: Response) -> dict[str, str]:
    response.status_code = 204
    response.headers["X-Still"] = "here"
    return {"dropped": "body"}


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def media_type(response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/json/dict", 200, {"a": 1, "b": [True, None]}),
        ("/json/list-status", 201, [1, 2, 3]),
        ("/json/str", 200, "text is a JSON string here"),
        ("/json/bytes-inside", 200, {"data": "raw"}),
        ("/json/none", 200, None),
    ],
)
def test_json_response(client, path, status, body):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers.get_list("content-type") == ["application/json"]
    assert response.json() == body


@pytest.mark.parametrize(
    ("path", "status", "content_type", "text"),
    [
        ("/plain", 200, "text/plain; charset=utf-8", "plain ü text"),
        ("/plain/bytes", 200, "text/plain; charset=utf-8", "bytes as text"),
        ("/html", 201, "text/html; charset=utf-8", "<h1>Hello ü</h1>"),
        ("/base/str", 200, "text/plain; charset=utf-8", "some text"),
        ("/base/media-type", 200, "text/csv; charset=utf-8", "a,b\n1,2\n"),
    ],
)
def test_text_responses(client, path, status, content_type, text):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers.get_list("content-type") == [content_type]
    assert response.content == text.encode()


def test_base_response_with_bytes(client):
    response = client.get("/base/bytes")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\xffbytes"


def test_base_response_without_content(client):
    response = client.get("/base/empty")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert "content-type" not in response.headers


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        ("/redirect/default", 307, "/target"),
        ("/redirect/absolute", 301, "https://example.com/a/b?c=d#frag"),
        ("/redirect/see-other", 303, "/after-post"),
        ("/redirect/quoted", 307, "/path%20with%20spaces/%C3%BC?q=a%20b"),
    ],
)
def test_redirect_response(client, path, status, location):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers.get_list("location") == [location]
    assert response.content == b""


def test_redirect_is_not_followed_and_keeps_extra_headers(client):
    response = client.get("/redirect/see-other")
    assert response.status_code == 303
    assert response.headers["x-extra"] == "1"
    assert "target reached" not in response.text


def test_headers_argument(client):
    response = client.get("/headers/given")
    assert response.headers["x-one"] == "1"
    assert response.headers["cache-control"] == "no-cache"
    assert response.json() == {"ok": True}


def test_appended_headers_repeat_and_set_headers_replace(client):
    response = client.get("/headers/appended")
    assert response.headers.get_list("x-repeat") == ["first", "second", "third"]
    assert response.headers.get_list("x-replaced") == ["new"]
    assert response.text == "repeated"


def cookie_attributes(header: str) -> tuple[str, dict[str, str | bool]]:
    """``name=value; Path=/; HttpOnly`` -> ``("name=value", {"path": "/", "httponly": True})``."""
    first, *rest = (part.strip() for part in header.split(";"))
    attributes: dict[str, str | bool] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        attributes[key.lower()] = value if sep else True
    return first, attributes


def test_several_cookies_make_several_set_cookie_headers(client):
    response = client.get("/cookies/several")
    assert response.json() == {"cookies": 3}
    cookies = dict(cookie_attributes(header) for header in response.headers.get_list("set-cookie"))
    assert set(cookies) == {"session=abc123", "theme=dark", "tracking=t"}
    assert cookies["session=abc123"] == {"httponly": True, "max-age": "3600", "path": "/", "samesite": "strict"}
    assert cookies["theme=dark"] == {"path": "/app", "samesite": "lax"}
    assert cookies["tracking=t"] == {"domain": "example.com", "path": "/", "secure": True, "samesite": "none"}


def test_delete_cookie_sends_an_expired_cookie(client):
    response = client.get("/cookies/delete")
    assert response.status_code == 204
    [header] = response.headers.get_list("set-cookie")
    first, attributes = cookie_attributes(header)
    assert first.split("=")[0] == "session"
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/"
    assert parsedate_to_datetime(str(attributes["expires"])) <= datetime.now(UTC)


def test_cookie_expires_date(client):
    [header] = client.get("/cookies/expires").headers.get_list("set-cookie")
    first, attributes = cookie_attributes(header)
    assert first == "dated=v"
    assert parsedate_to_datetime(str(attributes["expires"])) == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert "samesite" not in attributes


def test_invalid_samesite_is_refused():
    with pytest.raises(ValueError, match="samesite"):
        Response().set_cookie("k", "v", samesite="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["/status", "/status-json"])
@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses_send_no_body(client, prefix, code):
    response = client.get(f"{prefix}/{code}")
    assert response.status_code == code
    assert response.content == b""
    assert "content-type" not in response.headers


@pytest.mark.parametrize("code", [200, 201, 404])
def test_other_statuses_send_the_body(client, code):
    response = client.get(f"/status/{code}")
    assert response.status_code == code
    assert response.text == "this body must not be sent"


def test_response_parameter_sets_status_header_and_cookie(client):
    response = client.get("/param/all")
    assert response.status_code == 202
    assert response.headers["x-handler"] == "set"
    assert media_type(response) == "application/json"
    assert response.json() == {"body": "json"}
    [cookie] = response.headers.get_list("set-cookie")
    first, attributes = cookie_attributes(cookie)
    assert first == "from_param=yes"
    assert attributes["httponly"] is True


def test_response_parameter_without_status_keeps_the_route_status(client):
    response = client.post("/param/keeps-route-status")
    assert response.status_code == 201
    assert response.headers["x-only-header"] == "h"
    assert [cookie_attributes(c)[0] for c in response.headers.get_list("set-cookie")] == ["c1=1", "c2=2"]
    assert response.json() == {"created": "yes"}


def test_response_parameter_status_overrides_the_route_status(client):
    response = client.get("/param/overrides-route-status")
    assert response.status_code == 200
    assert response.json() == [1]


def test_response_parameter_with_an_explicit_response(client):
    response = client.get("/param/with-explicit-response")
    assert response.status_code == 200
    assert response.text == "explicit"
    assert response.headers["x-own"] == "o"
    assert response.headers["x-from-param"] == "p"
    assert [cookie_attributes(c)[0] for c in response.headers.get_list("set-cookie")] == ["p=1"]


@pytest.mark.parametrize("n", [1, 42])
def test_response_parameter_beside_a_query_parameter(client, n):
    response = client.get("/param/query", params={"n": n})
    assert response.json() == {"n": n}
    assert response.headers["x-n"] == str(n)


def test_response_parameter_does_not_leak_between_requests(client):
    first = client.get("/param/query", params={"n": 1})
    second = client.get("/param/query", params={"n": 2})
    assert first.headers.get_list("x-n") == ["1"]
    assert second.headers.get_list("x-n") == ["2"]


def test_response_parameter_with_status_204_sends_no_body(client):
    response = client.get("/param/no-content")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["x-still"] == "here"


@pytest.mark.parametrize(
    "path",
    ["/json/dict", "/plain", "/html", "/cookies/several", "/headers/appended", "/param/all", "/base/bytes"],
)
def test_head_on_a_get_route_sends_headers_without_a_body(client, path):
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert head.headers.get("content-type") == get.headers.get("content-type")
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers.get_list("set-cookie") == get.headers.get_list("set-cookie")

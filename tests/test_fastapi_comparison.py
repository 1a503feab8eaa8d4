"""The same app on FastAPI and on spikard, request by request: where FastAPI is the
reference, status and body must match. Validation errors are compared by where
they point (``loc``) and how many there are, since spikard answers them as
problem+json (README, "Coming from FastAPI")."""

import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any

import fastapi
import fastapi.testclient
import pydantic
import pytest

import spikard
from spikard.testing import TestClient


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Item(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1)
    price: float = pydantic.Field(gt=0)
    tags: list[str] = []


class PublicItem(pydantic.BaseModel):
    name: str


def define(app: Any, kit: Any) -> None:
    """Registers the same handlers on a FastAPI or a spikard app; ``kit`` is the
    module the markers and responses come from."""

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, q: str | None = None, limit: Annotated[int, kit.Query(ge=1, le=50)] = 10):
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.get("/tags")
    async def tags(tag: Annotated[list[str], kit.Query()] = []):  # noqa: B006 (FastAPI's own idiom)
        return {"tags": tag}

    @app.get("/header")
    async def header(
        user_agent: Annotated[str, kit.Header()] = "none", x_token: Annotated[str | None, kit.Header()] = None
    ):
        return {"ua": user_agent.split("/")[0], "token": x_token}

    @app.get("/cookie")
    async def cookie(session: Annotated[str | None, kit.Cookie()] = None):
        return {"session": session}

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.post("/public", response_model=PublicItem)
    async def public(item: Item):
        return item

    @app.get("/values")
    async def values():
        return {
            "when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),  # noqa: UP017
            "day": datetime.date(2024, 5, 6),
            "at": datetime.time(7, 8, 9),
            "ident": uuid.UUID(int=7),
            "amount": decimal.Decimal("1.25"),
            "color": Color.blue,
            "labels": {"only"},
            "raw": b"text",
            "nothing": None,
        }

    @app.get("/text")
    async def text():
        return "plain"

    @app.get("/missing")
    async def missing():
        raise kit.HTTPException(status_code=404, detail="No such thing")

    @app.get("/enum/{color}")
    async def color(color: Color):
        return {"color": color}

    @app.get("/sync")
    def sync_handler(n: int = 1):
        return {"double": n * 2}


def fastapi_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    define(app, fastapi)
    return app


def spikard_app() -> spikard.Spikard:
    app = spikard.Spikard()
    define(app, spikard)
    return app


@pytest.fixture(scope="module")
def clients():
    with TestClient(spikard_app()) as ours, fastapi.testclient.TestClient(fastapi_app()) as theirs:
        yield ours, theirs


SAME = [
    ("GET", "/items/5", {}),
    ("GET", "/items/5?q=x&limit=50", {}),
    ("GET", "/tags?tag=a&tag=b", {}),
    ("GET", "/tags", {}),
    ("GET", "/header", {"headers": {"x-token": "t", "user-agent": "probe/1"}}),
    ("GET", "/cookie", {"cookies": {"session": "abc"}}),
    ("POST", "/items", {"json": {"name": "a", "price": 2.5, "tags": ["x"]}}),
    ("POST", "/public", {"json": {"name": "a", "price": 2.5}}),
    ("GET", "/values", {}),
    ("GET", "/text", {}),
    ("GET", "/enum/red", {}),
    ("GET", "/sync?n=21", {}),
]


@pytest.mark.parametrize(("method", "path", "options"), SAME)
def test_answers_match_fastapi(clients, method, path, options):
    ours, theirs = clients
    cookies = options.pop("cookies", None) if "cookies" in options else None
    options = dict(options)
    mine = ours.request(method, path, cookies=cookies, **options)
    if cookies:
        theirs.cookies.update(cookies)
    try:
        reference = theirs.request(method, path, **options)
    finally:
        theirs.cookies.clear()
    assert (mine.status_code, mine.json()) == (reference.status_code, _utc_as_z(reference.json()))


def _utc_as_z(value: Any) -> Any:
    """FastAPI writes UTC as ``+00:00``, spikard (msgspec, and pydantic's own JSON)
    as ``Z``: the same ISO 8601 instant (README, "Coming from FastAPI")."""
    if isinstance(value, dict):
        return {key: _utc_as_z(item) for key, item in value.items()}
    if isinstance(value, str) and value.endswith("+00:00") and "T" in value:
        return value[: -len("+00:00")] + "Z"
    return value


INVALID = [
    ("GET", "/items/x", {}),
    ("GET", "/items/5?limit=0", {}),
    ("GET", "/items/5?limit=51", {}),
    ("GET", "/enum/green", {}),
    ("POST", "/items", {"json": {"price": 0}}),
    ("POST", "/items", {"json": {"name": "", "price": 1, "tags": ["a", 3]}}),
    ("POST", "/items", {"json": {"name": "a", "price": "cheap"}}),
]


@pytest.mark.parametrize(("method", "path", "options"), INVALID)
def test_validation_errors_point_where_fastapis_do(clients, method, path, options):
    ours, theirs = clients
    mine = ours.request(method, path, **options)
    reference = theirs.request(method, path, **options)
    assert mine.status_code == reference.status_code == 422
    assert sorted(map(tuple, (e["loc"] for e in mine.json()["errors"]))) == sorted(
        map(tuple, (e["loc"] for e in reference.json()["detail"]))
    )


def test_http_exception_keeps_status_and_detail(clients):
    ours, theirs = clients
    mine, reference = ours.get("/missing"), theirs.get("/missing")
    assert mine.status_code == reference.status_code == 404
    assert mine.json()["detail"] == reference.json()["detail"] == "No such thing"
    assert mine.headers["content-type"] == "application/problem+json"

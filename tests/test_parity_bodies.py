"""Bodies as FastAPI users write them: pydantic models (schema checked in Rust,
validators in Python), embedded and multiple body parameters, the wider set of
field types, and integers beyond 64 bits."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Literal, TypedDict

import msgspec
import pydantic
import pytest
from conftest import assert_problem

from spikard import Body, Cookie, Header, Query, Spikard
from spikard.testing import TestClient


class Tag(pydantic.BaseModel):
    label: str = pydantic.Field(min_length=1)


class Order(pydantic.BaseModel):
    sku: str = pydantic.Field(alias="SKU", pattern=r"^[A-Z]{3}-\d+$")
    quantity: int = pydantic.Field(gt=0, le=100)
    price: decimal.Decimal
    tags: list[Tag] = []
    note: str | None = None

    @pydantic.field_validator("note")
    @classmethod
    def no_shouting(cls, value: str | None) -> str | None:
        if value is not None and value.isupper():
            raise ValueError("the note must not shout")
        return value

    @pydantic.model_validator(mode="after")
    def bulk_is_cheap(self) -> Order:
        if self.quantity > 50 and self.price > 10:
            raise ValueError("bulk orders must cost at most 10")
        return self


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Everything(msgspec.Struct):
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    ident: uuid.UUID
    amount: decimal.Decimal
    color: Color
    mode: Literal["fast", "slow"]
    labels: set[str]
    big: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Named(TypedDict):
    name: str
    size: int


class Item(msgspec.Struct):
    name: str
    price: float


app = Spikard()


@app.post("/orders")
async def create_order(order: Order) -> Order:
    return order


@app.post("/everything")
async def everything(value: Everything) -> dict:
    return {
        "when": value.when,
        "day": value.day,
        "at": value.at,
        "ident": value.ident,
        "amount": value.amount,
        "color": value.color,
        "mode": value.mode,
        "labels": sorted(value.labels),
        "big": value.big,
        "types": [type(getattr(value, f)).__name__ for f in value.__struct_fields__],
    }


@app.post("/point")
async def point(p: Point) -> dict:
    return {"sum": p.x + p.y, "type": type(p).__name__}


@app.post("/named")
async def named(n: Named) -> dict:
    return {"name": n["name"], "size": n["size"]}


@app.post("/embedded")
async def embedded(item: Annotated[Item, Body(embed=True)]) -> dict:
    return {"name": item.name, "type": type(item).__name__}


@app.post("/two-bodies")
async def two_bodies(item: Item, point: Point, note: str = Body("none")) -> dict:
    return {"item": item.name, "x": point.x, "note": note}


@app.post("/maybe-order")
async def maybe_order(order: Order | None = None) -> dict:
    return {"sku": None if order is None else order.sku}


@app.post("/maybe-point")
async def maybe_point(p: Annotated[Point | None, Body()]) -> dict:
    return {"point": None if p is None else [p.x, p.y]}


@app.post("/maybe-number")
async def maybe_number(n: Annotated[float | None, Body()]) -> dict:
    return {"n": n}


@app.get("/types")
async def query_types(
    day: datetime.date,
    at: datetime.time,
    amount: decimal.Decimal,
    raw: bytes,
    tags: Annotated[set[int], Query()] = frozenset(),
    big: int = 0,
) -> dict:
    return {
        "day": day,
        "at": at,
        "amount": amount,
        "raw": raw,
        "tags": sorted(tags),
        "big": big,
        "types": [type(v).__name__ for v in (day, at, amount, raw, tags, big)],
    }


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


VALID_ORDER = {"SKU": "ABC-1", "quantity": 2, "price": "9.5", "tags": [{"label": "x"}]}


def test_a_pydantic_body_is_validated_and_converted(client):
    response = client.post("/orders", json=VALID_ORDER)
    assert response.status_code == 200, response.text
    assert response.json() == {"sku": "ABC-1", "quantity": 2, "price": "9.5", "tags": [{"label": "x"}], "note": None}


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"SKU": "abc"}, ["body", "SKU"], "string_pattern_mismatch"),
        ({"quantity": 0}, ["body", "quantity"], "greater_than"),
        ({"quantity": 101}, ["body", "quantity"], "less_than_equal"),
        ({"quantity": "2"}, ["body", "quantity"], "int_type"),
        ({"tags": [{"label": ""}]}, ["body", "tags", 0, "label"], "string_too_short"),
    ],
)
def test_pydantic_field_constraints_are_checked_before_python(client, change, loc, kind):
    body = assert_problem(client.post("/orders", json={**VALID_ORDER, **change}), 422)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(loc, kind)]


@pytest.mark.parametrize(
    ("path", "value", "answer"),
    [
        ("/maybe-order", VALID_ORDER, {"sku": "ABC-1"}),
        ("/maybe-order", None, {"sku": None}),
        ("/maybe-point", {"x": 1, "y": 2}, {"point": [1, 2]}),
        ("/maybe-point", None, {"point": None}),
        ("/maybe-number", 2, {"n": 2.0}),
        ("/maybe-number", None, {"n": None}),
    ],
)
def test_a_null_body_is_none_for_an_optional_type(client, path, value, answer):
    # As in FastAPI, which validates null against `X | None`.
    response = client.post(path, content=msgspec.json.encode(value), headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (200, answer)


def test_an_optional_body_that_is_not_null_is_checked_as_its_type(client):
    body = assert_problem(client.post("/maybe-order", json={**VALID_ORDER, "quantity": 0}), 422)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["body", "quantity"], "greater_than")]
    body = assert_problem(client.post("/maybe-point", json={"x": "a", "y": 2}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "x"]]
    # Missing altogether: the default, or missing when there is none.
    assert client.post("/maybe-order").json() == {"sku": None}
    body = assert_problem(client.post("/maybe-point"), 422)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["body"], "missing")]


def test_a_missing_aliased_field_is_located_by_its_alias(client):
    order = {k: v for k, v in VALID_ORDER.items() if k != "SKU"}
    body = assert_problem(client.post("/orders", json=order), 422)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["body", "SKU"], "missing")]


def test_pydantic_field_validators_run_in_python_and_answer_422(client):
    body = assert_problem(client.post("/orders", json={**VALID_ORDER, "note": "HEY"}), 422)
    (error,) = body["errors"]
    assert error["loc"] == ["body", "note"]
    assert "must not shout" in error["msg"]
    assert error["type"] == "value_error"


def test_pydantic_model_validators_run_in_python_and_answer_422(client):
    body = assert_problem(client.post("/orders", json={**VALID_ORDER, "quantity": 60, "price": 11}), 422)
    (error,) = body["errors"]
    assert error["loc"] == ["body"]
    assert "bulk orders" in error["msg"]


def test_field_types_arrive_as_their_python_types(client):
    sent = {
        "when": "2024-05-06T07:08:09+00:00",
        "day": "2024-05-06",
        "at": "07:08:09",
        "ident": "12345678-1234-5678-1234-567812345678",
        "amount": 1.25,
        "color": "blue",
        "mode": "slow",
        "labels": ["b", "a", "b"],
        "big": 2**70,
    }
    response = client.post("/everything", json=sent)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["types"] == ["datetime", "date", "time", "UUID", "Decimal", "Color", "str", "set", "int"]
    assert got["when"] == "2024-05-06T07:08:09Z"
    assert got["day"] == "2024-05-06"
    assert got["at"] == "07:08:09"
    assert got["ident"] == sent["ident"]
    assert got["amount"] == 1.25
    assert got["color"] == "blue"
    assert got["labels"] == ["a", "b"]
    assert got["big"] == 2**70  # exactly, not rounded through a float


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"day": "2024-13-01"}, ["body", "day"]),
        ({"ident": "not-a-uuid"}, ["body", "ident"]),
        ({"color": "green"}, ["body", "color"]),
        ({"mode": "medium"}, ["body", "mode"]),
        ({"big": 1.5}, ["body", "big"]),
    ],
)
def test_wrong_field_values_are_422_at_the_field(client, change, loc):
    sent = {
        "when": "2024-05-06T07:08:09Z",
        "day": "2024-05-06",
        "at": "07:08:09",
        "ident": "12345678-1234-5678-1234-567812345678",
        "amount": "1.25",
        "color": "red",
        "mode": "fast",
        "labels": [],
        "big": 1,
    }
    body = assert_problem(client.post("/everything", json={**sent, **change}), 422)
    assert [e["loc"] for e in body["errors"]] == [loc]


def test_dataclass_and_typeddict_bodies(client):
    assert client.post("/point", json={"x": 1, "y": 2}).json() == {"sum": 3, "type": "Point"}
    assert client.post("/named", json={"name": "a", "size": 3}).json() == {"name": "a", "size": 3}
    body = assert_problem(client.post("/point", json={"x": 1}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "y"]]


def test_an_embedded_body_reads_its_own_key(client):
    response = client.post("/embedded", json={"item": {"name": "a", "price": 1}})
    assert response.json() == {"name": "a", "type": "Item"}
    body = assert_problem(client.post("/embedded", json={"name": "a", "price": 1}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "item"]]


def test_several_body_parameters_each_read_their_key(client):
    sent = {"item": {"name": "a", "price": 1}, "point": {"x": 4, "y": 5}}
    assert client.post("/two-bodies", json=sent).json() == {"item": "a", "x": 4, "note": "none"}
    assert client.post("/two-bodies", json={**sent, "note": "hi"}).json()["note"] == "hi"
    body = assert_problem(client.post("/two-bodies", json={"item": {"name": "a"}, "point": {"x": 1, "y": 2}}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "item", "price"]]


def test_query_parameters_of_wider_types(client):
    params = [
        ("day", "2024-01-02"),
        ("at", "10:30:00"),
        ("amount", "2.50"),
        ("raw", "héllo"),
        ("tags", "3"),
        ("tags", "1"),
        ("tags", "3"),
        ("big", str(2**80)),
    ]
    response = client.get("/types", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "day": "2024-01-02",
        "at": "10:30:00",
        "amount": 2.5,
        "raw": "héllo",
        "tags": [1, 3],
        "big": 2**80,
        "types": ["date", "time", "Decimal", "bytes", "set", "int"],
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [("day", "yesterday"), ("at", "25:00"), ("amount", "lots"), ("big", "1e3")],
)
def test_wrong_query_values_of_wider_types_are_422(client, name, value):
    params = {"day": "2024-01-02", "at": "10:30:00", "amount": "1", "raw": "x", name: value}
    body = assert_problem(client.get("/types", params=params), 422)
    assert [e["loc"] for e in body["errors"]] == [["query", name]]


class Meeting(pydantic.BaseModel):
    starts: datetime.datetime
    at: datetime.time


class Slot(msgspec.Struct):
    starts: datetime.datetime
    at: datetime.time


meetings = Spikard()


@meetings.post("/pydantic")
async def pydantic_meeting(meeting: Meeting) -> dict:
    return {"starts": meeting.starts, "at": meeting.at, "aware": meeting.starts.tzinfo is not None}


@meetings.post("/msgspec")
async def msgspec_meeting(slot: Slot) -> dict:
    return {"starts": slot.starts, "at": slot.at, "aware": slot.starts.tzinfo is not None}


@pytest.mark.parametrize(
    ("kind", "starts", "at", "aware"),
    [
        ("pydantic", "2024-05-06T07:08:09", "07:08:09", False),
        ("msgspec", "2024-05-06T07:08:09", "07:08:09", False),
        ("pydantic", "2024-05-06T07:08:09+02:00", "07:08", True),  # pydantic takes a time without seconds
        ("msgspec", "2024-05-06T07:08:09+02:00", "07:08:00", True),
        ("pydantic", "2024-05-06T07:08:09Z", "07:08:09.250", True),
        ("msgspec", "2024-05-06T07:08:09Z", "07:08:09.250", True),
    ],
)
def test_local_and_aware_datetimes_and_times_are_accepted(kind, starts, at, aware):
    with TestClient(meetings) as client:
        response = client.post(f"/{kind}", json={"starts": starts, "at": at})
    assert response.status_code == 200, response.text
    assert response.json()["aware"] is aware


@pytest.mark.parametrize("kind", ["pydantic", "msgspec"])
@pytest.mark.parametrize(
    ("starts", "at", "field"),
    [("2023-02-29T10:00:00", "10:00:00", "starts"), ("2024-05-06T07:08:09", "25:00:00", "at")],
)
def test_impossible_datetimes_are_422_at_the_field(kind, starts, at, field):
    with TestClient(meetings) as client:
        response = client.post(f"/{kind}", json={"starts": starts, "at": at})
    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == [["body", field]]


sources = Spikard()


@sources.get("/days/{day}/{amount}")
async def typed_path(day: datetime.date, amount: decimal.Decimal) -> dict:
    return {"day": day, "amount": amount, "types": [type(day).__name__, type(amount).__name__]}


@sources.get("/typed-headers")
async def typed_headers(
    x_when: Annotated[datetime.datetime, Header()],
    x_ids: Annotated[list[uuid.UUID], Header()] = [],  # noqa: B006 (FastAPI's own idiom)
    session: Annotated[uuid.UUID | None, Cookie()] = None,
    color: Annotated[Color, Cookie()] = Color.red,
) -> dict:
    return {"when": x_when, "ids": x_ids, "session": session, "color": color}


def test_wider_types_in_path_header_and_cookie():
    ident = "12345678-1234-5678-1234-567812345678"
    with TestClient(sources) as client:
        assert client.get("/days/2024-02-29/1.50").json() == {
            "day": "2024-02-29",
            "amount": 1.5,
            "types": ["date", "Decimal"],
        }
        body = assert_problem(client.get("/days/2023-02-29/1.50"), 422)
        assert [e["loc"] for e in body["errors"]] == [["path", "day"]]
        response = client.get(
            "/typed-headers",
            headers={"x-when": "2024-05-06T07:08:09Z", "x-ids": ident},
            cookies={"session": ident, "color": "blue"},
        )
        assert response.json() == {"when": "2024-05-06T07:08:09Z", "ids": [ident], "session": ident, "color": "blue"}
        body = assert_problem(client.get("/typed-headers", cookies={"session": "nope"}), 422)
        assert sorted(e["loc"] for e in body["errors"]) == [["cookie", "session"], ["header", "x-when"]]

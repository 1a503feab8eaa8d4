"""Response models (``-> Item``, ``response_model=``): undeclared fields are dropped,
an unconvertible result is a 500; and the JSON output rules FastAPI users expect."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import uuid
from typing import Any

import msgspec
import pytest
from conftest import assert_problem

from spikard import Spikard
from spikard.responses import JSONResponse, Response
from spikard.testing import TestClient

SECRET = "hunter2-secret-value"


class Item(msgspec.Struct):
    name: str
    price: float = 0.0


class SecretItem(Item):
    password: str = SECRET


@dataclasses.dataclass
class DataItem:
    name: str
    price: float = 0.0


@dataclasses.dataclass
class SecretDataItem(DataItem):
    password: str = SECRET


class Order(msgspec.Struct):
    item: Item
    extras: list[Item] = []


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Blob(msgspec.Struct):
    data: bytes
    label: str


@dataclasses.dataclass
class DataBlob:
    data: bytes


class Name(str):
    """A str subclass."""


app = Spikard()

# --- response models --------------------------------------------------------------


@app.get("/struct/dict")
def struct_from_dict() -> Item:
    return {"name": "a", "price": 1.5, "password": SECRET}  # type: ignore[return-value]


@app.get("/struct/subclass")
async def struct_from_subclass() -> Item:
    return SecretItem(name="a", price=1.5)


@app.get("/struct/exact")
def struct_exact() -> Item:
    return Item(name="a", price=1.5)


@app.get("/dataclass/dict")
async def dataclass_from_dict() -> DataItem:
    return {"name": "a", "price": 1.5, "password": SECRET}  # type: ignore[return-value]


@app.get("/dataclass/subclass")
def dataclass_from_subclass() -> DataItem:
    return SecretDataItem(name="a", price=1.5)


@app.get("/struct/from-dataclass")
def struct_from_dataclass() -> Item:
    return SecretDataItem(name="a", price=1.5)  # type: ignore[return-value]


@app.get("/override/annotation-dict", response_model=Item)
def override_dict() -> dict[str, Any]:
    return {"name": "a", "price": 1.5, "password": SECRET}


@app.get("/override/annotation-subclass", response_model=Item)
async def override_subclass() -> SecretItem:
    return SecretItem(name="a", price=1.5)


@app.get("/override/none", response_model=None)
def override_none() -> Item:
    return {"name": "a", "password": "sent as returned"}  # type: ignore[return-value]


@app.post("/override/status", response_model=DataItem, status_code=201)
def override_with_status() -> Any:
    return {"name": "a", "price": 1.5, "password": SECRET}


@app.get("/list")
def list_of_items() -> list[Item]:
    return [{"name": "a", "password": SECRET}, SecretItem(name="b", price=2.0), Item(name="c")]  # type: ignore[list-item]


@app.get("/list/async-empty")
async def empty_list() -> list[Item]:
    return []


@app.get("/dict-of-models")
def dict_of_models() -> dict[str, Item]:
    return {"k": {"name": "a", "password": SECRET}}  # type: ignore[dict-item]


@app.get("/dataclass/dict-with-defaults")
def dataclass_dict_with_defaults() -> DataItem:
    return {"name": "a", "password": SECRET}  # type: ignore[return-value]


@app.get("/dataclass/list-with-defaults")
async def dataclass_list_with_defaults() -> list[DataItem]:
    return [{"name": "a"}, {"name": "b", "price": 2.0}]  # type: ignore[list-item]


@app.get("/optional")
def optional_model(empty: bool = False) -> Item | None:
    return None if empty else {"name": "a", "password": SECRET}  # type: ignore[return-value]


@app.get("/nested/dict")
def nested_from_dict() -> Order:
    return {"item": {"name": "a", "password": SECRET}, "extras": [{"name": "b", "password": SECRET}]}  # type: ignore[return-value]


@app.get("/nested/exact-outer")
def nested_exact_outer() -> Order:
    return Order(item=SecretItem(name="a"), extras=[SecretItem(name="b")])


@app.get("/bad/missing-field")
def missing_field() -> Item:
    return {"price": 1.0, "password": SECRET}  # type: ignore[return-value]


@app.get("/bad/wrong-type")
async def wrong_type() -> Item:
    return {"name": SECRET, "price": "not a number"}  # type: ignore[return-value]


@app.get("/bad/list-item")
def bad_list_item() -> list[Item]:
    return [{"name": "fine"}, {"price": 2}]  # type: ignore[list-item]


@app.get("/bypass/json-response")
def bypass_json_response() -> Item:
    return JSONResponse({"name": "a", "password": "kept"}, status_code=202)  # type: ignore[return-value]


@app.get("/bypass/plain")
async def bypass_plain() -> Item:
    return Response("not even JSON", status_code=200)  # type: ignore[return-value]


@app.get("/bypass/response-model")
def bypass_with_response_model() -> Any:
    return JSONResponse({"only": "this"})


app.get("/bypass/decorator-model", response_model=Item)(bypass_with_response_model)


# --- JSON output rules --------------------------------------------------------------

VALUES: dict[str, tuple[Any, Any]] = {
    # name: (returned value, expected JSON)
    "datetime-naive": (datetime.datetime(2024, 1, 2, 3, 4, 5, 678000), "2024-01-02T03:04:05.678000"),
    "date": (datetime.date(2024, 2, 29), "2024-02-29"),
    "time": (datetime.time(13, 14, 15), "13:14:15"),
    "uuid": (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    "decimal": (decimal.Decimal("12.50"), 12.5),
    "decimal-int": (decimal.Decimal("7"), 7),
    "enum": (Color.RED, "red"),
    "int-enum": (Level.HIGH, 3),
    "set": ({3}, [3]),
    "frozenset": (frozenset({"x"}), ["x"]),
    "bytes": (b"hello bytes", "hello bytes"),
    "bytes-utf8": ("grüße".encode(), "grüße"),
    "bytearray": (bytearray(b"ba"), "ba"),
    "str": ("a bare string", "a bare string"),
    "bytes-in-struct": (Blob(data=b"in struct", label="l"), {"data": "in struct", "label": "l"}),
    "bytes-in-dataclass": (DataBlob(data=b"in dataclass"), {"data": "in dataclass"}),
    "bytes-nested": (
        {"outer": [b"one", {"inner": b"two", "n": 1}], "list": [[b"three"]]},
        {"outer": ["one", {"inner": "two", "n": 1}], "list": [["three"]]},
    ),
    "bytes-struct-in-list": ([Blob(data=b"a", label="x")], [{"data": "a", "label": "x"}]),
    "mixed": (
        {"when": datetime.date(2020, 1, 1), "id": uuid.UUID(int=1), "tags": {"t"}, "raw": b"r", "c": Color.RED},
        {"when": "2020-01-01", "id": "00000000-0000-0000-0000-000000000001", "tags": ["t"], "raw": "r", "c": "red"},
    ),
}


def make_value_endpoint(value: Any, is_async: bool):
    if is_async:

        async def endpoint():
            return value

    else:

        def endpoint():
            return value

    return endpoint


for _name, (_value, _) in VALUES.items():
    app.get(f"/value/sync/{_name}")(make_value_endpoint(_value, False))
    app.get(f"/value/async/{_name}")(make_value_endpoint(_value, True))


@app.get("/value/aware-datetime")
def aware_datetime():
    offset = datetime.timezone(datetime.timedelta(hours=2))
    return {
        "utc": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "plus2": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=offset),
    }


@app.get("/value/tuple-with-bytes")
def tuple_with_bytes():
    return {"pair": (b"abc", 1)}


@app.get("/value/str-subclass")
def str_subclass():
    return {"name": Name("plain")}


@app.get("/model/bytes-field")
def model_bytes_field() -> Blob:
    return {"data": b"through the model", "label": "m", "extra": 1}  # type: ignore[return-value]


@app.get("/model/str")
def model_str() -> str:
    return "declared str"


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def media_type(response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/struct/dict", {"name": "a", "price": 1.5}),
        ("/struct/subclass", {"name": "a", "price": 1.5}),
        ("/struct/exact", {"name": "a", "price": 1.5}),
        ("/dataclass/dict", {"name": "a", "price": 1.5}),
        ("/dataclass/subclass", {"name": "a", "price": 1.5}),
        ("/struct/from-dataclass", {"name": "a", "price": 1.5}),
        ("/override/annotation-dict", {"name": "a", "price": 1.5}),
        ("/override/annotation-subclass", {"name": "a", "price": 1.5}),
        ("/list", [{"name": "a", "price": 0.0}, {"name": "b", "price": 2.0}, {"name": "c", "price": 0.0}]),
        ("/list/async-empty", []),
        ("/dict-of-models", {"k": {"name": "a", "price": 0.0}}),
        ("/optional", {"name": "a", "price": 0.0}),
        ("/optional?empty=true", None),
        ("/nested/dict", {"item": {"name": "a", "price": 0.0}, "extras": [{"name": "b", "price": 0.0}]}),
    ],
)
def test_response_model_drops_undeclared_fields(client, path, body):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    assert response.json() == body
    assert SECRET not in response.text


def test_response_model_drops_undeclared_fields_of_nested_subclass_instances(client):
    response = client.get("/nested/exact-outer")
    assert response.status_code == 200
    assert response.json() == {"item": {"name": "a", "price": 0.0}, "extras": [{"name": "b", "price": 0.0}]}
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/dataclass/dict-with-defaults", {"name": "a", "price": 0.0}),
        ("/dataclass/list-with-defaults", [{"name": "a", "price": 0.0}, {"name": "b", "price": 2.0}]),
    ],
)
def test_dataclass_model_sends_defaulted_fields(client, path, body):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert response.json() == body


def test_response_model_none_sends_the_result_as_returned(client):
    assert client.get("/override/none").json() == {"name": "a", "password": "sent as returned"}


def test_response_model_with_a_route_status(client):
    response = client.post("/override/status")
    assert response.status_code == 201
    assert response.json() == {"name": "a", "price": 1.5}


@pytest.mark.parametrize("path", ["/bad/missing-field", "/bad/wrong-type", "/bad/list-item"])
def test_unconvertible_result_is_a_500_without_internals(client, path, caplog):
    with caplog.at_level(logging.ERROR, logger="spikard.error"):
        response = client.get(path)
    body = assert_problem(response, 500)
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert SECRET not in response.text
    assert "msgspec" not in body["detail"]
    records = [r for r in caplog.records if r.name == "spikard.error"]
    assert len(records) == 1
    assert path.split("?")[0] in records[0].getMessage()
    assert records[0].exc_info is not None


def test_server_keeps_serving_after_an_unconvertible_result(client, caplog):
    with caplog.at_level(logging.CRITICAL + 1, logger="spikard.error"):
        assert client.get("/bad/missing-field").status_code == 500
    assert client.get("/struct/exact").json() == {"name": "a", "price": 1.5}


@pytest.mark.parametrize(
    ("path", "status", "content_type", "content"),
    [
        ("/bypass/json-response", 202, "application/json", b'{"name":"a","password":"kept"}'),
        ("/bypass/plain", 200, "text/plain", b"not even JSON"),
        ("/bypass/response-model", 200, "application/json", b'{"only":"this"}'),
        ("/bypass/decorator-model", 200, "application/json", b'{"only":"this"}'),
    ],
)
def test_returning_a_response_bypasses_the_model(client, path, status, content_type, content):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert media_type(response) == content_type
    assert response.content == content


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("name", list(VALUES))
def test_json_output_rules(client, kind, name):
    response = client.get(f"/value/{kind}/{name}")
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    expected = VALUES[name][1]
    assert response.json() == expected
    assert type(response.json()) is type(expected)


def test_decimal_is_a_json_number_not_a_string(client):
    raw = client.get("/value/sync/decimal").content
    assert not raw.startswith(b'"')
    assert json.loads(raw, parse_float=decimal.Decimal) == decimal.Decimal("12.5")


def test_bare_string_is_a_json_string(client):
    response = client.get("/value/sync/str")
    assert response.content == b'"a bare string"'
    assert client.get("/model/str").content == b'"declared str"'


def test_aware_datetimes_are_iso_8601_with_their_offset(client):
    body = client.get("/value/aware-datetime").json()
    utc = datetime.datetime.fromisoformat(body["utc"])
    plus2 = datetime.datetime.fromisoformat(body["plus2"])
    assert utc == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert utc.utcoffset() == datetime.timedelta(0)
    assert plus2.utcoffset() == datetime.timedelta(hours=2)
    assert body["plus2"].startswith("2024-01-02T03:04:05")


def test_bytes_field_through_a_response_model(client):
    response = client.get("/model/bytes-field")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": "through the model", "label": "m"}


def test_bytes_inside_a_tuple_are_text(client):
    assert client.get("/value/tuple-with-bytes").json() == {"pair": ["abc", 1]}


def test_str_subclass_is_a_json_string(client, caplog):
    with caplog.at_level(logging.CRITICAL + 1, logger="spikard.error"):
        response = client.get("/value/str-subclass")
    assert response.status_code == 200
    assert response.json() == {"name": "plain"}

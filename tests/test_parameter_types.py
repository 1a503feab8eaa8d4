"""Parameter types beyond the JSON scalars: enums, literals, UUIDs, dates and times,
lists of them — converted to the annotated type, or a 422 naming the parameter."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Literal

import pytest
from conftest import errors_of

from spikard import Spikard
from spikard.testing import TestClient


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Level(enum.IntEnum):
    low = 1
    high = 2


app = Spikard()


@app.get("/enum")
async def by_enum(color: Color) -> dict[str, object]:
    return {"type": type(color).__name__, "value": color.value}


@app.get("/int-enum")
async def by_int_enum(level: Level = Level.low) -> dict[str, object]:
    return {"type": type(level).__name__, "value": int(level)}


@app.get("/literal")
async def by_literal(mode: Literal["fast", "safe"], n: Literal[1, 2] = 1) -> dict[str, object]:
    return {"mode": mode, "n": n, "n_type": type(n).__name__}


@app.get("/when")
async def by_datetime(when: datetime.datetime, day: datetime.date | None = None) -> dict[str, object]:
    return {"when": when.isoformat(), "day": day.isoformat() if day else None}


@app.get("/ids")
async def by_uuid_list(ids: list[uuid.UUID]) -> dict[str, object]:
    return {"types": sorted({type(i).__name__ for i in ids}), "count": len(ids)}


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def test_enum_parameter_arrives_as_the_enum(client):
    assert client.get("/enum?color=blue").json() == {"type": "Color", "value": "blue"}


def test_enum_parameter_rejects_other_values(client):
    assert errors_of(client.get("/enum?color=green")) == [(("query", "color"), "enum")]


def test_int_enum_is_coerced_from_text_and_has_a_default(client):
    assert client.get("/int-enum?level=2").json() == {"type": "Level", "value": 2}
    assert client.get("/int-enum").json() == {"type": "Level", "value": 1}
    assert errors_of(client.get("/int-enum?level=3")) == [(("query", "level"), "enum")]


def test_literal_parameters(client):
    assert client.get("/literal?mode=safe&n=2").json() == {"mode": "safe", "n": 2, "n_type": "int"}
    assert errors_of(client.get("/literal?mode=slow")) == [(("query", "mode"), "enum")]
    assert errors_of(client.get("/literal?mode=fast&n=3")) == [(("query", "n"), "enum")]


def test_datetime_and_date_are_parsed(client):
    body = client.get("/when", params={"when": "2026-11-25T10:30:00+00:00", "day": "2026-11-24"}).json()
    assert body == {"when": "2026-11-25T10:30:00+00:00", "day": "2026-11-24"}


def test_a_value_the_annotated_type_refuses_is_a_422_at_the_parameter(client):
    # A string passes the JSON Schema; converting it to a datetime fails.
    response = client.get("/when?when=not-a-time")
    assert errors_of(response) == [(("query", "when"), "value_error")]


def test_list_of_uuids_from_repeated_keys(client):
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    assert client.get("/ids", params=[("ids", i) for i in ids]).json() == {"types": ["UUID"], "count": 2}
    response = client.get("/ids", params=[("ids", ids[0]), ("ids", "nope")])
    assert errors_of(response) == [(("query", "ids", 1), "uuid_parsing")]

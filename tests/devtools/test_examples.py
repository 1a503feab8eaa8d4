"""The values ``spikard profile`` synthesises are valid: checked with the
``jsonschema`` validator, and by msgspec and pydantic themselves for their models."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated, Literal

import jsonschema
import msgspec
import pydantic
import pytest

from spikard_devtools._examples import Unsatisfiable, example

SCHEMAS = [
    {"type": "integer", "minimum": 1, "maximum": 100},
    {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
    {"type": "integer", "minimum": -20, "maximum": -10},
    {"type": "integer", "multipleOf": 7, "minimum": 10},
    {"type": "number", "minimum": 0, "maximum": 0.5},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "number", "minimum": 100},
    {"type": "number", "multipleOf": 0.25, "minimum": 0.3},
    {"type": "string", "minLength": 12},
    {"type": "string", "maxLength": 2},
    {"type": "string", "pattern": "^[A-Z]+$", "minLength": 3},
    {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "contentEncoding": "base64"},
    {"type": "string", "enum": ["red", "green"]},
    {"const": 3},
    {"type": ["null", "boolean"]},
    {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 4}]},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
    {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 5},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["name"],
            }
        },
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_the_example_is_valid_against_its_schema(schema):
    jsonschema.validate(example(schema), schema)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(msgspec.Struct):
    street: Annotated[str, msgspec.Meta(min_length=5)]
    postcode: Annotated[str, msgspec.Meta(pattern="^[0-9]+$", max_length=6)]


class Customer(msgspec.Struct):
    id: uuid.UUID
    name: str
    age: Annotated[int, msgspec.Meta(ge=18, le=130)]
    colour: Colour
    addresses: list[Address]
    joined: datetime.date
    kind: Literal["person", "company"] = "person"
    nickname: str | None = None


class PydanticItem(pydantic.BaseModel):
    title: str = pydantic.Field(min_length=4)
    score: float = pydantic.Field(gt=0, le=1)
    due: datetime.date
    labels: dict[str, int] = {}
    parent: PydanticItem | None = None


def test_a_msgspec_model_accepts_its_example():
    schema = msgspec.json.schema(Customer)
    value = example(schema)
    msgspec.convert(value, Customer)
    jsonschema.validate(value, schema)


def test_a_pydantic_model_accepts_its_example():
    schema = PydanticItem.model_json_schema()
    value = example(schema)
    PydanticItem.model_validate(value)
    jsonschema.validate(value, schema)


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "integer", "minimum": 3, "maximum": 2}, "no integer"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength"),
        ({"type": "string", "pattern": "^(?=x)y$"}, "pattern"),
        ({"enum": []}, "enum"),
        # Pydantic and the runtime read Rust's regex syntax; Python's re does not.
        ({"type": "string", "pattern": "^\\p{Lu}\\p{Ll}+$"}, "not one Python's re reads"),
        ({"$ref": "#/$defs/Missing"}, "not defined"),
    ],
)
def test_an_unsatisfiable_schema_says_which_keyword(schema, keyword):
    with pytest.raises(Unsatisfiable, match=keyword):
        example(schema)

"""Path, query, header and cookie parameters: coercion from text, defaults,
constraints, and the 422 problems that name every failing field."""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from conftest import errors_of

from spikard import Cookie, Header, Query, Spikard
from spikard.testing import TestClient

app = Spikard()


def typed(value: object) -> dict[str, object]:
    """The value as JSON can carry it, and its Python type's name."""
    shown = value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
    return {"value": shown, "type": type(value).__name__}


# --- path -----------------------------------------------------------------------


@app.get("/items/{item_id}")
def item_by_annotation(item_id: int) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/int/{item_id:int}")
def conv_int(item_id: int) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/float/{item_id:float}")
def conv_float(item_id: float) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/str/{item_id:str}")
def conv_str(item_id: str) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/uuid/{item_id:uuid}")
def conv_uuid(item_id: uuid.UUID) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/path/{item_id:path}")
def conv_path(item_id: str) -> dict[str, object]:
    return typed(item_id)


@app.get("/conv/unannotated/{item_id:int}")
def conv_unannotated(item_id) -> dict[str, object]:
    return typed(item_id)


@app.get("/two/{a:int}/and/{b}")
async def two_path_params(a: int, b: str) -> dict[str, object]:
    return {"a": a, "b": b}


# --- query ----------------------------------------------------------------------


@app.get("/q/str")
def q_str(v: str) -> dict[str, object]:
    return typed(v)


@app.get("/q/int")
def q_int(v: int) -> dict[str, object]:
    return typed(v)


@app.get("/q/float")
def q_float(v: float) -> dict[str, object]:
    return typed(v)


@app.get("/q/bool")
def q_bool(v: bool) -> dict[str, object]:
    return typed(v)


@app.get("/q/optional")
def q_optional(v: int | None = None) -> dict[str, object]:
    return typed(v)


@app.get("/q/default")
async def q_default(limit: int = 10, name: str = "anon", flag: bool = False) -> dict[str, object]:
    return {"limit": limit, "name": name, "flag": flag}


@app.get("/q/list")
def q_list(ids: list[int]) -> dict[str, object]:
    return {"ids": ids, "item_types": sorted({type(i).__name__ for i in ids})}


@app.get("/q/list-optional")
def q_list_optional(tags: list[str] | None = None) -> dict[str, object]:
    return {"tags": tags}


@app.get("/q/annotated")
def q_annotated(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, object]:
    return {"limit": limit}


@app.get("/q/alias")
def q_alias(page_size: int = Query(20, alias="page-size")) -> dict[str, object]:
    return {"page_size": page_size}


@app.get("/cons/gt")
def cons_gt(v: int = Query(gt=5)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/ge")
def cons_ge(v: int = Query(ge=5)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/lt")
def cons_lt(v: int = Query(lt=5)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/le")
def cons_le(v: int = Query(le=5)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/float-gt")
def cons_float_gt(v: float = Query(gt=0.5)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/min-length")
def cons_min_length(v: str = Query(min_length=3)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/max-length")
def cons_max_length(v: str = Query(max_length=3)) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/pattern")
def cons_pattern(v: str = Query(pattern="^[a-z]+$")) -> dict[str, object]:
    return {"v": v}


@app.get("/cons/default")
def cons_default(v: int = Query(7, ge=5)) -> dict[str, object]:
    return {"v": v}


# --- headers and cookies --------------------------------------------------------


@app.get("/h/user-agent")
def h_user_agent(user_agent: str = Header()) -> dict[str, object]:
    return {"user_agent": user_agent}


@app.get("/h/typed")
def h_typed(x_count: int = Header(), x_ratio: float = Header(1.0), x_flag: bool = Header(False)) -> dict[str, object]:
    return {"x_count": x_count, "x_ratio": x_ratio, "x_flag": x_flag}


@app.get("/h/optional")
def h_optional(x_token: str | None = Header(None)) -> dict[str, object]:
    return {"x_token": x_token}


@app.get("/h/constrained")
def h_constrained(x_token: str = Header(min_length=4, max_length=8), x_count: int = Header(0, ge=1, lt=10)):
    return {"x_token": x_token, "x_count": x_count}


@app.get("/c/session")
def c_session(session: str = Cookie()) -> dict[str, object]:
    return {"session": session}


@app.get("/c/typed")
def c_typed(visits: int = Cookie(0), theme: str | None = Cookie(None)) -> dict[str, object]:
    return {"visits": visits, "theme": theme}


@app.get("/c/constrained")
def c_constrained(session: str = Cookie(pattern="^s-"), visits: int = Cookie(0, le=3)) -> dict[str, object]:
    return {"session": session, "visits": visits}


@app.get("/many")
def many(a: int, b: bool, x_need: str = Header(), sid: str = Cookie(), c: int = Query(0, gt=0)) -> dict[str, object]:
    return {}


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def ok(client: TestClient, path: str, **options) -> object:
    response = client.get(path, **options)
    assert response.status_code == 200, response.text
    return response.json()


# --- path -----------------------------------------------------------------------


def test_path_parameter_is_typed_from_the_annotation(client):
    assert ok(client, "/items/42") == {"value": 42, "type": "int"}


def test_path_parameter_that_does_not_convert_is_a_422_at_its_location(client):
    assert errors_of(client.get("/items/abc")) == [(("path", "item_id"), "int_parsing")]


VALID_UUID = "6f1c2a8e-3b0e-4c7b-9d2f-1a2b3c4d5e6f"


@pytest.mark.parametrize(
    ("url", "value", "type_name"),
    [
        ("/conv/int/42", 42, "int"),
        ("/conv/int/-7", -7, "int"),
        ("/conv/float/2.5", 2.5, "float"),
        ("/conv/float/3", 3.0, "float"),
        ("/conv/str/hello", "hello", "str"),
        ("/conv/str/a%20b", "a b", "str"),
        (f"/conv/uuid/{VALID_UUID}", VALID_UUID, "UUID"),
        ("/conv/path/a/b/c.txt", "a/b/c.txt", "str"),
        ("/conv/path/single", "single", "str"),
        ("/conv/unannotated/5", 5, "int"),
    ],
)
def test_path_converters_give_the_handler_the_declared_type(client, url, value, type_name):
    assert ok(client, url) == {"value": value, "type": type_name}


@pytest.mark.parametrize(
    ("url", "error_type"),
    [
        ("/conv/int/abc", "int_parsing"),
        ("/conv/int/4.5", "int_parsing"),
        ("/conv/float/abc", "float_parsing"),
        ("/conv/uuid/not-a-uuid", None),
        ("/conv/unannotated/x", "int_parsing"),
    ],
)
def test_path_converter_mismatch_is_a_422_naming_the_path_parameter(client, url, error_type):
    errors = errors_of(client.get(url))
    assert len(errors) == 1
    loc, kind = errors[0]
    assert loc == ("path", "item_id")
    if error_type is not None:
        assert kind == error_type


def test_several_path_parameters_are_read_by_position(client):
    assert ok(client, "/two/3/and/x") == {"a": 3, "b": "x"}
    assert errors_of(client.get("/two/x/and/y")) == [(("path", "a"), "int_parsing")]


# --- query coercion -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "value", "type_name"),
    [
        ("/q/str?v=hello", "hello", "str"),
        ("/q/str?v=42", "42", "str"),
        ("/q/str?v=a+b%26c", "a b&c", "str"),
        ("/q/int?v=42", 42, "int"),
        ("/q/int?v=-3", -3, "int"),
        ("/q/float?v=2.5", 2.5, "float"),
        ("/q/float?v=2", 2.0, "float"),
        ("/q/int?v=1&v=2", 2, "int"),
    ],
)
def test_query_text_is_coerced_to_the_annotated_type(client, url, value, type_name):
    assert ok(client, url) == {"value": value, "type": type_name}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("on", True),
        ("off", False),
    ],
)
def test_query_bool_accepts_the_usual_spellings(client, text, value):
    assert ok(client, f"/q/bool?v={text}") == {"value": value, "type": "bool"}


@pytest.mark.parametrize(
    ("url", "error_type"),
    [
        ("/q/int?v=abc", "int_parsing"),
        ("/q/int?v=4.5", "int_parsing"),
        ("/q/int?v=", "int_parsing"),
        ("/q/float?v=abc", "float_parsing"),
        ("/q/bool?v=maybe", "bool_parsing"),
        ("/q/bool?v=2", "bool_parsing"),
    ],
)
def test_query_text_that_does_not_coerce_is_a_422(client, url, error_type):
    assert errors_of(client.get(url)) == [(("query", "v"), error_type)]


@pytest.mark.parametrize("path", ["/q/str", "/q/int", "/q/float", "/q/bool"])
def test_required_query_parameter_missing_is_a_422_missing(client, path):
    body = client.get(path)
    assert errors_of(body) == [(("query", "v"), "missing")]


def test_optional_query_parameter_defaults_to_none_and_is_coerced_when_sent(client):
    assert ok(client, "/q/optional") == {"value": None, "type": "NoneType"}
    assert ok(client, "/q/optional?v=3") == {"value": 3, "type": "int"}
    assert errors_of(client.get("/q/optional?v=x")) == [(("query", "v"), "int_parsing")]


def test_query_defaults_apply_when_absent_and_are_overridden_when_sent(client):
    assert ok(client, "/q/default") == {"limit": 10, "name": "anon", "flag": False}
    assert ok(client, "/q/default?limit=3&name=bob&flag=on") == {"limit": 3, "name": "bob", "flag": True}


def test_list_query_parameter_collects_repeated_keys(client):
    assert ok(client, "/q/list?ids=1&ids=2&ids=3") == {"ids": [1, 2, 3], "item_types": ["int"]}
    assert ok(client, "/q/list?ids=5") == {"ids": [5], "item_types": ["int"]}


def test_list_query_parameter_locates_a_bad_item_by_index(client):
    assert errors_of(client.get("/q/list?ids=1&ids=x&ids=3")) == [(("query", "ids", 1), "int_parsing")]


def test_required_list_query_parameter_missing_is_a_422(client):
    assert errors_of(client.get("/q/list")) == [(("query", "ids"), "missing")]


def test_optional_list_query_parameter(client):
    assert ok(client, "/q/list-optional") == {"tags": None}
    assert ok(client, "/q/list-optional?tags=a&tags=b") == {"tags": ["a", "b"]}


def test_annotated_query_marker_with_constraints(client):
    assert ok(client, "/q/annotated") == {"limit": 10}
    assert ok(client, "/q/annotated?limit=100") == {"limit": 100}
    assert errors_of(client.get("/q/annotated?limit=0")) == [(("query", "limit"), "greater_than_equal")]
    assert errors_of(client.get("/q/annotated?limit=101")) == [(("query", "limit"), "less_than_equal")]


def test_query_alias_reads_the_aliased_key(client):
    assert ok(client, "/q/alias?page-size=5") == {"page_size": 5}
    assert ok(client, "/q/alias?page_size=5") == {"page_size": 20}


# --- query constraints ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "good", "good_value", "bad", "error_type"),
    [
        ("/cons/gt", "6", 6, "5", "greater_than"),
        ("/cons/ge", "5", 5, "4", "greater_than_equal"),
        ("/cons/lt", "4", 4, "5", "less_than"),
        ("/cons/le", "5", 5, "6", "less_than_equal"),
        ("/cons/float-gt", "0.6", 0.6, "0.5", "greater_than"),
        ("/cons/min-length", "abc", "abc", "ab", "string_too_short"),
        ("/cons/max-length", "abc", "abc", "abcd", "string_too_long"),
        ("/cons/pattern", "abc", "abc", "abc1", "string_pattern_mismatch"),
    ],
)
def test_query_constraints(client, path, good, good_value, bad, error_type):
    assert ok(client, path, params={"v": good}) == {"v": good_value}
    assert errors_of(client.get(path, params={"v": bad})) == [(("query", "v"), error_type)]


def test_constraint_does_not_apply_to_the_default(client):
    assert ok(client, "/cons/default") == {"v": 7}
    assert errors_of(client.get("/cons/default?v=4")) == [(("query", "v"), "greater_than_equal")]


def test_constrained_required_query_missing_is_a_422_missing(client):
    assert errors_of(client.get("/cons/gt")) == [(("query", "v"), "missing")]


# --- headers --------------------------------------------------------------------


def test_user_agent_parameter_reads_the_user_agent_header(client):
    assert ok(client, "/h/user-agent", headers={"User-Agent": "pytest-agent/1.0"}) == {"user_agent": "pytest-agent/1.0"}


def test_header_names_are_case_insensitive(client):
    assert ok(client, "/h/user-agent", headers={"USER-AGENT": "shouty"}) == {"user_agent": "shouty"}


def test_missing_required_header_is_a_422_missing(client):
    assert errors_of(client.get("/h/user-agent")) == [(("header", "user-agent"), "missing")]


def test_header_values_are_coerced(client):
    body = ok(client, "/h/typed", headers={"X-Count": "7", "X-Ratio": "0.25", "X-Flag": "yes"})
    assert body == {"x_count": 7, "x_ratio": 0.25, "x_flag": True}
    assert ok(client, "/h/typed", headers={"X-Count": "1"}) == {"x_count": 1, "x_ratio": 1.0, "x_flag": False}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Count": "x"}, [(("header", "x-count"), "int_parsing")]),
        ({"X-Count": "1", "X-Ratio": "x"}, [(("header", "x-ratio"), "float_parsing")]),
        ({"X-Count": "1", "X-Flag": "perhaps"}, [(("header", "x-flag"), "bool_parsing")]),
    ],
)
def test_header_values_that_do_not_coerce_are_422(client, headers, expected):
    assert errors_of(client.get("/h/typed", headers=headers)) == expected


def test_optional_header(client):
    assert ok(client, "/h/optional") == {"x_token": None}
    assert ok(client, "/h/optional", headers={"X-Token": "abc"}) == {"x_token": "abc"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Token": "abc"}, [(("header", "x-token"), "string_too_short")]),
        ({"X-Token": "abcdefghi"}, [(("header", "x-token"), "string_too_long")]),
        ({"X-Token": "abcd", "X-Count": "0"}, [(("header", "x-count"), "greater_than_equal")]),
        ({"X-Token": "abcd", "X-Count": "10"}, [(("header", "x-count"), "less_than")]),
    ],
)
def test_header_constraints(client, headers, expected):
    assert errors_of(client.get("/h/constrained", headers=headers)) == expected


def test_header_constraints_accept_valid_values(client):
    assert ok(client, "/h/constrained", headers={"X-Token": "abcd", "X-Count": "9"}) == {
        "x_token": "abcd",
        "x_count": 9,
    }


# --- cookies --------------------------------------------------------------------


def test_cookie_parameter_reads_the_named_cookie(client):
    assert ok(client, "/c/session", cookies={"other": "x", "session": "abc123"}) == {"session": "abc123"}


def test_missing_required_cookie_is_a_422_missing(client):
    assert errors_of(client.get("/c/session", cookies={"other": "x"})) == [(("cookie", "session"), "missing")]


def test_cookie_values_are_coerced_and_defaulted(client):
    assert ok(client, "/c/typed") == {"visits": 0, "theme": None}
    assert ok(client, "/c/typed", cookies={"visits": "3", "theme": "dark"}) == {"visits": 3, "theme": "dark"}
    assert errors_of(client.get("/c/typed", cookies={"visits": "many"})) == [(("cookie", "visits"), "int_parsing")]


@pytest.mark.parametrize(
    ("cookies", "expected"),
    [
        ({"session": "x-1"}, [(("cookie", "session"), "string_pattern_mismatch")]),
        ({"session": "s-1", "visits": "4"}, [(("cookie", "visits"), "less_than_equal")]),
    ],
)
def test_cookie_constraints(client, cookies, expected):
    assert errors_of(client.get("/c/constrained", cookies=cookies)) == expected


# --- all at once ----------------------------------------------------------------


def test_every_failing_parameter_is_reported_in_one_422(client):
    response = client.get("/many", params={"a": "x", "b": "maybe", "c": "0"})
    body_errors = errors_of(response)
    assert sorted(body_errors) == sorted(
        [
            (("query", "a"), "int_parsing"),
            (("query", "b"), "bool_parsing"),
            (("header", "x-need"), "missing"),
            (("cookie", "sid"), "missing"),
            (("query", "c"), "greater_than"),
        ]
    )
    assert response.json()["detail"] == "5 validation errors"


def test_error_entries_carry_the_offending_input(client):
    body = client.get("/q/int?v=abc").json()
    assert body["errors"][0]["input"] == "abc"
    assert isinstance(body["errors"][0]["msg"], str) and body["errors"][0]["msg"]

"""Envelope rendering and validation-error translation (pure functions)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Annotated

import pytest
from pydantic import StringConstraints, ValidationError

from keel.platform.http.context import request_id_var
from keel.platform.http.envelope import (
    FILLED_LINE_PATTERN,
    Envelope,
    ErrorEnvelope,
    Link,
    Schema,
    error_body,
    error_item,
    ok,
)
from keel.platform.http.handlers import field_path, validation_items


class Thing(Schema):
    name: str
    price: Decimal


def test_ok_renders_valid_json_that_validates_against_the_envelope_model() -> None:
    token = request_id_var.set("req-1")
    try:
        response = ok(
            Thing(name='quote " and \\ backslash', price=Decimal("1.50")),
            links=[Link(href="/api/v2/things/1", rel="self")],
            meta={"n": 1},
            warnings=["deprecated field"],
        )
    finally:
        request_id_var.reset(token)
    body = json.loads(bytes(response.body))
    parsed = Envelope[Thing].model_validate(body)
    assert parsed.data.name == 'quote " and \\ backslash'
    assert body["data"]["price"] == "1.50"
    assert body["request_id"] == "req-1"
    assert body["links"] == [{"href": "/api/v2/things/1", "rel": "self", "method": "GET"}]
    assert body["meta"] == {"n": 1}
    assert body["warnings"] == ["deprecated field"]
    assert response.media_type == "application/json"


def test_ok_with_a_list_of_models() -> None:
    body = json.loads(bytes(ok([Thing(name="a", price=Decimal(1))]).body))
    assert body["data"] == [{"name": "a", "price": "1"}]


def test_error_body_validates_against_error_envelope() -> None:
    body = json.loads(error_body(404, [error_item(404)]))
    parsed = ErrorEnvelope.model_validate(body)
    assert parsed.success is False
    assert parsed.data is None
    assert parsed.errors[0].code == "NOT_FOUND"
    assert parsed.errors[0].severity == "low"


def test_severity_grows_with_the_status() -> None:
    assert error_item(422).severity == "low"
    assert error_item(429).severity == "medium"
    assert error_item(503).severity == "high"
    assert error_item(500).severity == "critical"


def test_unknown_status_falls_back_to_a_generic_code() -> None:
    assert error_item(418).code == "BAD_REQUEST"
    assert error_item(502).code == "INTERNAL_ERROR"


def test_field_path_is_dotted_without_location() -> None:
    assert field_path(("body", "tags", 0)) == "tags.0"
    assert field_path(("query", "page")) == "page"
    assert field_path(("body",)) == "body"
    assert field_path(()) is None


def test_json_decode_error_becomes_a_single_400_item() -> None:
    status, items = validation_items(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 7),
                "msg": "JSON decode error",
                "ctx": {"error": "Expecting value"},
            }
        ]
    )
    assert status == 400
    assert [item.code for item in items] == ["BAD_REQUEST"]
    assert "position 7" in items[0].message


def test_validation_problems_never_echo_the_input() -> None:
    status, items = validation_items(
        [{"type": "string_too_short", "loc": ("body", "password"), "msg": "too short", "input": "hunter2"}]
    )
    assert status == 422
    assert "hunter2" not in items[0].model_dump_json()


class Named(Schema):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=10, pattern=FILLED_LINE_PATTERN),
    ]


# Blank to Python's strip() (U+0085), to the JSON Schema regex \s (U+FEFF, U+3000), or a
# C1 control: refused, so the schema and the API agree on what is blank.
@pytest.mark.parametrize("blank", ["", "   ", "\u00a0", "\x85", "\ufeff", " \u3000 ", "\x80", "\u2028"])
def test_a_required_line_refuses_every_kind_of_blank(blank: str) -> None:
    with pytest.raises(ValidationError):
        Named(name=blank)
    assert re.fullmatch(FILLED_LINE_PATTERN, blank) is None


@pytest.mark.parametrize(
    ("given", "kept"), [(" café ", "café"), ("\ufeffx", "\ufeffx"), ("a\u00a0b", "a\u00a0b")]
)
def test_a_required_line_keeps_text_around_blanks(given: str, kept: str) -> None:
    assert Named(name=given).name == kept

"""servicekit's input edge on its own: the id bound (URL converter, serializer fields) and the JSON depth limit."""

from __future__ import annotations

import io

import pytest
from rest_framework.exceptions import ParseError, ValidationError

from servicekit.ids import MAX_ID, IdConverter, IdField, IdListField
from servicekit.parsers import MAX_JSON_DEPTH, JSONParser, json_depth_exceeds


def test_id_converter_matches_up_to_a_bigint():
    converter = IdConverter()
    assert converter.to_python(str(MAX_ID)) == MAX_ID
    with pytest.raises(ValueError):  # Django's resolver: no match, so a 404
        converter.to_python(str(MAX_ID + 1))


def test_id_fields_bound_ids():
    assert IdField().run_validation("12") == 12
    for bad in (str(MAX_ID + 1), "0", "-3"):
        with pytest.raises(ValidationError):
            IdField().run_validation(bad)
    field = IdListField(max_length=3)
    assert field.run_validation("1, 2,,3") == [1, 2, 3]
    for bad in ("", "1,2,3,4", "1,x", f"1,{MAX_ID + 1}", "+1", "١"):
        with pytest.raises(ValidationError):
            field.run_validation(bad)


def test_json_depth_is_counted_without_recursion():
    assert not json_depth_exceeds({"a": [1, {"b": 2}]}, 3)
    assert json_depth_exceeds({"a": [1, {"b": []}]}, 3)
    deep: list = []
    for _ in range(100_000):  # far past the recursion limit
        deep = [deep]
    assert json_depth_exceeds(deep, MAX_JSON_DEPTH)


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)])
def test_parser_refuses_deep_json(body):
    with pytest.raises(ParseError, match="nested deeper"):
        JSONParser().parse(io.BytesIO(body), "application/json", {})


def test_parser_takes_json_at_the_limit():
    body = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert JSONParser().parse(io.BytesIO(body), "application/json", {})

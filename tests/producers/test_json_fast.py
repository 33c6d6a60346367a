"""The fast JSON check never accepts a payload jsonschema refuses (it may defer on valid ones)."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.json_fast import compile_fast_check

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 4},
        "n": {"type": "integer", "minimum": 0, "maximum": 10},
        "x": {"type": ["number", "null"], "minimum": 0.5},
        "kind": {"enum": ["a", 1, True, None]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["id"],
    "additionalProperties": False,
}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(-1, 11), st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
payloads = st.dictionaries(
    st.sampled_from(["id", "n", "x", "kind", "tags", "labels", "other"]), values, max_size=6
)


@settings(max_examples=400, deadline=None)
@given(payloads)
def test_fast_check_never_accepts_what_jsonschema_refuses(payload: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    check = compile_fast_check(SCHEMA, jsonschema.Draft202012Validator)
    assert check is not None
    if check(payload):
        assert validator.is_valid(payload), payload


def test_fast_check_accepts_plain_valid_payloads() -> None:
    check = compile_fast_check(SCHEMA, jsonschema.Draft202012Validator)
    assert check is not None
    payload = {"id": "p-1", "n": 3, "x": None, "kind": 1, "tags": ["a"], "labels": {"k": "v"}}
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(payload)
    assert check(payload)
    assert not check({**payload, "kind": 1.0})  # defers: jsonschema decides
    assert not check({**payload, "other": 1})


def test_unsupported_keywords_and_dialects_disable_the_fast_check() -> None:
    assert compile_fast_check({"type": "string", "pattern": "^a"}, jsonschema.Draft202012Validator) is None
    assert compile_fast_check({"$ref": "#/$defs/x"}, jsonschema.Draft7Validator) is None
    assert compile_fast_check({"properties": {"a": {"oneOf": []}}}, jsonschema.Draft7Validator) is None
    assert compile_fast_check({"type": "string"}, jsonschema.Draft3Validator) is None

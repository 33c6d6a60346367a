"""Whatever text arrives, parse_schema either returns a ParsedSchema or raises InvalidSchemaError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema_registry.formats import InvalidSchemaError, ParsedSchema, check_compatibility, parse_schema

AVRO_WORDS = ["record", "enum", "fixed", "array", "map", "int", "string", "null", "R", "a.B", "E"]
JSON_WORDS = ["object", "string", "integer", "array", "$ref", "#", "#/definitions/a", "other.json"]
KEYS = [
    "type", "name", "namespace", "fields", "symbols", "items", "values", "size", "default", "aliases",
    "properties", "required", "additionalProperties", "$ref", "$schema", "$id", "definitions", "enum",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 20),
    st.sampled_from(AVRO_WORDS + JSON_WORDS),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=25,
)


def parses_or_rejects(schema_type: str, text: str, references: dict[str, str] | None = None) -> None:
    try:
        parsed = parse_schema(schema_type, text, references)
    except InvalidSchemaError as exc:
        assert str(exc)
    else:
        assert isinstance(parsed, ParsedSchema)
        assert parse_schema(schema_type, parsed.normalized(), references) == parsed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_type=st.sampled_from(["AVRO", "JSON"]), value=json_values)
def test_json_shaped_input_never_crashes(schema_type: str, value: object) -> None:
    parses_or_rejects(schema_type, json.dumps(value))


@settings(max_examples=150, deadline=None)
@given(schema_type=st.sampled_from(["AVRO", "JSON"]), text=st.text(max_size=60))
def test_arbitrary_text_never_crashes(schema_type: str, text: str) -> None:
    parses_or_rejects(schema_type, text)


@settings(max_examples=150, deadline=None)
@given(value=json_values, reference=json_values)
def test_references_never_crash(value: object, reference: object) -> None:
    parses_or_rejects("AVRO", json.dumps(value), {"R": json.dumps(reference)})
    parses_or_rejects("JSON", json.dumps(value), {"other.json": json.dumps(reference)})


PROTO_TOKENS = ['syntax = "proto3";', "message", "M", "{", "}", "int32", "x", "=", "1", ";", "enum", "oneof"]


@settings(max_examples=25, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from(PROTO_TOKENS), max_size=12).map(" ".join),
    )
)
def test_arbitrary_text_never_crashes_protobuf(text: str) -> None:
    parses_or_rejects("PROTOBUF", text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_type=st.sampled_from(["AVRO", "JSON"]), first=json_values, second=json_values)
def test_compatibility_never_crashes_and_a_schema_reads_itself(
    schema_type: str, first: object, second: object
) -> None:
    parsed = []
    for value in (first, second):
        try:
            parsed.append(parse_schema(schema_type, json.dumps(value)))
        except InvalidSchemaError:
            continue
    for schema in parsed:
        assert check_compatibility("FULL", schema, [schema]) == []
    if len(parsed) == 2:
        messages = check_compatibility("FULL_TRANSITIVE", parsed[1], [parsed[0], parsed[1]])
        assert all(isinstance(m, str) and m for m in messages)

"""JSON Schema compatibility rules (Confluent's content-model rules), each checked in both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schema_registry.formats import check_compatibility, parse_schema
from tests.schema_registry.formats.compat_table import Case, assert_both_directions, params


def obj(properties: dict[str, Any], *, required: list[str] | None = None, **extra: Any) -> str:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return json.dumps(schema)


def s(**schema: Any) -> str:
    return json.dumps(schema)


PLAYER = {"player": {"type": "string"}}
OPEN = obj(PLAYER)
CLOSED = obj(PLAYER, additionalProperties=False)
PING = {"ping": {"type": "integer"}}
NARROWED = "TYPE_NARROWED"

CASES = [
    Case("identical", OPEN, OPEN, (), ()),
    # content models
    Case(
        "add-property-to-open-model",
        OPEN,
        obj({**PLAYER, **PING}),
        ("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",),
        (),
    ),
    Case("add-empty-property-to-open-model", OPEN, obj({**PLAYER, "any": {}}), (), ()),
    Case(
        "add-property-to-closed-model",
        CLOSED,
        obj({**PLAYER, **PING}, additionalProperties=False),
        (),
        ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",),
    ),
    Case(
        "add-required-property-to-closed-model",
        CLOSED,
        obj({**PLAYER, **PING}, required=["ping"], additionalProperties=False),
        ("REQUIRED_ATTRIBUTE_ADDED",),
        ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",),
    ),
    Case(
        "close-open-model",
        OPEN,
        CLOSED,
        ("ADDITIONAL_PROPERTIES_REMOVED",),
        (),
    ),
    Case(
        "partially-open-covers-added-property",
        obj(PLAYER, additionalProperties={"type": "integer"}),
        obj({**PLAYER, **PING}, additionalProperties={"type": "integer"}),
        (),
        (),
    ),
    Case(
        "partially-open-does-not-cover-added-property",
        obj(PLAYER, additionalProperties={"type": "integer"}),
        obj({**PLAYER, "tag": {"type": "integer", "maximum": 5}}, additionalProperties={"type": "integer"}),
        ("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",),
        (),
    ),
    Case(
        "pattern-properties-cover-added-property",
        obj(PLAYER, patternProperties={"^p": {"type": "integer"}}),
        obj({**PLAYER, **PING}, patternProperties={"^p": {"type": "integer"}}),
        (),
        (),
    ),
    # required
    Case("make-optional-required", OPEN, obj(PLAYER, required=["player"]), ("REQUIRED_ATTRIBUTE_ADDED",), ()),
    # types
    Case("integer-to-number", s(type="integer"), s(type="number"), (), (NARROWED,)),
    Case("string-to-integer", s(type="string"), s(type="integer"), ("TYPE_CHANGED",), ("TYPE_CHANGED",)),
    Case("add-null-type", s(type="string"), s(type=["string", "null"]), (), (NARROWED,)),
    Case(
        "property-type-changed",
        OPEN,
        obj({"player": {"type": "integer"}}),
        ("TYPE_CHANGED",),
        ("TYPE_CHANGED",),
    ),
    Case("type-added-to-any", s(), s(type="string"), (NARROWED,), ()),
    # bounds
    Case("max-length-added", s(type="string"), s(type="string", maxLength=5), ("MAX_LENGTH_ADDED",), ()),
    Case(
        "max-length-decreased",
        s(type="string", maxLength=10),
        s(type="string", maxLength=5),
        ("MAX_LENGTH_DECREASED",),
        (),
    ),
    Case(
        "min-length-increased",
        s(type="string", minLength=1),
        s(type="string", minLength=3),
        ("MIN_LENGTH_INCREASED",),
        (),
    ),
    Case("pattern-added", s(type="string"), s(type="string", pattern="^a"), ("PATTERN_ADDED",), ()),
    Case(
        "pattern-changed",
        s(type="string", pattern="^a"),
        s(type="string", pattern="^b"),
        ("PATTERN_CHANGED",),
        ("PATTERN_CHANGED",),
    ),
    Case(
        "maximum-decreased",
        s(type="integer", maximum=10),
        s(type="integer", maximum=5),
        ("MAXIMUM_DECREASED",),
        (),
    ),
    Case("minimum-added", s(type="integer"), s(type="integer", minimum=0), ("MINIMUM_ADDED",), ()),
    Case(
        "exclusive-minimum-increased",
        s(type="number", exclusiveMinimum=0),
        s(type="number", exclusiveMinimum=1),
        ("EXCLUSIVE_MINIMUM_INCREASED",),
        (),
    ),
    Case(
        "multiple-of-refined",
        s(type="integer", multipleOf=2),
        s(type="integer", multipleOf=4),
        ("MULTIPLE_OF_CHANGED",),
        (),
    ),
    Case("multiple-of-added", s(type="integer"), s(type="integer", multipleOf=3), ("MULTIPLE_OF_ADDED",), ()),
    Case(
        "max-properties-added",
        s(type="object"),
        s(type="object", maxProperties=3),
        ("MAX_PROPERTIES_ADDED",),
        (),
    ),
    # arrays
    Case(
        "array-items-widened",
        s(type="array", items={"type": "integer"}),
        s(type="array", items={"type": "number"}),
        (),
        (NARROWED,),
    ),
    Case("max-items-added", s(type="array"), s(type="array", maxItems=3), ("MAX_ITEMS_ADDED",), ()),
    Case(
        "unique-items-added", s(type="array"), s(type="array", uniqueItems=True), ("UNIQUE_ITEMS_ADDED",), ()
    ),
    Case(  # Confluent's array diff compares the two `items` forms separately (issue 15)
        "items-schema-to-items-array",
        s(type="array", items={"type": "integer"}),
        s(type="array", items=[{"type": "integer"}]),
        ("ITEM_ADDED_TO_OPEN_CONTENT_MODEL",),
        ("SCHEMA_ADDED",),
    ),
    Case(
        "items-schema-to-prefix-items",
        s(type="array", items={"type": "integer"}),
        s(type="array", prefixItems=[{"type": "integer"}], items={"type": "integer"}),
        ("ITEM_ADDED_TO_OPEN_CONTENT_MODEL",),
        ("SCHEMA_ADDED",),
    ),
    Case(
        "tuple-position-changed",
        s(type="array", items=[{"type": "string"}, {"type": "integer"}]),
        s(type="array", items=[{"type": "string"}, {"type": "string"}]),
        ("TYPE_CHANGED",),
        ("TYPE_CHANGED",),
    ),
    # values
    Case("enum-extended", s(enum=["a", "b"]), s(enum=["a", "b", "c"]), (), ("ENUM_ARRAY_NARROWED",)),
    Case("enum-added", s(type="string"), s(type="string", enum=["a"]), ("ENUM_ADDED",), ()),
    Case(
        "const-changed",
        s(const="a"),
        s(const="b"),
        ("ENUM_ARRAY_NARROWED", "CONST_CHANGED")[1:],
        ("CONST_CHANGED",),
    ),
    Case("const-to-enum", s(const="a"), s(enum=["a", "b"]), (), ("CONST_CHANGED",)),
    # combinations
    Case(
        "one-of-branch-added",
        s(oneOf=[{"type": "string"}, {"type": "integer"}]),
        s(oneOf=[{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]),
        (),
        ("SUM_TYPE_NARROWED",),
    ),
    Case(
        "all-of-constraint-added",
        s(allOf=[{"type": "string"}]),
        s(allOf=[{"type": "string"}, {"maxLength": 3}]),
        ("PRODUCT_TYPE_EXTENDED",),
        (),
    ),
    Case(
        "any-of-added-around-type",
        s(type="string"),
        s(anyOf=[{"type": "string"}, {"type": "null"}]),
        (),
        ("TYPE_CHANGED",),
    ),
    Case("not-added", s(type="string"), s(type="string", **{"not": {"const": "x"}}), ("NOT_TYPE_ADDED",), ()),
    # booleans and references
    Case("true-to-false", "true", "false", (NARROWED,), ()),
    Case(
        "ref-target-narrowed",
        s(properties={"p": {"$ref": "#/definitions/p"}}, definitions={"p": {"type": "number"}}),
        s(properties={"p": {"$ref": "#/definitions/p"}}, definitions={"p": {"type": "integer"}}),
        (NARROWED,),
        (),
    ),
    Case(
        "recursive-tree",
        s(
            definitions={
                "n": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/n"}}},
                }
            },
            **{"$ref": "#/definitions/n"},
        ),
        s(
            definitions={
                "n": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/n"}}},
                }
            },
            **{"$ref": "#/definitions/n"},
        ),
        (),
        (),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_json_schema_rule(case: Case) -> None:
    assert_both_directions("JSON", case)


def test_message_names_kind_and_path() -> None:
    old = parse_schema("JSON", OPEN)
    new = parse_schema("JSON", obj({"player": {"type": "string", "maxLength": 8}}))
    [message] = check_compatibility("BACKWARD", new, [old])
    assert message.startswith(
        "MAX_LENGTH_ADDED at #/properties/player/maxLength: the new schema adds maxLength 8"
    )


def test_referenced_documents_are_followed() -> None:
    old = parse_schema("JSON", s(**{"$ref": "player.json"}), {"player.json": s(type="string")})
    new = parse_schema("JSON", s(**{"$ref": "player.json"}), {"player.json": s(type="string", maxLength=3)})
    [message] = check_compatibility("BACKWARD", new, [old])
    assert message.startswith("MAX_LENGTH_ADDED at #/maxLength")

"""Avro schema resolution rules, each checked in both directions (backward and forward)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schema_registry.formats import check_compatibility, parse_schema
from tests.schema_registry.formats.compat_table import Case, assert_both_directions, params


def record(*fields: dict[str, Any], name: str = "game.Kill", **extra: Any) -> str:
    return json.dumps({"type": "record", "name": name, "fields": list(fields), **extra})


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "game.Weapon", "symbols": list(symbols), **extra}


BASE = record(f("id", "long"))
MISSING = "READER_FIELD_MISSING_DEFAULT_VALUE"

CASES = [
    Case("identical", BASE, BASE, (), ()),
    Case("add-field-with-default", BASE, record(f("id", "long"), f("hp", "int", default=0)), (), ()),
    Case("add-field-without-default", BASE, record(f("id", "long"), f("hp", "int")), (MISSING,), ()),
    Case("remove-field-with-default", record(f("id", "long"), f("hp", "int", default=0)), BASE, (), ()),
    Case("remove-field-without-default", record(f("id", "long"), f("hp", "int")), BASE, (), (MISSING,)),
    Case("rename-field-with-alias", BASE, record(f("kill_id", "long", aliases=["id"])), (), (MISSING,)),
    Case("promote-int-to-long", record(f("n", "int")), record(f("n", "long")), (), ("TYPE_MISMATCH",)),
    Case("promote-long-to-double", record(f("n", "long")), record(f("n", "double")), (), ("TYPE_MISMATCH",)),
    Case(
        "promote-float-to-double", record(f("n", "float")), record(f("n", "double")), (), ("TYPE_MISMATCH",)
    ),
    Case("string-to-bytes", record(f("s", "string")), record(f("s", "bytes")), (), ()),
    Case(
        "int-to-string",
        record(f("n", "int")),
        record(f("n", "string")),
        ("TYPE_MISMATCH",),
        ("TYPE_MISMATCH",),
    ),
    Case(
        "logical-type-ignored",
        record(f("d", "int")),
        record(f("d", {"type": "int", "logicalType": "date"})),
        (),
        (),
    ),
    Case(
        "enum-add-symbol",
        record(f("w", enum("GUN"))),
        record(f("w", enum("GUN", "KNIFE"))),
        (),
        ("MISSING_ENUM_SYMBOLS",),
    ),
    Case(
        "enum-add-symbol-with-default",
        record(f("w", enum("GUN", default="GUN"))),
        record(f("w", enum("GUN", "KNIFE", default="GUN"))),
        (),
        (),
    ),
    Case(
        "enum-rename",
        record(f("w", enum("GUN"))),
        record(f("w", {**enum("GUN"), "name": "game.Arm"})),
        ("NAME_MISMATCH",),
        ("NAME_MISMATCH",),
    ),
    Case(
        "enum-rename-with-alias",
        record(f("w", enum("GUN"))),
        record(f("w", {**enum("GUN"), "name": "game.Arm", "aliases": ["game.Weapon"]})),
        (),
        ("NAME_MISMATCH",),
    ),
    Case(
        "fixed-size",
        record(f("h", {"type": "fixed", "name": "H", "size": 16})),
        record(f("h", {"type": "fixed", "name": "H", "size": 32})),
        ("FIXED_SIZE_MISMATCH",),
        ("FIXED_SIZE_MISMATCH",),
    ),
    Case(
        "to-nullable-union",
        record(f("s", "string")),
        record(f("s", ["null", "string"])),
        (),
        ("TYPE_MISMATCH",),
    ),
    Case(
        "union-add-branch",
        record(f("s", ["null", "string"])),
        record(f("s", ["null", "string", "int"])),
        (),
        ("MISSING_UNION_BRANCH",),
    ),
    Case(
        "union-branch-promoted",
        record(f("n", ["null", "int"])),
        record(f("n", ["null", "long"])),
        (),
        ("MISSING_UNION_BRANCH",),
    ),
    Case(
        "union-to-different-type",
        record(f("n", ["null", "int"])),
        record(f("n", "string")),
        ("TYPE_MISMATCH",),
        ("MISSING_UNION_BRANCH",),
    ),
    Case(
        "array-items-promoted",
        record(f("a", {"type": "array", "items": "int"})),
        record(f("a", {"type": "array", "items": "long"})),
        (),
        ("TYPE_MISMATCH",),
    ),
    Case(
        "map-values-changed",
        record(f("m", {"type": "map", "values": "int"})),
        record(f("m", {"type": "map", "values": "boolean"})),
        ("TYPE_MISMATCH",),
        ("TYPE_MISMATCH",),
    ),
    Case(
        "array-to-map",
        record(f("a", {"type": "array", "items": "int"})),
        record(f("a", {"type": "map", "values": "int"})),
        ("TYPE_MISMATCH",),
        ("TYPE_MISMATCH",),
    ),
    Case(
        "record-rename",
        BASE,
        record(f("id", "long"), name="game.Death"),
        ("NAME_MISMATCH",),
        ("NAME_MISMATCH",),
    ),
    Case(
        "record-rename-with-alias",
        BASE,
        record(f("id", "long"), name="game.Death", aliases=["game.Kill"]),
        (),
        ("NAME_MISMATCH",),
    ),
    Case("namespace-change-same-short-name", BASE, record(f("id", "long"), name="other.Kill"), (), ()),
    Case(
        "nested-record-field-added",
        record(f("p", json.loads(record(f("x", "int"), name="game.P")))),
        record(f("p", json.loads(record(f("x", "int"), f("y", "int"), name="game.P")))),
        (MISSING,),
        (),
    ),
    Case(
        "recursive-list-field-added",
        record(f("next", ["null", "game.Kill"], default=None)),
        record(f("next", ["null", "game.Kill"], default=None), f("n", "int", default=0)),
        (),
        (),
    ),
    Case("primitive-top-level", json.dumps("int"), json.dumps("long"), (), ("TYPE_MISMATCH",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_avro_rule(case: Case) -> None:
    assert_both_directions("AVRO", case)


def test_messages_name_the_kind_path_and_field() -> None:
    old = parse_schema("AVRO", BASE)
    new = parse_schema("AVRO", record(f("id", "long"), f("hp", "int")))
    [message] = check_compatibility("BACKWARD", new, [old])
    assert message.startswith("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: field 'hp'")
    assert "has no default value" in message and "registered schema 1 of 1" in message


def test_paths_point_into_nested_types() -> None:
    old = parse_schema("AVRO", record(f("a", {"type": "array", "items": "int"})))
    new = parse_schema("AVRO", record(f("a", {"type": "array", "items": "string"})))
    [message] = check_compatibility("BACKWARD", new, [old])
    assert message.startswith("TYPE_MISMATCH at /fields/0/type/items:")


def test_named_types_from_references_are_compared() -> None:
    ref_v1 = json.dumps(enum("GUN"))
    ref_v2 = json.dumps(enum("GUN", "KNIFE"))
    schema = record(f("w", "game.Weapon"))
    old = parse_schema("AVRO", schema, {"game.Weapon": ref_v1})
    new = parse_schema("AVRO", schema, {"game.Weapon": ref_v2})
    assert check_compatibility("BACKWARD", new, [old]) == []
    [message] = check_compatibility("FORWARD", new, [old])
    assert message.startswith("MISSING_ENUM_SYMBOLS at /fields/0/type/symbols:") and "KNIFE" in message

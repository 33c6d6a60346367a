"""Protobuf compatibility rules (Confluent's), each checked in both directions."""

from __future__ import annotations

import pytest

from schema_registry.formats import check_compatibility, parse_schema
from tests.schema_registry.formats.compat_table import Case, assert_both_directions, params


def proto(body: str, *, package: str = "game.v1", syntax: str = "proto3") -> str:
    return f'syntax = "{syntax}";\npackage {package};\n{body}\n'


BASE = proto("message Purchase { string player = 1; int64 cents = 2; }")
KIND = "FIELD_KIND_CHANGED"
SCALAR = "FIELD_SCALAR_KIND_CHANGED"
NAMED = "FIELD_NAMED_TYPE_CHANGED"

CASES = [
    Case("identical", BASE, BASE, (), ()),
    Case("comments-and-layout", BASE, "// hi\n" + BASE.replace("; ", ";\n  "), (), ()),
    Case(
        "add-field",
        BASE,
        proto("message Purchase { string player = 1; int64 cents = 2; bool gift = 3; }"),
        (),
        (),
    ),
    Case("remove-field", BASE, proto("message Purchase { string player = 1; }"), (), ()),
    Case("rename-field", BASE, proto("message Purchase { string buyer = 1; int64 cents = 2; }"), (), ()),
    Case(
        "int64-to-uint32-same-varint-group",
        BASE,
        proto("message Purchase { string player = 1; uint32 cents = 2; }"),
        (),
        (),
    ),
    Case(
        "int64-to-bool-same-varint-group",
        BASE,
        proto("message Purchase { string player = 1; bool cents = 2; }"),
        (),
        (),
    ),
    Case("string-to-bytes", BASE, proto("message Purchase { bytes player = 1; int64 cents = 2; }"), (), ()),
    Case(
        "int64-to-sint64",
        BASE,
        proto("message Purchase { string player = 1; sint64 cents = 2; }"),
        (SCALAR,),
        (SCALAR,),
    ),
    Case(
        "int64-to-string",
        BASE,
        proto("message Purchase { string player = 1; string cents = 2; }"),
        (SCALAR,),
        (SCALAR,),
    ),
    Case(
        "fixed32-to-sfixed32",
        proto("message P { fixed32 a = 1; }"),
        proto("message P { sfixed32 a = 1; }"),
        (),
        (),
    ),
    Case(
        "float-to-double",
        proto("message P { float a = 1; }"),
        proto("message P { double a = 1; }"),
        (SCALAR,),
        (SCALAR,),
    ),
    Case(
        "enum-to-int32",
        proto("message P { enum E { A = 0; } E a = 1; }"),
        proto("message P { enum E { A = 0; } int32 a = 1; }"),
        (),
        (),
    ),
    Case(
        "scalar-to-message",
        proto("message P { int32 a = 1; }\nmessage Q {}"),
        proto("message P { Q a = 1; }\nmessage Q {}"),
        (KIND,),
        (KIND,),
    ),
    Case(
        "message-to-map",
        proto("message P { Q a = 1; }\nmessage Q {}"),
        proto("message P { map<string, int32> a = 1; }\nmessage Q {}"),
        (KIND,),
        (KIND,),
    ),
    Case(
        "map-value-changed",
        proto("message P { map<string, int32> a = 1; }"),
        proto("message P { map<string, string> a = 1; }"),
        (SCALAR,),
        (SCALAR,),
    ),
    Case(
        "field-names-other-message",
        proto("message P { Q a = 1; }\nmessage Q {}\nmessage R {}"),
        proto("message P { R a = 1; }\nmessage Q {}\nmessage R {}"),
        (NAMED,),
        (NAMED,),
    ),
    Case(
        "referenced-message-changed-incompatibly",
        proto("message P { Q a = 1; }\nmessage Q { int32 x = 1; }"),
        proto("message P { Q a = 1; }\nmessage Q { string x = 1; }"),
        (SCALAR, NAMED),
        (SCALAR, NAMED),
    ),
    Case(
        "remove-message", proto("message P {}\nmessage Q {}"), proto("message P {}"), ("MESSAGE_REMOVED",), ()
    ),
    Case(
        "remove-nested-message",
        proto("message P { message N {} }"),
        proto("message P {}"),
        ("MESSAGE_REMOVED",),
        (),
    ),
    Case(
        "reorder-messages", proto("message P {}\nmessage Q {}"), proto("message Q {}\nmessage P {}"), (), ()
    ),
    Case(
        "change-package", BASE, BASE.replace("game.v1", "game.v2"), ("PACKAGE_CHANGED",), ("PACKAGE_CHANGED",)
    ),
    Case(
        "enum-values-added-and-removed",
        proto("message P { enum E { A = 0; B = 1; } E e = 1; }"),
        proto("message P { enum E { A = 0; C = 2; } E e = 1; }"),
        (),
        (),
    ),
    Case(
        "singular-int-to-repeated",
        proto("message P { int32 a = 1; }"),
        proto("message P { repeated int32 a = 1; }"),
        ("FIELD_NUMERIC_LABEL_CHANGED",),
        ("FIELD_NUMERIC_LABEL_CHANGED",),
    ),
    Case(
        "singular-string-to-repeated",
        proto("message P { string a = 1; }"),
        proto("message P { repeated string a = 1; }"),
        (),
        (),
    ),
    Case(
        "proto3-optional-added",
        proto("message P { int32 a = 1; }"),
        proto("message P { optional int32 a = 1; }"),
        (),
        (),
    ),
    Case(
        "required-field-added",
        proto("message P { optional int32 a = 1; }", syntax="proto2"),
        proto("message P { optional int32 a = 1; required int32 b = 2; }", syntax="proto2"),
        ("REQUIRED_FIELD_ADDED",),
        ("REQUIRED_FIELD_REMOVED",),
    ),
    Case(
        "oneof-added-around-one-field",
        proto("message P { int32 a = 1; int32 b = 2; }"),
        proto("message P { oneof o { int32 a = 1; } int32 b = 2; }"),
        (),
        (),
    ),
    Case(
        "two-fields-moved-into-oneof",
        proto("message P { int32 a = 1; int32 b = 2; }"),
        proto("message P { oneof o { int32 a = 1; int32 b = 2; } }"),
        ("MULTIPLE_FIELDS_MOVED_TO_ONEOF",),
        (),
    ),
    Case(
        "field-moved-into-existing-oneof",
        proto("message P { int32 a = 1; oneof o { int32 b = 2; } }"),
        proto("message P { oneof o { int32 a = 1; int32 b = 2; } }"),
        ("FIELD_MOVED_TO_EXISTING_ONEOF",),
        (),
    ),
    Case(
        "oneof-field-added",
        proto("message P { oneof o { int32 a = 1; } }"),
        proto("message P { oneof o { int32 a = 1; string b = 2; } }"),
        (),
        ("ONEOF_FIELD_REMOVED",),
    ),
    Case(
        "recursive-message",
        proto("message Node { Node next = 1; int32 v = 2; }"),
        proto("message Node { Node next = 1; int32 v = 2; string label = 3; }"),
        (),
        (),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_protobuf_rule(case: Case) -> None:
    assert_both_directions("PROTOBUF", case)


def test_message_names_path_field_and_types() -> None:
    old, new = (
        parse_schema("PROTOBUF", BASE),
        parse_schema("PROTOBUF", proto("message Purchase { string player = 1; string cents = 2; }")),
    )
    [message] = check_compatibility("BACKWARD", new, [old])
    assert message.startswith("FIELD_SCALAR_KIND_CHANGED at #/Purchase/2: field 'cents' has type int64")
    assert "string in the new schema" in message


def test_imported_messages_are_compared_through_references() -> None:
    def common(field_type: str) -> dict[str, str]:
        return {
            "game/common.proto": proto(f"message Player {{ {field_type} id = 1; }}", package="game.common")
        }

    schema = proto('import "game/common.proto";\nmessage Kill { game.common.Player killer = 1; }')
    old = parse_schema("PROTOBUF", schema, common("string"))
    assert check_compatibility("FULL", parse_schema("PROTOBUF", schema, common("bytes")), [old]) == []
    messages = check_compatibility("BACKWARD", parse_schema("PROTOBUF", schema, common("int64")), [old])
    assert [m.split(" ", 1)[0] for m in messages] == ["FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"]
    assert messages[0].startswith("FIELD_SCALAR_KIND_CHANGED at #/Player/1: field 'id' has type string")
    assert messages[1].startswith("FIELD_NAMED_TYPE_CHANGED at #/Kill/1: message type 'Player'")

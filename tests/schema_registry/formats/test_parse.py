"""parse_schema: valid schemas of each type parse, invalid ones raise InvalidSchemaError saying why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schema_registry.formats import (
    AvroSchema,
    InvalidSchemaError,
    JsonSchema,
    ProtobufSchema,
    SchemaType,
    parse_schema,
)
from schema_registry.formats.protobuf import protoc_errors
from schema_registry.formats.protobuf_options import strip_options

RECORD = {"type": "record", "name": "Kill", "namespace": "game", "fields": [{"name": "id", "type": "long"}]}


def avro(doc: object) -> str:
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("schema_type", "expected"),
    [
        (None, AvroSchema),
        ("", AvroSchema),
        ("AVRO", AvroSchema),
        ("avro", AvroSchema),
        (SchemaType.AVRO, AvroSchema),
    ],
)
def test_missing_or_named_type_means_avro(schema_type: str | None, expected: type) -> None:
    parsed = parse_schema(schema_type, avro(RECORD))
    assert isinstance(parsed, expected)
    assert parsed.schema_type is SchemaType.AVRO
    assert parsed.raw == avro(RECORD)


def test_unknown_schema_type_is_invalid() -> None:
    with pytest.raises(InvalidSchemaError, match="unknown schema type 'XML'"):
        parse_schema("XML", "<a/>")


# ---------------------------------------------------------------- Avro


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param("string", id="primitive"),
        pytest.param(["null", "string"], id="union"),
        pytest.param(RECORD, id="record"),
        pytest.param(
            {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"], "default": "RED"}, id="enum"
        ),
        pytest.param({"type": "fixed", "name": "Hash", "size": 16}, id="fixed"),
        pytest.param({"type": "array", "items": {"type": "map", "values": "int"}}, id="array-of-maps"),
        pytest.param({"type": "int", "logicalType": "date"}, id="logical-type"),
        pytest.param(
            {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
            },
            id="recursive",
        ),
    ],
)
def test_valid_avro(doc: object) -> None:
    parsed = parse_schema("AVRO", avro(doc))
    assert json.loads(parsed.canonical) is not None
    assert parse_schema("AVRO", parsed.normalized()) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param(avro("strin"), "unknown type 'strin'", id="unknown-primitive"),
        pytest.param(avro({"type": "record", "name": "R"}), "'fields'", id="record-without-fields"),
        pytest.param(
            avro(
                {
                    "type": "record",
                    "name": "R",
                    "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}],
                }
            ),
            "duplicate field name 'a' at /fields/1/name",
            id="duplicate-field",
        ),
        pytest.param(
            avro({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}),
            "Default value",
            id="bad-default",
        ),
        pytest.param(
            avro({"type": "record", "name": "1R", "fields": []}), "invalid name '1R'", id="bad-name"
        ),
        pytest.param(avro(["int", "int"]), "duplicate union branch 'int'", id="duplicate-branch"),
        pytest.param(avro(["int", ["null"]]), "may not directly contain another union", id="nested-union"),
        pytest.param(
            avro({"type": "enum", "name": "E", "symbols": ["A", "A"]}), "unique", id="duplicate-symbol"
        ),
        pytest.param(
            avro({"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}),
            "not one of the symbols",
            id="enum-default",
        ),
        pytest.param(avro({"type": "fixed", "name": "F"}), "size", id="fixed-without-size"),
        pytest.param(avro({"type": "array"}), "missing 'items'", id="array-without-items"),
        pytest.param(avro(17), "a type must be", id="number"),
        pytest.param(
            avro(
                {
                    "type": "record",
                    "name": "R",
                    "fields": [{"name": "a", "type": {"type": "fixed", "name": "R", "size": 1}}],
                }
            ),
            "defined twice",
            id="redefined-name",
        ),
    ],
)
def test_invalid_avro(text: str, reason: str) -> None:
    with pytest.raises(InvalidSchemaError, match=reason.replace("(", r"\(")):
        parse_schema("AVRO", text)


def test_avro_canonical_ignores_whitespace_key_order_and_namespace_spelling() -> None:
    a = parse_schema("AVRO", avro(RECORD))
    b = parse_schema(
        "AVRO",
        '{ "fields": [ {"type": {"type": "long"}, "name": "id"} ],\n "name": "game.Kill", "type": "record" }',
    )
    assert a == b
    assert a.canonical == '{"name":"game.Kill","type":"record","fields":[{"name":"id","type":"long"}]}'


def test_avro_canonical_keeps_defaults_and_aliases() -> None:
    with_default = {**RECORD, "fields": [{"name": "id", "type": "long", "default": 0, "aliases": ["ident"]}]}
    assert parse_schema("AVRO", avro(with_default)) != parse_schema("AVRO", avro(RECORD))
    assert '"default":0' in parse_schema("AVRO", avro(with_default)).canonical


def test_avro_references_define_named_types_in_any_order() -> None:
    refs = {
        "game.Player": avro(
            {"type": "record", "name": "game.Player", "fields": [{"name": "team", "type": "game.Team"}]}
        ),
        "game.Team": avro({"type": "enum", "name": "game.Team", "symbols": ["RED", "BLUE"]}),
    }
    schema = avro(
        {"type": "record", "name": "game.Kill", "fields": [{"name": "killer", "type": "game.Player"}]}
    )
    parsed = parse_schema("AVRO", schema, refs)
    assert isinstance(parsed, AvroSchema)
    assert set(parsed.named) == {"game.Player", "game.Team", "game.Kill"}
    with pytest.raises(InvalidSchemaError, match=re.escape("unknown type 'game.Player'")):
        parse_schema("AVRO", schema)


# ---------------------------------------------------------------- Protobuf

PROTO = """
syntax = "proto3";
package game.v1;
import "google/protobuf/timestamp.proto";

message Purchase {
  string player_id = 1;
  int64 amount_cents = 2;
  google.protobuf.Timestamp at = 3;
  map<string, string> tags = 4;
  oneof payment { string card = 5; string voucher = 6; }
  enum Store { STORE_UNSPECIFIED = 0; STEAM = 1; }
  Store store = 7;
}
"""


def test_valid_protobuf_with_well_known_import() -> None:
    parsed = parse_schema("PROTOBUF", PROTO)
    assert isinstance(parsed, ProtobufSchema)
    assert parsed.file.package == "game.v1"
    assert [m for m in parsed.file.message_types_by_name] == ["Purchase"]
    assert parsed.file.message_types_by_name["Purchase"].fields_by_name["at"].message_type.full_name == (
        "google.protobuf.Timestamp"
    )


def test_protobuf_canonical_ignores_comments_and_layout() -> None:
    spaced = "// a comment\n" + PROTO.replace("  ", "      ").replace("\n\n", "\n/* block */\n\n")
    assert parse_schema("PROTOBUF", spaced) == parse_schema("PROTOBUF", PROTO)
    renamed = PROTO.replace("amount_cents", "amount")
    assert parse_schema("PROTOBUF", renamed) != parse_schema("PROTOBUF", PROTO)


def test_protobuf_references_are_import_paths() -> None:
    common = 'syntax = "proto3";\npackage game.common;\nmessage Player { string id = 1; }\n'
    schema = (
        'syntax = "proto3";\nimport "game/common.proto";\nmessage Kill { game.common.Player killer = 1; }\n'
    )
    parsed = parse_schema("PROTOBUF", schema, {"game/common.proto": common})
    assert isinstance(parsed, ProtobufSchema)
    kill = parsed.file.message_types_by_name["Kill"]
    assert kill.fields_by_name["killer"].message_type.full_name == "game.common.Player"
    with pytest.raises(InvalidSchemaError, match=re.escape("game/common.proto")):
        parse_schema("PROTOBUF", schema)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            'syntax = "proto3";\nmessage M { strin x = 1; }', '"strin" is not defined', id="unknown-type"
        ),
        pytest.param(
            'syntax = "proto3";\nmessage M { string x = 1; string y = 1; }',
            "has already been used",
            id="dup-number",
        ),
        pytest.param('syntax = "proto3";\nmessage M { string x = 1 }', "Expected", id="syntax-error"),
        pytest.param(
            'syntax = "proto3";\nmessage M { required string x = 1; }', "Required", id="proto3-required"
        ),
        pytest.param("{}", "Expected", id="json-is-not-proto"),
    ],
)
def test_invalid_protobuf_reports_protoc_message(text: str, reason: str) -> None:
    with pytest.raises(InvalidSchemaError, match=reason) as caught:
        parse_schema("PROTOBUF", text)
    assert "schema.proto:" in str(caught.value)


@pytest.mark.parametrize("name", ["../escape.proto", "/abs.proto", "", "schema.proto"])
def test_protobuf_reference_names_must_be_relative_import_paths(name: str) -> None:
    with pytest.raises(InvalidSchemaError, match="not a usable import path"):
        parse_schema("PROTOBUF", 'syntax = "proto3";', {name: 'syntax = "proto3";'})


# ---------------------------------------------------------------- JSON Schema

SESSION = {
    "type": "object",
    "properties": {"player": {"type": "string"}, "ping": {"$ref": "#/definitions/ms"}},
    "required": ["player"],
    "definitions": {"ms": {"type": "integer", "minimum": 0}},
}


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(SESSION, id="draft7-default"),
        pytest.param(True, id="boolean-schema"),
        pytest.param(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{}]}, id="2020-12"
        ),
        pytest.param({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}, id="draft4"),
        pytest.param({"$ref": "http://json-schema.org/draft-07/schema#"}, id="ref-to-metaschema"),
    ],
)
def test_valid_json_schema(doc: object) -> None:
    parsed = parse_schema("JSON", json.dumps(doc))
    assert isinstance(parsed, JsonSchema)
    assert parse_schema("JSON", parsed.normalized()) == parsed


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        pytest.param({"type": "strin"}, "at /type", id="bad-type"),
        pytest.param({"properties": {"a": {"minimum": "3"}}}, "at /properties/a/minimum", id="bad-minimum"),
        pytest.param({"$schema": "http://example.com/nope"}, "unknown '\\$schema'", id="unknown-dialect"),
        pytest.param({"$ref": "#/definitions/missing"}, "unresolvable \\$ref", id="dangling-local-ref"),
        pytest.param({"$ref": "other.json"}, "unresolvable \\$ref 'other.json'", id="missing-reference"),
        pytest.param([1, 2], "object or a boolean", id="array"),
        pytest.param(
            {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": 3},
            "at /exclusiveMinimum",
            id="draft4-rules-honoured",
        ),
    ],
)
def test_invalid_json_schema(doc: object, reason: str) -> None:
    with pytest.raises(InvalidSchemaError, match=reason):
        parse_schema("JSON", json.dumps(doc))


def test_json_canonical_sorts_keys() -> None:
    a = parse_schema("JSON", '{"type": "object", "required": ["a"]}')
    b = parse_schema("JSON", '{"required":["a"],"type":"object"}')
    assert a == b and a.canonical == '{"required":["a"],"type":"object"}'


def test_json_references_resolve_by_name() -> None:
    refs = {"player.json": json.dumps({"type": "object", "properties": {"id": {"type": "string"}}})}
    parsed = parse_schema("JSON", json.dumps({"properties": {"player": {"$ref": "player.json"}}}), refs)
    assert isinstance(parsed, JsonSchema)
    assert parsed.resolver.lookup("player.json").contents["properties"]["id"] == {"type": "string"}


PROTO2_FEATURES = r"""
syntax = "proto2";
package a.b;
option java_package = "x.y";
message M {
  optional int32 a = 1 [default = 5, deprecated = true];
  required string s = 2 [default = "q\"x"];
  repeated int32 p = 3 [packed = true];
  map<string, M> children = 6;
  extensions 100 to max;
  reserved 7, 9 to 11;
  reserved "zz";
  oneof o { bytes b = 4 [default = "\001"]; }
  enum E { option allow_alias = true; X = 0; Y = 0; reserved 5 to 6; }
  optional E e = 5 [default = Y];
  message Inner { map<int32, string> m = 1; }
}
service S { rpc Go(M) returns (stream M); }
"""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(PROTO, id="proto3"),
        pytest.param(PROTO2_FEATURES, id="proto2-options-defaults-reserved-service"),
        pytest.param(
            'syntax = "proto3";\nmessage P { optional int32 a = 1; repeated string b = 2; }', id="optional"
        ),
    ],
)
def test_protobuf_normalized_is_a_reprint_of_the_same_schema(text: str) -> None:
    parsed = parse_schema("PROTOBUF", text)
    normalized = parsed.normalized()
    assert normalized != text and "//" not in normalized
    assert parse_schema("PROTOBUF", normalized) == parsed


def test_protobuf_normalized_keeps_raw_text_for_unprinted_features() -> None:
    text = 'syntax = "proto2";\nmessage P { optional group G = 1 { optional int32 x = 2; } }\n'
    parsed = parse_schema("PROTOBUF", text)
    assert parsed.normalized() == text == parsed.canonical_string()


# ---------------------------------------------------------------- canonical strings (issue 15)

EXTENSIONS_PROTO = """syntax = "proto3";
package acme.meta;
import "google/protobuf/descriptor.proto";
message Sensitivity { string level = 1; repeated string owners = 2; map<string, string> params = 3; }
extend google.protobuf.FieldOptions { Sensitivity sensitivity = 50101; repeated string tags = 50103; }
extend google.protobuf.MessageOptions { bool audited = 50102; }
message Tagged {
  option (audited) = true;
  oneof contact { string phone = 2; }
  string email = 1 [(sensitivity) = { level: "high" owners: ["a"] params { key: "k" value: "v" } },
                    (tags) = "x", (tags) = "y", deprecated = true];
}
service Lookup { rpc Find (Sensitivity) returns (stream Sensitivity); }
"""


def test_protobuf_canonical_string_is_confluents_layout_with_extensions_and_custom_options() -> None:
    parsed = parse_schema("PROTOBUF", EXTENSIONS_PROTO)
    printed = parsed.canonical_string()
    assert printed.startswith(
        'syntax = "proto3";\npackage acme.meta;\n\nimport "google/protobuf/descriptor.proto";\n\n'
    )
    assert "extend .google.protobuf.FieldOptions {\n  .acme.meta.Sensitivity sensitivity = 50101;" in printed
    assert "option (.acme.meta.audited) = true;" in printed
    assert "  rpc Find (.acme.meta.Sensitivity) returns (stream .acme.meta.Sensitivity);" in printed
    # oneof members come after the other fields, as Confluent prints them: still the same schema
    assert printed.index("string email = 1") < printed.index("oneof contact")
    assert parse_schema("PROTOBUF", printed) == parsed
    assert parse_schema("PROTOBUF", parsed.normalized()) == parsed


def test_protoc_errors_keep_only_its_error_lines() -> None:
    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1700000000.000000 1 config.cc:230] gRPC experiments enabled\n"
        '/tmp/refinery-proto-x/src/schema.proto:1:1: Expected top-level statement (e.g. "message").\n'
        "schema.proto:2:1: warning: Import x.proto is unused.\n"
    )
    root = Path("/tmp/refinery-proto-x/src")
    assert protoc_errors(noise, root) == 'schema.proto:1:1: Expected top-level statement (e.g. "message").'


def test_undefined_custom_options_are_cut_out_for_protoc_only() -> None:
    text = (
        'syntax = "proto3";\noption (file_opt) = { a: 1 b: "x;}" };\nmessage A {\n\toption (m).x = 5;\n'
        '  string a = 1 [deprecated = true, (f) = "x", (g) = 3];\n  enum E { Z = 0 [(ev) = true]; }\n}\n'
    )
    stripped = strip_options(text, [(2, 8), (4, 16), (5, 36)])
    assert stripped is not None and "(file_opt)" not in stripped and "(m)" not in stripped
    assert "(f)" not in stripped and "(g) = 3" in stripped and "deprecated = true" in stripped
    parsed = parse_schema("PROTOBUF", text)
    assert isinstance(parsed, ProtobufSchema) and parsed.ignored_options
    assert parsed.canonical_string() == text  # stored as sent, as Confluent keeps them
    assert parsed.file.message_types_by_name["A"].fields_by_name["a"].GetOptions().deprecated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"fields": [{"type": "string", "name": "a"}], "name": "R", "type": "record"}',
            '{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}',
            id="key-order",
        ),
        pytest.param(
            '{"type":"record","name":"x.R","fields":[{"name":"e","type":{"type":"enum","name":"E",'
            '"symbols":["A"],"aliases":["x.Old"]}},{"name":"f","type":"E","order":"descending"},'
            '{"name":"g","type":{"type":"record","name":"y.S","fields":[{"name":"h","type":"x.E"}]}}]}',
            '{"type":"record","name":"R","namespace":"x","fields":[{"name":"e","type":{"type":"enum",'
            '"name":"E","symbols":["A"],"aliases":["Old"]}},{"name":"f","type":"E","order":"descending"},'
            '{"name":"g","type":{"type":"record","name":"S","namespace":"y","fields":[{"name":"h",'
            '"type":"x.E"}]}}]}',
            id="namespaces-and-names",
        ),
        pytest.param(
            '{"type":"array","items":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2,"doc":"x"}}',
            '{"type":"array","items":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}',
            id="primitive-properties",
        ),
    ],
)
def test_avro_canonical_string_is_avro_javas_to_string(text: str, expected: str) -> None:
    assert parse_schema("AVRO", text).canonical_string() == expected


def test_bundled_import_directories_of_gone_processes_are_swept(tmp_path: Path) -> None:
    """A registry killed with SIGKILL never runs its exit hook: the next one removes what it left, and
    never a live process's directory or anything not named like one."""
    from schema_registry.formats.protobuf import BUNDLED_PREFIX, sweep_bundled_imports

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)  # fmt: skip
    gone = tmp_path / f"{BUNDLED_PREFIX}{int(finished.stdout)}-abc"
    alive = tmp_path / f"{BUNDLED_PREFIX}{os.getpid()}-def"
    parent = tmp_path / f"{BUNDLED_PREFIX}{os.getppid()}-ghi"
    unnamed = tmp_path / f"{BUNDLED_PREFIX}xyz"  # the old naming: its owner cannot be told
    for path in (gone, alive, parent, unnamed):
        (path / "google" / "type").mkdir(parents=True)
    assert sweep_bundled_imports(str(tmp_path)) == 1
    assert not gone.exists() and alive.exists() and parent.exists() and unnamed.exists()

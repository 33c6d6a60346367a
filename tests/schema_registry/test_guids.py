"""Schema GUIDs are Confluent's: the UUID spelling of an MD5 over the schema, its references, metadata
and rules (`Schema.updateHash`). Checked against that layout, built by hand."""

from __future__ import annotations

import hashlib
import uuid

from schema_registry.contracts import parse_metadata, parse_rule_set
from schema_registry.guids import schema_guid
from schema_registry.records import Reference, SchemaValue

SCHEMA = '{"type":"string"}'


def expected(*parts: bytes) -> str:
    return str(uuid.UUID(bytes=hashlib.md5(b"".join(parts)).digest()))


def test_guid_covers_schema_references_metadata_and_rules() -> None:
    plain = SchemaValue("s", 1, 1, SCHEMA)
    assert schema_guid(plain) == expected(SCHEMA.encode())
    refs = SchemaValue("s", 1, 1, SCHEMA, references=(Reference("a.B", "b", 2),))
    assert schema_guid(refs) == expected(SCHEMA.encode(), b"a.B", b"b", b"\x00\x00\x00\x02")
    metadata = parse_metadata(
        {"properties": {"z": "1", "a": "2"}, "tags": {"f": ["y", "x"]}, "sensitive": ["s"]}
    )
    with_metadata = SchemaValue("s", 1, 1, SCHEMA, metadata=metadata)
    assert schema_guid(with_metadata) == expected(SCHEMA.encode(), b"\x01", b"f", b"x", b"y", b"a2z1", b"s")
    rules = parse_rule_set(
        {"domainRules": [{"name": "r", "kind": "CONDITION", "mode": "WRITE", "expr": "e"}]}
    )
    with_rules = SchemaValue("s", 1, 1, SCHEMA, rule_set=rules)
    assert schema_guid(with_rules) == expected(SCHEMA.encode(), b"\x01", b"r", b"CONDITION", b"WRITE", b"e")

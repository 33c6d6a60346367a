"""Schema formats (Avro, Protobuf, JSON Schema) and their compatibility rules, with no I/O.

`parse_schema` turns a schema text (plus the texts of the schemas it references) into a ParsedSchema
or raises InvalidSchemaError saying what is wrong; `check_compatibility` applies a compatibility level
to a new schema and the registered versions and returns the incompatibilities it found.
"""

from __future__ import annotations

from collections.abc import Mapping

from schema_registry.formats.avro import AvroSchema, parse_avro
from schema_registry.formats.compat import check_compatibility, compatibility_level
from schema_registry.formats.jsonschema import JsonSchema, parse_json_schema
from schema_registry.formats.protobuf import ProtobufSchema, parse_protobuf
from schema_registry.formats.types import (
    CompatibilityLevel,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    ParsedSchema,
    SchemaType,
)

__all__ = [
    "AvroSchema",
    "CompatibilityLevel",
    "InvalidCompatibilityLevelError",
    "InvalidSchemaError",
    "JsonSchema",
    "ParsedSchema",
    "ProtobufSchema",
    "SchemaType",
    "check_compatibility",
    "compatibility_level",
    "parse_schema",
    "schema_type_of",
]

_PARSERS = {
    SchemaType.AVRO: parse_avro,
    SchemaType.PROTOBUF: parse_protobuf,
    SchemaType.JSON: parse_json_schema,
}


def schema_type_of(schema_type: str | SchemaType | None) -> SchemaType:
    """The schema type named by a request; missing or empty means AVRO, as in Confluent's API."""
    if not schema_type:
        return SchemaType.AVRO
    try:
        return SchemaType(str(schema_type).upper())
    except ValueError:
        known = ", ".join(t.value for t in SchemaType)
        raise InvalidSchemaError(f"unknown schema type {schema_type!r} (expected one of {known})") from None


def parse_schema(
    schema_type: str | SchemaType | None, schema_str: str, references: Mapping[str, str] | None = None
) -> ParsedSchema:
    """Parse and validate a schema; `references` maps each reference name to the referenced text."""
    return _PARSERS[schema_type_of(schema_type)](schema_str, references)

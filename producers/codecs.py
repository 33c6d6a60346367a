"""Validate and serialize payloads by their registered schema, and decode them back.

The envelope carries the bare serialized payload (no Confluent magic byte, schema id or message-index
prefix: the schema id travels in the envelope metadata and headers), which is why we do not use
confluent-kafka's Avro/Protobuf/JSON serializers here: they always write that prefix.

| payload given               | registered type | envelope format | checks                               |
| --------------------------- | --------------- | --------------- | ------------------------------------ |
| dict                        | AVRO            | avro            | fastavro validation, no extra fields |
| dict                        | JSON            | json            | jsonschema validation                |
| protobuf message (or dict)  | PROTOBUF        | protobuf        | same message type and field layout   |
| bytes (bring your own)      | any             | raw             | none: already in the registered form |

An Avro dict is written by the compiled encoder (`producers.avro_fast`) when it can vouch that fastavro
would accept it and write the same bytes, else validated and written by fastavro itself.
A dict for a Protobuf schema becomes a message through `producers.protobuf_fast` (the constructor, in C)
when every value has its field's plain Python type, else through `json_format.ParseDict`.

Every validation failure is a PayloadValidationError whose `field` names the offending field.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro
import jsonschema
from fastavro._validate_common import ValidationError as AvroValidationError
from fastavro.validation import validate as avro_validate
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from jsonschema.exceptions import best_match

from producers.errors import PayloadDecodeError, PayloadValidationError
from producers.protobuf_fast import fast_message
from producers.protobuf_schema import field_signature
from producers.schemas import ResolvedSchema

RAW = "raw"


def encode_payload(payload: Any, schema: ResolvedSchema) -> tuple[str, bytes]:
    """(envelope payload format, bytes) for `payload` written with `schema`; raise on invalid input."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return RAW, bytes(payload)
    if isinstance(payload, Message):
        return "protobuf", _encode_protobuf(payload, schema)
    if isinstance(payload, Mapping):
        if schema.schema_type == "AVRO":
            return "avro", _encode_avro(payload, schema)
        if schema.schema_type == "JSON":
            return "json", _encode_json(payload, schema)
        return "protobuf", _encode_protobuf(_protobuf_from_dict(payload, schema), schema)
    raise PayloadValidationError(
        f"payload of type {type(payload).__name__} cannot be sent: give a dict (Avro/JSON/Protobuf schema), "
        "a Protobuf message, or bytes already in the registered format"
    )


def _encode_avro(payload: Mapping[str, Any], schema: ResolvedSchema) -> bytes:
    parsed = schema.avro
    known = schema.avro_fields
    if known is not None and not known.issuperset(payload):
        unknown = sorted(k for k in payload if k not in known)
        raise PayloadValidationError(
            f"payload field {unknown[0]!r} is not in Avro schema {parsed['name']} "
            f"(schema id {schema.schema_id})",
            field=unknown[0],
        )
    encoder = schema.avro_encoder
    if encoder is not None:
        data = encoder(payload)  # bytes only where fastavro would accept and write the same
        if data is not None:
            return data
    fast_check = schema.avro_fast_check
    try:
        if fast_check is None or not fast_check(payload):  # fast_check True: fastavro would agree
            avro_validate(payload, parsed, raise_errors=True)
    except AvroValidationError as exc:
        first = exc.errors[0]
        raise PayloadValidationError(
            f"payload does not match Avro schema id {schema.schema_id}: field {first.field}: {first}",
            field=first.field,
        ) from None
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, payload)
    return out.getvalue()


def _json_error_field(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [p for p in error.validator_value if p not in error.instance]
        path += missing[:1]
    return ".".join(path) or "(payload)"


def _encode_json(payload: Mapping[str, Any], schema: ResolvedSchema) -> bytes:
    fast_check = schema.json_fast_check
    if fast_check is None or not fast_check(payload):  # fast_check True: jsonschema would agree
        validator = schema.json_validator
        # is_valid stops at the first error; best_match looks at all of them, so only when there is one.
        error = None if validator.is_valid(payload) else best_match(validator.iter_errors(payload))
        if error is not None:
            name = _json_error_field(error)
            raise PayloadValidationError(
                f"payload does not match JSON schema id {schema.schema_id}: field {name}: {error.message}",
                field=name,
            )
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadValidationError(f"payload is not JSON-serializable: {exc}") from None


def _protobuf_from_dict(payload: Mapping[str, Any], schema: ResolvedSchema) -> Message:
    assert schema.proto is not None
    message = fast_message(payload, schema.proto.message_class)  # same message, in C (protobuf_fast)
    if message is not None:
        return message
    try:
        return json_format.ParseDict(dict(payload), schema.proto.message_class())
    except json_format.ParseError as exc:
        raise PayloadValidationError(
            f"payload does not match Protobuf schema id {schema.schema_id}: {exc}"
        ) from None


def _encode_protobuf(message: Message, schema: ResolvedSchema) -> bytes:
    if schema.proto is None:
        raise PayloadValidationError(
            f"a Protobuf message was given but schema id {schema.schema_id} is {schema.schema_type}"
        )
    expected = schema.proto.message_class.DESCRIPTOR
    given = message.DESCRIPTOR
    if given.full_name != expected.full_name:
        raise PayloadValidationError(
            f"Protobuf message type {given.full_name} does not match the registered "
            f"type {expected.full_name} (schema id {schema.schema_id})",
            field=given.full_name,
        )
    if given is not expected:
        differing = _first_layout_difference(given, expected)
        if differing is not None:
            raise PayloadValidationError(
                f"Protobuf message {given.full_name} differs from the registered schema "
                f"id {schema.schema_id} in field {differing!r}",
                field=differing,
            )
    if not message.IsInitialized():
        missing = message.FindInitializationErrors()
        raise PayloadValidationError(
            f"Protobuf message lacks required field {missing[0]!r}", field=missing[0]
        )
    return message.SerializeToString()


@functools.lru_cache(maxsize=256)
def _first_layout_difference(given: Descriptor, expected: Descriptor) -> str | None:
    """The first field on which two message types' wire layouts differ, or None (cached: per record,
    the caller's message class is usually another copy of the registered one)."""
    ours, theirs = field_signature(given), field_signature(expected)
    # Report a field of the caller's message first (the likelier mistake), then a missing one.
    diff = [n for n, v in sorted(ours.items()) if theirs.get(n) != v]
    diff += [n for n in sorted(theirs) if n not in ours]
    return diff[0] if diff else None


def decode_payload(data: bytes, payload_format: str, schema: ResolvedSchema) -> Any:
    """The payload as Python data: dict (avro/json), a Protobuf message, or the bytes themselves (raw)."""
    try:
        if payload_format == RAW:
            return data
        if payload_format == "avro" and schema.avro is not None:
            return fastavro.schemaless_reader(io.BytesIO(data), schema.avro, None)
        if payload_format == "json":
            return json.loads(data)
        if payload_format == "protobuf" and schema.proto is not None:
            return schema.proto.message_class.FromString(data)
    except (ValueError, EOFError, IndexError, TypeError, DecodeError) as exc:
        raise PayloadDecodeError(
            f"{payload_format} payload does not decode with schema id {schema.schema_id}: {exc}"
        ) from None
    raise PayloadDecodeError(
        f"payload format {payload_format!r} does not fit schema id {schema.schema_id} ({schema.schema_type})"
    )

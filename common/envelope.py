"""Build, encode and decode Refinery envelopes (`proto/envelope.proto`).

The metadata fields env, source, title and category become parts of topic names, so they follow the
topic-name component rules (`common.topics`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping

import uuid_utils
from google.protobuf.message import DecodeError

from common.errors import EnvelopeError, TopicNameError
from common.topics import validate_component
from proto.envelope_pb2 import Envelope, Metadata, PayloadFormat

FORMAT_BY_NAME: dict[str, int] = {
    "avro": PayloadFormat.PAYLOAD_FORMAT_AVRO,
    "protobuf": PayloadFormat.PAYLOAD_FORMAT_PROTOBUF,
    "json": PayloadFormat.PAYLOAD_FORMAT_JSON,
    "raw": PayloadFormat.PAYLOAD_FORMAT_RAW,
}
NAME_BY_FORMAT: dict[int, str] = {v: k for k, v in FORMAT_BY_NAME.items()}
ROUTING_COMPONENTS = ("env", "source", "title", "category")


def new_message_id() -> str:
    """A fresh, time-sortable, globally unique message id (UUIDv7, canonical text)."""
    return str(uuid_utils.uuid7())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_code(name: str) -> int:
    try:
        return FORMAT_BY_NAME[name]
    except KeyError:
        raise EnvelopeError(
            f"unknown payload format {name!r}; use one of {', '.join(FORMAT_BY_NAME)}"
        ) from None


def validate_metadata(md: Metadata) -> Metadata:
    """Raise EnvelopeError naming the first missing or invalid metadata field."""
    if not md.message_id:
        raise EnvelopeError("envelope metadata has no message_id")
    for name in ROUTING_COMPONENTS:
        try:
            validate_component(name, getattr(md, name))
        except TopicNameError as exc:
            raise EnvelopeError(f"envelope metadata: {exc}") from None
    if md.version < 1:
        raise EnvelopeError(f"envelope metadata: version must be >= 1, got {md.version}")
    if md.schema_id < 1:
        raise EnvelopeError(f"envelope metadata: schema_id must be >= 1, got {md.schema_id}")
    if md.payload_format not in NAME_BY_FORMAT:
        raise EnvelopeError(f"envelope metadata: payload_format {md.payload_format} is not set or unknown")
    return md


def make_envelope(
    *,
    env: str,
    source: str,
    title: str,
    category: str,
    version: int,
    schema_id: int,
    payload_format: str,
    payload: bytes,
    producer: str,
    attributes: Mapping[str, str] | None = None,
    message_id: str | None = None,
    produced_at_ms: int | None = None,
) -> Envelope:
    """A validated envelope with a fresh message id and timestamp unless given."""
    message_id = message_id or new_message_id()
    prototype = _metadata_prototype(
        env, source, title, category, version, schema_id, payload_format, producer
    )
    envelope = Envelope(payload=payload)
    md = envelope.metadata
    md.CopyFrom(prototype)  # with upb, cheaper than passing every field to Metadata(...)
    md.message_id = message_id
    md.produced_at_ms = now_ms() if produced_at_ms is None else produced_at_ms
    if attributes:
        fields = md.attributes
        for name, value in attributes.items():  # half the cost of upb's update (a Python mixin)
            fields[name] = value
    return envelope


@functools.lru_cache(maxsize=4096, typed=True)
def _metadata_prototype(
    env: str,
    source: str,
    title: str,
    category: str,
    version: int,
    schema_id: int,
    payload_format: str,
    producer: str,
) -> Metadata:
    """The validated per-record-constant part of the metadata. Cached: a producer sends the same few
    (env, source, title, category, version, schema) combinations over and over; a call that raises is
    not cached, so invalid input is refused every time. Callers copy it and never change it."""
    md = Metadata(
        message_id="-",  # validate_metadata wants one; every record sets its own
        env=env,
        source=source,
        title=title,
        category=category,
        version=version,
        schema_id=schema_id,
        payload_format=format_code(payload_format),  # type: ignore[arg-type]
        producer=producer,
    )
    validate_metadata(md)
    md.ClearField("message_id")
    return md


def encode_envelope(envelope: Envelope) -> bytes:
    # deterministic=True keeps map order stable, so equal envelopes give equal bytes.
    return envelope.SerializeToString(deterministic=True)


def envelope_metadata(data: bytes | None) -> Metadata:
    """The metadata of an encoded envelope, checking the protobuf framing only (no field validation,
    the payload stays opaque bytes; the worker's `malformed_envelope` check). EnvelopeError if the
    bytes are not an envelope."""
    if not data:
        raise EnvelopeError("record value is empty; expected a Refinery envelope")
    try:
        envelope = Envelope.FromString(data)
    except DecodeError as exc:
        raise EnvelopeError(f"record value is not a Refinery envelope: {exc}") from None
    if not envelope.HasField("metadata"):
        raise EnvelopeError("envelope has no metadata")
    return envelope.metadata


def envelope_message_id(data: bytes | None) -> str:
    """The message id of an encoded envelope (see `envelope_metadata`)."""
    return envelope_metadata(data).message_id


def decode_envelope(data: bytes | None) -> Envelope:
    """Parse and validate an envelope; every failure is an EnvelopeError with the reason."""
    if not data:
        raise EnvelopeError("record value is empty; expected a Refinery envelope")
    envelope = Envelope()
    try:
        envelope.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise EnvelopeError(f"record value is not a Refinery envelope: {exc}") from None
    if not envelope.HasField("metadata"):
        raise EnvelopeError("envelope has no metadata")
    validate_metadata(envelope.metadata)
    return envelope

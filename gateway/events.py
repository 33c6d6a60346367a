"""Request bodies -> events: decompression with a size cap, then a JSON array, NDJSON or a protobuf
`refinery.gateway.v1.EventBatch` (`proto/gateway.proto`).

One event (JSON form; the protobuf form has the same fields, see the .proto file):

    {"category": "player_killed", "version": 2,          # required
     "payload": {...},                                   # a JSON object, validated by its schema ...
     "payload_base64": "...",                            # ... or bytes already in the registered format
     "id": "0190b7a4-...",                               # client event id, a UUID: the message id
     "time": "2026-11-30T10:00:00.123Z" or 1764496800123,# client time, kept as attribute client_time
     "source": "telemetry",                              # one of the key's sources (default: its only one)
     "key": "m-17",                                      # record key (default: payload match_id/player_id)
     "attributes": {"platform": "pc"},
     "env": "prod", "title": "1234"}                     # optional; must equal the API key's

Errors are `BodyError` (the whole request: malformed, too large, unsupported) or, per event,
`EventRejected` naming the field. Unknown fields are rejected, never ignored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard
from google.protobuf.message import DecodeError

from common.errors import InvalidInputError
from common.headers import format_time
from producers.errors import InvalidRecordError
from producers.producer import checked_message_id
from proto.gateway_pb2 import EventBatch

JSON = "application/json"
NDJSON = "application/x-ndjson"
PROTOBUF = "application/x-protobuf"
CONTENT_TYPES = {
    JSON: JSON,
    NDJSON: NDJSON,
    "application/jsonl": NDJSON,
    PROTOBUF: PROTOBUF,
    "application/protobuf": PROTOBUF,
    "application/vnd.google.protobuf": PROTOBUF,
}
ENCODINGS = ("identity", "gzip", "x-gzip", "zstd")
CLIENT_TIME = "client_time"  # the attribute that carries the client's time
EVENT_FIELDS = frozenset(
    {"category", "version", "payload", "payload_base64", "id", "time", "source", "key", "attributes", "env",
     "title"}
)  # fmt: skip


class BodyError(InvalidInputError):
    """The request body as a whole cannot be used. `status` is the HTTP status, `code` our error code."""

    def __init__(self, status: int, code: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def malformed(message: str) -> BodyError:
    return BodyError(400, 40001, message)


class EventRejected(InvalidInputError):
    """One event is invalid; `field` names the offending field (a dotted path into the event)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class Event:
    """One parsed event (shape checked; not yet validated against its schema)."""

    index: int
    category: str
    version: int
    payload: Any  # a dict (JSON object), bytes (raw) or a Protobuf message's bytes (see `protobuf`)
    id: str | None = None
    source: str | None = None
    key: str | None = None
    attributes: dict[str, str] | None = None
    env: str | None = None
    title: str | None = None
    protobuf: bool = False  # payload is the serialized registered Protobuf message


@dataclass(slots=True)
class ParsedBatch:
    """Events in body order; `rejected` holds those whose shape is wrong, by index."""

    events: list[Event]
    rejected: dict[int, EventRejected]
    size: int  # events in the body (both lists)
    ids: dict[int, str]  # client ids of rejected events, when readable (for the response)


# --- content negotiation and decompression -----------------------------------------------------------
def media_type(content_type: str | None) -> str:
    """The body format for a Content-Type header (415 BodyError if we do not read it)."""
    base = (content_type or JSON).split(";", 1)[0].strip().lower()
    found = CONTENT_TYPES.get(base)
    if found is None:
        raise BodyError(
            415, 41501,
            f"Content-Type {base!r} is not supported: send application/json (an array of events), "
            "application/x-ndjson (one event per line) or application/x-protobuf "
            "(refinery.gateway.v1.EventBatch)",
        )  # fmt: skip
    return found


def check_encoding(content_encoding: str | None) -> str:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ENCODINGS:
        raise BodyError(415, 41502, f"Content-Encoding {encoding!r} is not supported: use gzip, zstd or none")
    return encoding


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decompressed, refusing (413) as soon as it would exceed `limit` bytes: a small gzip or
    zstd bomb is never inflated past the cap."""
    if encoding == "identity":
        return body
    reader: io.BufferedIOBase | Any
    if encoding in ("gzip", "x-gzip"):
        reader = gzip.GzipFile(fileobj=io.BytesIO(body))
        errors: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error)
    else:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
        errors = (zstandard.ZstdError, OSError)
    try:
        data = reader.read(limit + 1)
    except errors as exc:
        raise malformed(f"the body is not valid {encoding} data: {exc}") from None
    if len(data) > limit:
        raise BodyError(
            413, 41303,
            f"the body decompresses to more than {limit:,} bytes (REFINERY_GATEWAY_MAX_DECOMPRESSED_BYTES)",
        )  # fmt: skip
    return data


# --- parsing --------------------------------------------------------------------------------------------
def parse_body(data: bytes, kind: str, max_events: int) -> ParsedBatch:
    if kind == PROTOBUF:
        return _parse_protobuf(data, max_events)
    items: list[Any] | Any
    if kind == NDJSON:
        items = []
        for number, line in enumerate(data.splitlines(), 1):
            if line.strip():
                _check_count(len(items) + 1, max_events)
                items.append(_loads(line, f"line {number}"))
    else:
        items = _loads(data, "the body")
        if not isinstance(items, list):
            raise malformed(f"the body must be a JSON array of events, not a JSON {_json_type(items)}")
        _check_count(len(items), max_events)
    if not items:
        raise malformed("the body holds no events")
    batch = ParsedBatch([], {}, len(items), {})
    for index, item in enumerate(items):
        try:
            batch.events.append(event_from_json(index, item))
        except EventRejected as exc:
            batch.rejected[index] = exc
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                batch.ids[index] = item["id"]
    return batch


def _check_count(count: int, max_events: int) -> None:
    if count > max_events:
        raise BodyError(
            413, 41302,
            f"the body holds more than {max_events:,} events (REFINERY_GATEWAY_MAX_EVENTS); split the batch",
        )  # fmt: skip


def _loads(data: bytes, where: str) -> Any:
    """orjson: a third of the stdlib's time on our bodies; it refuses NaN/Infinity, integers beyond 64
    bits and invalid UTF-8 (the message says which), none of which a payload schema could accept."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"{where} is not valid JSON: {exc}") from None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )


def event_from_json(index: int, item: Any) -> Event:
    if not isinstance(item, dict):
        raise EventRejected(f"an event must be a JSON object, not a {_json_type(item)}", field="(event)")
    if not EVENT_FIELDS.issuperset(item):
        unknown = [k for k in item if k not in EVENT_FIELDS]
        raise EventRejected(
            f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(EVENT_FIELDS))})", field=unknown[0]
        )
    payload: Any
    if "payload" in item:
        if "payload_base64" in item:
            raise EventRejected("give payload or payload_base64, not both", field="payload_base64")
        payload = item["payload"]
        if not isinstance(payload, dict):
            raise EventRejected(
                "payload must be a JSON object (or use payload_base64 for bytes), "
                f"not a {_json_type(payload)}",
                field="payload",
            )
    elif "payload_base64" in item:
        payload = _base64(item["payload_base64"])
    else:
        raise EventRejected("the event has no payload (payload or payload_base64)", field="payload")
    attributes = _attributes(item.get("attributes"))
    client_time = item.get("time")
    if client_time is not None:
        attributes = _with_client_time(attributes, _time_ms(client_time))
    return Event(
        index=index,
        category=_text(item, "category", required=True) or "",
        version=_version(item.get("version")),
        payload=payload,
        id=_event_id(item.get("id")),
        source=_text(item, "source"),
        key=_text(item, "key"),
        attributes=attributes,
        env=_text(item, "env"),
        title=_text(item, "title"),
    )


def _text(item: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise EventRejected(f"the event has no {name}", field=name)
        return None
    if not isinstance(value, str) or not value:
        raise EventRejected(f"{name} must be a non-empty string, not {value!r:.60}", field=name)
    return value


def _version(value: Any) -> int:
    if value is None:
        raise EventRejected("the event has no version", field="version")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EventRejected(f"version must be an integer >= 1, not {value!r:.60}", field="version")
    return value


def _event_id(value: Any) -> str | None:
    """The client's event id in canonical text (the SDK's rule for `message_id=`), None when absent."""
    if value is None or value == "":
        return None
    try:
        return checked_message_id(value)
    except InvalidRecordError:
        raise EventRejected(f"id must be a UUID (e.g. a UUIDv7), not {value!r:.60}", field="id") from None


def _base64(value: Any) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise EventRejected("payload_base64 must be a base64 string", field="payload_base64") from None


def _attributes(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EventRejected("attributes must be an object of strings", field="attributes")
    for name, text in value.items():
        if not name or not isinstance(text, str):
            raise EventRejected(
                f"attribute {name!r}: names and values must be non-empty strings / strings",
                field=f"attributes.{name}",
            )
        if name == CLIENT_TIME:
            raise EventRejected(
                f"attribute {CLIENT_TIME!r} is set by the gateway from the event's time field",
                field=f"attributes.{name}",
            )
    return value


def _time_ms(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return int(parsed.timestamp() * 1000)
    raise EventRejected(
        f"time must be RFC 3339 with a time zone or Unix milliseconds, not {value!r:.60}", field="time"
    )


def _with_client_time(attributes: dict[str, str] | None, ms: int) -> dict[str, str]:
    return {**(attributes or {}), CLIENT_TIME: format_time(ms)}


def _parse_protobuf(data: bytes, max_events: int) -> ParsedBatch:
    try:
        batch = EventBatch.FromString(data)
    except DecodeError as exc:
        raise malformed(f"the body is not a refinery.gateway.v1.EventBatch: {exc}") from None
    _check_count(len(batch.events), max_events)
    if not batch.events:
        raise malformed("the body holds no events")
    out = ParsedBatch([], {}, len(batch.events), {})
    for index, message in enumerate(batch.events):
        try:
            out.events.append(_event_from_proto(index, message))
        except EventRejected as exc:
            out.rejected[index] = exc
            if message.id:
                out.ids[index] = message.id
    return out


def _event_from_proto(index: int, message: Any) -> Event:
    kind = message.WhichOneof("payload")
    payload: Any
    if kind is None:
        raise EventRejected("the event has no payload (json, raw or protobuf)", field="payload")
    if kind == "json":
        payload = _loads_field(message.json, "payload.json")
        if not isinstance(payload, dict):
            raise EventRejected("payload.json must hold a JSON object", field="payload.json")
    else:
        payload = bytes(getattr(message, kind))
    attributes = _attributes(dict(message.attributes)) if message.attributes else None
    if message.client_time_ms:
        attributes = _with_client_time(attributes, _time_ms(message.client_time_ms))
    optional: Callable[[str], str | None] = lambda name: getattr(message, name) or None  # noqa: E731
    if not message.category:
        raise EventRejected("the event has no category", field="category")
    return Event(
        index=index,
        category=message.category,
        version=_version(message.version or None),
        payload=payload,
        id=_event_id(message.id),
        source=optional("source"),
        key=optional("key"),
        attributes=attributes,
        env=optional("env"),
        title=optional("title"),
        protobuf=kind == "protobuf",
    )


def _loads_field(text: str, name: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"{name} is not valid JSON: {exc}", field=name) from None

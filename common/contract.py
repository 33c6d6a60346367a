"""The envelope contract (`docs/contract.md`) as code: the value rules every component checks with.

This module is the one place that says what a legal header value, message id, attribute name and key
partition are. The SDK (`producers`), the header codec (`common.headers`), the worker's guard
(`refinery.routing.guards`), the route-set loader and the catalog all call it, and the golden vectors
(`tests/vectors/`) are generated from it, so the C++ SDK and any other SDK are tested against the same
rules. Rule ids (`Rule.id`) are the names `docs/contract.md` and `refinery-client verify` use.

It sits at the bottom of the import graph: topics, limits and errors only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import TopicNameError
from common.limits import MAX_RECORD_BYTES as MAX_RECORD_BYTES  # re-exported: part of the contract
from common.topics import validate_component

CONTRACT_VERSION = "1"

# --- header names (CloudEvents Kafka binding, binary mode; see docs/contract.md "Headers") ----------
SPECVERSION = "ce_specversion"
CONTENT_TYPE = "content-type"
MESSAGE_ID = "ce_id"
SOURCE = "ce_source"
CATEGORY = "ce_type"
TIME = "ce_time"
ENV = "ce_env"
TITLE = "ce_title"
VERSION = "ce_version"
SCHEMA_ID = "ce_schemaid"
FORMAT = "ce_format"
PRODUCER = "ce_producer"
ATTRIBUTE_PREFIX = "attr."
SPECVERSION_VALUE = b"1.0"
CONTENT_TYPE_VALUE = b"application/x-protobuf; messageType=refinery.envelope.v1.Envelope"

# Every record must carry these, once each, non-empty; the worker dead-letters a record without them.
REQUIRED_HEADERS = (MESSAGE_ID, ENV, SOURCE, TITLE, CATEGORY, VERSION, SCHEMA_ID, FORMAT)
# Producers must write these too (the worker routes without them; `refinery-client verify` reports them).
PRODUCER_HEADERS = (SPECVERSION, CONTENT_TYPE, TIME, PRODUCER)
COMPONENT_HEADERS = {ENV: "env", SOURCE: "source", TITLE: "title", CATEGORY: "category"}

# --- value rules ------------------------------------------------------------------------------------
FORMATS = ("avro", "protobuf", "json", "raw")  # ce_format values = PayloadFormat 1..4, in that order
MAX_MESSAGE_ID_BYTES = 200
MAX_VERSION = 2**32 - 1  # Metadata.version is a uint32
MAX_SCHEMA_ID = 2**31 - 1  # Metadata.schema_id is an int32
INT_LIMITS = {VERSION: MAX_VERSION, SCHEMA_ID: MAX_SCHEMA_ID}
_POSITIVE_INT = re.compile(r"[1-9][0-9]{0,9}")  # ASCII decimal, no sign, no leading zero (then a bound)
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # what route rules can match (`attribute.<name>`)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

# --- topics and partitioning ------------------------------------------------------------------------
INGEST_PARTITIONS = 12  # what SDKs create ingest topics with (ProducerSettings.partitions)
PARTITIONER = "murmur2_random"  # librdkafka's name for the Java client's murmur2 partitioner


@dataclass(frozen=True)
class Rule:
    """One rule of the contract: `level` MUST or SHOULD; `dlq` the worker's DLQ reason when the worker
    enforces it (None: only `refinery-client verify` reports it)."""

    id: str
    level: str
    dlq: str | None
    text: str


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("headers.present", "MUST", "missing_header", "a record carries the ce_* headers"),
        Rule("headers.required", "MUST", "missing_header",
             "ce_id, ce_env, ce_source, ce_title, ce_type, ce_version, ce_schemaid, ce_format are present "
             "and non-empty"),
        Rule("headers.unique", "MUST", "duplicate_header", "no header name appears twice"),
        Rule("header.utf8", "MUST", "malformed_header", "header values are UTF-8 text"),
        Rule("header.message_id", "MUST", "malformed_header", "ce_id has 1 to 200 bytes"),
        Rule("header.component", "MUST", "malformed_header",
             "ce_env, ce_source, ce_title, ce_type use [A-Za-z0-9_-] only"),
        Rule("header.integer", "MUST", "malformed_header",
             "ce_version (<= 4294967295) and ce_schemaid (<= 2147483647) are [1-9][0-9]*"),
        Rule("header.format", "MUST", "malformed_header", "ce_format is avro, protobuf, json or raw"),
        Rule("topic.env", "MUST", "env_mismatch", "ce_env is the env of the ingest topic"),
        Rule("envelope.decode", "MUST", "malformed_envelope", "the value is an Envelope with metadata"),
        Rule("envelope.env", "MUST", "env_mismatch", "the envelope's env is ce_env"),
        Rule("envelope.match", "MUST", "header_mismatch",
             "ce_id, ce_source, ce_title, ce_type, ce_version, ce_schemaid, ce_format equal the envelope's"),
        Rule("record.size", "MUST", "value_too_large",
             f"key + value + headers + framing (common.limits.record_size) <= {MAX_RECORD_BYTES} bytes"),
        Rule("schema.registered", "MUST", "unknown_schema", "ce_schemaid is registered in the registry"),
        Rule("header.specversion", "MUST", None, "ce_specversion is 1.0"),
        Rule("header.content_type", "MUST", None, f"content-type is {CONTENT_TYPE_VALUE.decode()}"),
        Rule("header.time", "MUST", None,
             "ce_time is YYYY-MM-DDTHH:MM:SS.sssZ (UTC) and equals the envelope's produced_at_ms"),
        Rule("header.producer", "MUST", None, "ce_producer equals the envelope's producer"),
        Rule("header.attributes", "MUST", None,
             "attr.<name> headers are exactly the envelope's attributes; names match [A-Za-z0-9_.-]+"),
        Rule("topic.ingest", "MUST", None,
             "records go to {env}.{source}.ingest.all-v1 of their own ce_env and ce_source"),
        Rule("key.partition", "MUST", None,
             "a keyed record is in partition (murmur2(key) & 0x7fffffff) % partitions"),
        Rule("schema.version", "MUST", None,
             "ce_schemaid is version ce_version of subject {ce_title}.{ce_type}-value"),
        Rule("payload.schema", "MUST", None, "the payload decodes with that schema in its ce_format"),
        Rule("message_id.uuid7", "SHOULD", None, "ce_id is a UUIDv7 in lowercase canonical text"),
        Rule("envelope.canonical", "SHOULD", None,
             "the value is the deterministic serialization (fields and map entries in order)"),
        Rule("topic.partitions", "SHOULD", None, f"ingest topics have {INGEST_PARTITIONS} partitions"),
        Rule("topic.length", "SHOULD", None,
             "{env}.{source}.{title}.{category}-v{version} fits Kafka's 249 characters (else route_error)"),
    )
}  # fmt: skip


def positive_int(text: str) -> int | None:
    """The value of a ce_version / ce_schemaid text if it is legal decimal (no sign, no leading zero,
    ASCII digits only), else None. Bounds are checked by `header_problem`."""
    return int(text) if _POSITIVE_INT.fullmatch(text) else None


def header_problem(name: str, value: bytes) -> tuple[str, str] | None:
    """(rule id, message) saying what is wrong with the value of one contract header, or None when it
    is legal. Headers without a value rule (attributes, unknown names) are legal as any UTF-8."""
    if name == MESSAGE_ID and not 0 < len(value) <= MAX_MESSAGE_ID_BYTES:
        return (
            "header.message_id",
            f"header {name!r} must have 1 to {MAX_MESSAGE_ID_BYTES} bytes, got {len(value)}",
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "header.utf8", f"header {name!r} is not valid UTF-8"
    if name in COMPONENT_HEADERS:
        try:
            validate_component(COMPONENT_HEADERS[name], text)
        except TopicNameError as exc:
            return "header.component", f"header {name!r}: {exc}"
    elif name in INT_LIMITS:
        number = positive_int(text)
        if number is None or number > INT_LIMITS[name]:
            return "header.integer", (
                f"header {name!r} must be a positive integer without sign or leading zero, "
                f"at most {INT_LIMITS[name]}, got {text!r}"
            )
    elif name == FORMAT and text not in FORMATS:
        return "header.format", f"header {name!r} must be one of {', '.join(FORMATS)}, got {text!r}"
    return None


def attribute_name_problem(name: object) -> str | None:
    """What is wrong with a free attribute's name, or None (names route rules can match)."""
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
        return f"attribute name {name!r} must be letters, digits, '_', '.' or '-' (at least one)"
    return None


def is_uuid7(message_id: str) -> bool:
    """True for a UUIDv7 in canonical lowercase text (what SDKs SHOULD use as message ids)."""
    return _UUID7.fullmatch(message_id) is not None


def is_canonical_time(text: str) -> bool:
    """True for the exact ce_time form SDKs write: YYYY-MM-DDTHH:MM:SS.sssZ."""
    return _TIME.fullmatch(text) is not None


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's `Utils.murmur2`, librdkafka's `rd_murmur2`), unsigned."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length & ~3
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & mask
        k ^= k >> 24
        h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int = INGEST_PARTITIONS) -> int:
    """The partition of a keyed record: as the Java client and librdkafka's `murmur2_random`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions

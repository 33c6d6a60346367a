"""Envelope metadata <-> Kafka record headers.

We follow the CloudEvents Kafka protocol binding's *binary content mode* conventions: attributes travel
as `ce_`-prefixed headers with lowercase names and UTF-8 string values, time is RFC 3339, and
`content-type` describes the record value (our envelope). Required CloudEvents attributes map as
id <- message_id, source <- source, type <- category, time <- produced_at_ms; our other routing fields
are CloudEvents extension attributes (lowercase letters and digits only). Free attributes go under
`attr.<name>`, a namespace of our own, because extension names cannot carry arbitrary keys.

Routing reads these headers only, so every value is a short, canonical string: the same metadata always
gives the same header bytes, and `headers_to_metadata(metadata_to_headers(md)) == md` minus payload.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping

from common import contract
from common.envelope import FORMAT_BY_NAME, NAME_BY_FORMAT, validate_metadata
from common.errors import EnvelopeError, HeaderError
from proto.envelope_pb2 import Envelope, Metadata

# Header names, the required set and the constant values are the contract's (`common.contract`).
SPECVERSION = contract.SPECVERSION
CONTENT_TYPE = contract.CONTENT_TYPE
MESSAGE_ID = contract.MESSAGE_ID
SOURCE = contract.SOURCE
CATEGORY = contract.CATEGORY
TIME = contract.TIME
ENV = contract.ENV
TITLE = contract.TITLE
VERSION = contract.VERSION
SCHEMA_ID = contract.SCHEMA_ID
FORMAT = contract.FORMAT
PRODUCER = contract.PRODUCER
ATTRIBUTE_PREFIX = contract.ATTRIBUTE_PREFIX

SPECVERSION_VALUE = contract.SPECVERSION_VALUE
CONTENT_TYPE_VALUE = contract.CONTENT_TYPE_VALUE

# Routing field name (as used in route rules) -> header name.
FIELD_HEADERS: dict[str, str] = {
    "message_id": MESSAGE_ID,
    "env": ENV,
    "source": SOURCE,
    "title": TITLE,
    "category": CATEGORY,
    "version": VERSION,
    "schema_id": SCHEMA_ID,
    "format": FORMAT,
    "producer": PRODUCER,
}
REQUIRED_HEADERS = contract.REQUIRED_HEADERS

# confluent-kafka's header type: we always write bytes values, and accept str or None when reading.
HeaderValue = bytes | str | None
Headers = list[tuple[str, HeaderValue]]
RawHeaders = Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None


def attribute_header(name: str) -> str:
    return ATTRIBUTE_PREFIX + name


def format_time(ms: int) -> str:
    """RFC 3339 UTC with millisecond precision, e.g. 2026-11-24T03:52:04.123Z."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second_stamp(seconds)}.{millis:03d}Z"


_last_stamp: tuple[int, bytes] = (-1, b"")  # the newest `_time_header` (records of one millisecond share it)


def _time_header(ms: int) -> bytes:
    global _last_stamp
    last = _last_stamp  # one read: another thread may replace it meanwhile
    if last[0] == ms:
        return last[1]
    stamp = format_time(ms).encode()
    _last_stamp = (ms, stamp)
    return stamp


@functools.lru_cache(maxsize=64)
def _second_stamp(seconds: int) -> str:
    # Cached: records of the same second share it, and strftime is most of format_time's cost.
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str) -> int:
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HeaderError(f"{TIME} {text!r} is not an RFC 3339 timestamp", header=TIME) from None
    if parsed.tzinfo is None:
        raise HeaderError(f"{TIME} {text!r} has no time zone", header=TIME)
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def metadata_to_headers(md: Metadata) -> Headers:
    """The record headers that mirror `md` (attributes sorted by name, so the output is canonical)."""
    return record_headers(
        md.env, md.source, md.title, md.category, md.version, md.schema_id, md.payload_format, md.producer,
        md.message_id, md.produced_at_ms, md.attributes,
    )  # fmt: skip


def record_headers(
    env: str,
    source: str,
    title: str,
    category: str,
    version: int,
    schema_id: int,
    payload_format: int,
    producer: str,
    message_id: str,
    produced_at_ms: int,
    attributes: Mapping[str, str] | None,
) -> Headers:
    """`metadata_to_headers` from the metadata's values, for a producer that has them at hand (reading
    them back from the protobuf message cost it more than building the headers)."""
    headers = list(
        _constant_headers(env, source, title, category, version, schema_id, payload_format, producer)
    )
    headers[_MESSAGE_ID_AT] = (MESSAGE_ID, message_id.encode())
    headers[_TIME_AT] = (TIME, _time_header(produced_at_ms))
    if attributes:
        headers.extend([(ATTRIBUTE_PREFIX + k, attributes[k].encode()) for k in sorted(attributes)])
    return headers


_MESSAGE_ID_AT = 2
_TIME_AT = 10


@functools.lru_cache(maxsize=4096)
def _constant_headers(
    env: str,
    source: str,
    title: str,
    category: str,
    version: int,
    schema_id: int,
    payload_format: int,
    producer: str,
) -> tuple[tuple[str, HeaderValue], ...]:
    """The headers of `metadata_to_headers` that do not change from record to record, in order, with
    placeholders at _MESSAGE_ID_AT and _TIME_AT (cached: a producer repeats the same few combinations)."""
    return (
        (SPECVERSION, SPECVERSION_VALUE),
        (CONTENT_TYPE, CONTENT_TYPE_VALUE),
        (MESSAGE_ID, b""),
        (ENV, env.encode()),
        (SOURCE, source.encode()),
        (TITLE, title.encode()),
        (CATEGORY, category.encode()),
        (VERSION, str(version).encode()),
        (SCHEMA_ID, str(schema_id).encode()),
        (FORMAT, NAME_BY_FORMAT.get(payload_format, "unspecified").encode()),
        (TIME, b""),
        (PRODUCER, producer.encode()),
    )


def headers_dict(headers: RawHeaders) -> dict[str, bytes]:
    """Headers as a dict; a duplicated header is an error (routing on it would be ambiguous)."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, bytes] = {}
    for key, value in items:
        if key in out:
            raise HeaderError(f"header {key!r} appears more than once", header=key)
        out[key] = value.encode() if isinstance(value, str) else (value or b"")
    return out


def _text(headers: Mapping[str, bytes], name: str) -> str:
    raw = headers.get(name)
    if raw is None:
        raise HeaderError(f"required header {name!r} is missing", header=name)
    problem = contract.header_problem(name, raw)  # value rules of the contract's headers
    if problem is not None:
        raise HeaderError(problem[1], header=name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError(f"header {name!r} is not valid UTF-8", header=name) from None


def _int(headers: Mapping[str, bytes], name: str) -> int:
    return int(_text(headers, name))  # _text applied the contract's integer rule


def headers_to_metadata(headers: RawHeaders) -> Metadata:
    """Rebuild envelope metadata from record headers; raise HeaderError naming the bad header."""
    h = headers_dict(headers)
    fmt_name = _text(h, FORMAT)
    md = Metadata(
        message_id=_text(h, MESSAGE_ID),
        env=_text(h, ENV),
        source=_text(h, SOURCE),
        title=_text(h, TITLE),
        category=_text(h, CATEGORY),
        version=_int(h, VERSION),
        schema_id=_int(h, SCHEMA_ID),
        payload_format=FORMAT_BY_NAME[fmt_name],  # type: ignore[arg-type]
        produced_at_ms=parse_time(_text(h, TIME)) if TIME in h else 0,
        producer=_text(h, PRODUCER) if PRODUCER in h else "",
        attributes={k[len(ATTRIBUTE_PREFIX) :]: _text(h, k) for k in h if k.startswith(ATTRIBUTE_PREFIX)},
    )
    try:
        return validate_metadata(md)
    except EnvelopeError as exc:
        raise HeaderError(str(exc).replace("envelope metadata", "headers")) from None


def header_mismatches(headers: RawHeaders, envelope: Envelope) -> list[str]:
    """Names of metadata fields on which the headers and the envelope disagree (empty: they agree)."""
    from_headers = headers_to_metadata(headers)
    fields = [f.name for f in Metadata.DESCRIPTOR.fields]
    return [f for f in fields if getattr(from_headers, f) != getattr(envelope.metadata, f)]

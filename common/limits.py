"""Record size limits: one figure that the SDK, the worker's guard and the worker's clients derive from.

`MAX_RECORD_BYTES` is librdkafka's default `message.max.bytes` (1,000,000), which every client we build
sets explicitly. librdkafka compares it with the whole record as it would go on the wire: key, value,
headers and the record framing, not the value alone. So a value of 999,980 bytes with a few hundred
bytes of headers cannot be forwarded although it is under 1,000,000. `record_size` counts the same
parts conservatively (measured: framing 36 bytes, plus 2-4 bytes of length varints per header; we
reserve 40 and 10), so a record whose `record_size` is within the limit is always accepted by the
producer, and the broker's own default (1,048,588 bytes per record batch) leaves room for batch framing.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_RECORD_BYTES = 1_000_000
RECORD_FRAMING_BYTES = 40  # librdkafka's per-record overhead (measured 36), rounded up
HEADER_FRAMING_BYTES = 10  # two length varints per header (at most 5 bytes each)


def headers_size(headers: Iterable[tuple[str, bytes | str | None]] | None) -> int:
    """Bytes the headers add to a record on the wire (names and values UTF-8, plus their framing)."""
    total = 0
    for name, value in headers or ():
        total += len(name.encode()) + HEADER_FRAMING_BYTES
        if value is not None:
            total += len(value) if isinstance(value, bytes) else len(value.encode())
    return total


def record_size(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | str | None]] | None
) -> int:
    """An upper bound of the size librdkafka checks against `message.max.bytes` for this record."""
    return RECORD_FRAMING_BYTES + len(key or b"") + len(value or b"") + headers_size(headers)

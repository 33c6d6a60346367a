"""Dead-letter records: the original key, value and headers plus headers saying why.

The reason headers are modelled on Kafka Connect's `__connect.errors.*` headers, in our own namespace, so
a DLQ reader can tell at a glance what failed and where the record came from. The original headers are
kept as they were (including duplicates), and the reason headers are appended after them.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from common.headers import Headers
from common.limits import record_size

ERROR_HEADER_PREFIX = "__refinery.errors."
REASON = ERROR_HEADER_PREFIX + "reason"
MESSAGE = ERROR_HEADER_PREFIX + "message"
TOPIC = ERROR_HEADER_PREFIX + "topic"
PARTITION = ERROR_HEADER_PREFIX + "partition"
OFFSET = ERROR_HEADER_PREFIX + "offset"
TIMESTAMP = ERROR_HEADER_PREFIX + "timestamp"
ROUTE = ERROR_HEADER_PREFIX + "route"
HEADERS_DROPPED = ERROR_HEADER_PREFIX + "headers.dropped"  # original headers left out to fit (their count)
MAX_MESSAGE_CHARS = 2000  # a reason message longer than this is cut
WORKER = ERROR_HEADER_PREFIX + "worker"
# When the original record does not fit in a dead letter, its value is cut (or dropped) and these say so.
VALUE_SIZE = ERROR_HEADER_PREFIX + "value.size"  # the original value's length in bytes (decimal)
VALUE_SHA256 = ERROR_HEADER_PREFIX + "value.sha256"  # hex digest of the whole original value
VALUE_TRUNCATED = ERROR_HEADER_PREFIX + "value.truncated"  # "true": the value is a prefix of the original


class DlqReason(StrEnum):
    """Why a record went to the dead-letter topic (the value of the `__refinery.errors.reason` header)."""

    MISSING_HEADER = "missing_header"  # no headers at all, or a required header absent
    DUPLICATE_HEADER = "duplicate_header"  # a header appears more than once: routing would be ambiguous
    MALFORMED_HEADER = "malformed_header"  # a routing header whose value is not legal
    ENV_MISMATCH = "env_mismatch"  # ce_env differs from the ingest topic's env, or a route crosses envs
    UNKNOWN_SCHEMA = "unknown_schema"  # the registry does not know ce_schemaid (only with registry_check)
    VALUE_TOO_LARGE = "value_too_large"  # the record (key+value+headers) over WorkerSettings.max_record_bytes
    ROUTE_ERROR = "route_error"  # a route's topic template could not produce a valid topic
    TOPIC_REJECTED = "topic_rejected"  # the derived topic name is illegal or not allowed
    UNMATCHED = "unmatched"  # no route matched (only sent to the DLQ when dlq_unmatched is on)
    MALFORMED_ENVELOPE = "malformed_envelope"  # the value is not a protobuf Envelope (e.g. truncated)
    HEADER_MISMATCH = "header_mismatch"  # a ce_* header contradicts the envelope's metadata
    OUTPUT_REJECTED = "output_rejected"  # Kafka refused this record's output for good (size, ACL, topic)


def dlq_headers(
    original: Headers | None,
    *,
    reason: DlqReason,
    message: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    worker: str,
    route: str | None = None,
) -> Headers:
    """The original headers followed by the reason headers."""
    out: Headers = list(original or ())
    out += [
        (REASON, reason.value.encode()),
        (MESSAGE, message[:MAX_MESSAGE_CHARS].encode("utf-8", "replace")),
        (TOPIC, topic.encode()),
        (PARTITION, str(partition).encode()),
        (OFFSET, str(offset).encode()),
        (TIMESTAMP, str(timestamp_ms).encode()),
        (WORKER, worker.encode()),
    ]
    if route is not None:
        out.append((ROUTE, route.encode()))
    return out


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """A dead letter that the producer will accept (`record_size` <= `max_bytes`): as it is when it fits;
    otherwise the value is cut to what fits (headers give its original size and SHA-256); if even the
    headers do not fit, the original headers are left out (their count is kept), then the key."""
    if record_size(key, value, headers) <= max_bytes:
        return key, value, headers
    original = value or b""
    marks: Headers = [
        (VALUE_SIZE, str(len(original)).encode()),
        (VALUE_SHA256, hashlib.sha256(original).hexdigest().encode()),
        (VALUE_TRUNCATED, b"false"),  # set below; "false" reserves the longer of the two values
    ]
    fitted = [*headers, *marks]
    if record_size(key, b"", fitted) > max_bytes:
        reason_headers = [(k, v) for k, v in headers if k.startswith(ERROR_HEADER_PREFIX)]
        dropped = len(headers) - len(reason_headers)
        fitted = [*reason_headers, *marks, (HEADERS_DROPPED, str(dropped).encode())]
        if record_size(key, b"", fitted) > max_bytes:
            key = None
    room = max(0, max_bytes - record_size(key, b"", fitted))
    if room < len(original):
        fitted = [(k, b"true") if k == VALUE_TRUNCATED else (k, v) for k, v in fitted]
    return key, original[:room], fitted

"""Per-record checks that run before routing. The business payload is never parsed.

Header checks are a few dict/set lookups on the hot path: header values repeat a lot (a handful of
envs, titles, categories and versions), so each (header, value) pair is validated once and then
remembered. The envelope check (`verify_envelope`, on by default) parses the envelope framing with
the upb protobuf runtime (~1 us for a 1 KB record; the payload stays opaque bytes, never decoded) and
compares the routing fields of its metadata (message id, env, source, title, category, version, schema
id, payload format) with the headers, so a truncated or foreign value, or headers that lie about the
envelope, go to the DLQ instead of being routed: an env disagreement as `env_mismatch` (the envelope's
env must be the header's and the ingest topic's), any other as `header_mismatch`. The comparison is one
tuple equality against the envelope values each cached header combination stands for; before it, a
compiled check (`envelope_fast.c`) accepts the canonical encoding of exactly those values without
building a message, and sends everything else to the parse (it never refuses on its own).
A failed check is a `Rejection` that names the DLQ reason and says what is wrong. The value rules are the
contract's (`common.contract`, `docs/contract.md`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any

from google.protobuf.message import DecodeError

from common import contract
from common import headers as h
from common.envelope import FORMAT_BY_NAME, NAME_BY_FORMAT, envelope_metadata
from common.errors import EnvelopeError, HeaderError, RefineryError, TopicNameError
from common.headers import REQUIRED_HEADERS, Headers, headers_dict
from common.limits import MAX_RECORD_BYTES, record_size
from common.topics import parse_topic
from proto.envelope_pb2 import Envelope, Metadata
from refinery.routing.dlq import DlqReason
from refinery.routing.schema_check import SchemaIdChecker

MAX_MESSAGE_ID_BYTES = contract.MAX_MESSAGE_ID_BYTES
# Records whose key and value leave less than this under the limit get their exact size counted
# (headers included, ~1.3 us); smaller ones are not counted on the hot path. A small record with more
# than this in headers would be refused by the producer instead, and dead-lettered as output_rejected.
HEADER_SLACK_BYTES = 64 * 1024
_VALID_CACHE_LIMIT = 100_000
# The required headers but the message id, with the Metadata field each mirrors (the env first).
_MIRRORED = ((h.ENV, "env"), (h.SOURCE, "source"), (h.TITLE, "title"), (h.CATEGORY, "category"),
             (h.VERSION, "version"), (h.SCHEMA_ID, "schema_id"), (h.FORMAT, "payload_format"))  # fmt: skip
assert {name for name, _ in _MIRRORED} == set(REQUIRED_HEADERS) - {h.MESSAGE_ID}
_parse_envelope = Envelope.FromString
COMBINATION_HEADERS = tuple(name for name, _ in _MIRRORED)  # what a cached header combination holds
_OTHER_REQUIRED = itemgetter(*COMBINATION_HEADERS)
# What the envelope must hold for one header combination: str fields as text, version, schema id and
# payload format as int.
EnvelopeValues = tuple[str, str, str, str, int, int, int]
# ... and those values as the serializer writes them (Metadata fields 2-8), for the compiled fast path.
ExpectedEnvelope = tuple[EnvelopeValues, bytes | None]

try:  # compiled with the package (setup.py); the upb parse below is the reference
    from refinery.routing._envelope_fast import check as _canonical_envelope
except ImportError:  # pragma: no cover - a machine that could not compile it
    _canonical_envelope = None
COMPILED_ENVELOPE_CHECK = _canonical_envelope is not None


class Rejection(RefineryError):
    """A record that must go to the DLQ instead of being routed."""

    def __init__(self, reason: DlqReason, message: str, route: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.route = route


@lru_cache(maxsize=4096)
def topic_env(topic: str) -> bytes:
    """The env component of a convention topic name, as header bytes (cached: topics repeat)."""
    return parse_topic(topic).env.encode()


def _check_value(name: str, value: bytes) -> str | None:
    """What is wrong with one required header's value, or None (the contract's rule)."""
    problem = contract.header_problem(name, value)
    return None if problem is None else problem[1]


class RecordGuard:
    """Checks headers, env, record size and (optionally) schema ids of ingest records."""

    def __init__(
        self,
        *,
        max_record_bytes: int = MAX_RECORD_BYTES,
        schema_checker: SchemaIdChecker | None = None,
        verify_envelope: bool = True,
    ) -> None:
        self._max_record_bytes = max_record_bytes
        self._exact_size_from = max_record_bytes - HEADER_SLACK_BYTES
        self._schema_checker = schema_checker
        self._verify_envelope = verify_envelope
        self._valid: set[tuple[str, bytes]] = set()
        # values of _OTHER_REQUIRED, all valid -> the envelope values they stand for
        self._valid_combos: dict[tuple[bytes, ...], ExpectedEnvelope] = {}

    @property
    def exact_size_from(self) -> int:
        """Records whose key and value together exceed this get their exact size counted."""
        return self._exact_size_from

    @property
    def verify_envelope(self) -> bool:
        return self._verify_envelope

    @property
    def checks_schema_ids(self) -> bool:
        return self._schema_checker is not None

    def check(
        self, topic: str, value: bytes | None, raw_headers: Headers | None, key: bytes | None = None
    ) -> dict[str, bytes]:
        """The record's headers as a dict, or raise Rejection."""
        if value is not None and len(value) + (len(key) if key else 0) > self._exact_size_from:
            size = record_size(key, value, raw_headers)
            if size > self._max_record_bytes:
                raise Rejection(
                    DlqReason.VALUE_TOO_LARGE,
                    f"record is {size} bytes (value {len(value)}, with key, headers and framing); "
                    f"the limit is {self._max_record_bytes} (common/limits.py)",
                )
        if not raw_headers:
            raise Rejection(DlqReason.MISSING_HEADER, "record has no headers; routing needs the ce_* headers")
        headers: dict[str, Any] = dict(raw_headers)  # fast path: consumed headers are (str, bytes|None)
        if len(headers) != len(raw_headers):
            try:
                headers_dict(raw_headers)  # names the duplicated header
            except HeaderError as exc:
                raise Rejection(DlqReason.DUPLICATE_HEADER, str(exc)) from None
        expected = self.check_headers(topic, headers)
        if self._verify_envelope:
            self._check_envelope(topic, value, headers, expected)
        if self._schema_checker is not None and not self._schema_checker.known(headers[h.SCHEMA_ID]):
            raise Rejection(
                DlqReason.UNKNOWN_SCHEMA,
                f"schema id {headers[h.SCHEMA_ID].decode()} is not registered in the schema registry",
            )
        return headers

    def check_headers(self, topic: str, headers: Mapping[str, bytes]) -> ExpectedEnvelope:
        """Validate the required headers and their env against the ingest topic's; the envelope values
        they stand for. The parts of `check` that depend only on the header values."""
        expected = self._check_required(headers)
        try:
            env = topic_env(topic)
        except TopicNameError as exc:  # an ingest pattern set to take other topics too
            raise Rejection(
                DlqReason.ENV_MISMATCH,
                f"ingest topic {topic!r} is not named {{env}}.{{source}}.ingest.all-v1, so the env of its "
                f"records cannot be checked ({exc})",
            ) from None
        if headers[h.ENV] != env:
            raise Rejection(
                DlqReason.ENV_MISMATCH,
                f"header {h.ENV!r} is {headers[h.ENV].decode()!r} but ingest topic {topic!r} "
                f"belongs to env {env.decode()!r}",
            )
        return expected

    @staticmethod
    def _check_envelope(
        topic: str, value: bytes | None, headers: Mapping[str, bytes], expected: ExpectedEnvelope
    ) -> None:
        # Hot path: the compiled check recognises the canonical layout our producers write (no message
        # is built; bench/results/NOTES.md has its cost); anything else gets one upb parse, then the
        # routing fields against the cached values of the headers. An envelope without metadata has
        # empty fields, never equal to validated headers, so its HasField check waits for the slow path.
        values, middle = expected
        if middle is not None and _canonical_envelope is not None:
            if _canonical_envelope(value, headers[h.MESSAGE_ID], middle):
                return
        if value:
            try:
                md = _parse_envelope(value).metadata
            except DecodeError:
                pass
            else:
                if (
                    md.env,
                    md.source,
                    md.title,
                    md.category,
                    md.version,
                    md.schema_id,
                    md.payload_format,
                ) == values and md.message_id.encode() == headers[h.MESSAGE_ID]:
                    return
        raise _envelope_rejection(topic, value, headers)

    def _check_required(self, headers: Mapping[str, bytes]) -> ExpectedEnvelope:
        """Validate the required headers; the envelope values they stand for."""
        # fast path: this exact combination of the non-id header values was fully validated before
        try:
            combo = _OTHER_REQUIRED(headers)
        except KeyError:
            combo = None
        message_id = headers.get(h.MESSAGE_ID)
        if combo is not None and message_id and len(message_id) <= MAX_MESSAGE_ID_BYTES:
            expected = self._valid_combos.get(combo)
            if expected is not None:
                return expected
        self._check_required_slowly(headers)  # raises unless every required header is there and valid
        assert combo is not None
        env, source, title, category, version, schema_id, payload_format = combo
        values: EnvelopeValues = (
            env.decode(), source.decode(), title.decode(), category.decode(),
            int(version), int(schema_id), FORMAT_BY_NAME[payload_format.decode()],
        )  # fmt: skip
        expected = (values, _encoded_fields(values))
        if len(self._valid_combos) >= _VALID_CACHE_LIMIT:
            self._valid_combos.clear()
        self._valid_combos[combo] = expected
        return expected

    def _check_required_slowly(self, headers: Mapping[str, bytes]) -> None:
        valid = self._valid
        for name in REQUIRED_HEADERS:
            value = headers.get(name)
            if not value:
                raise Rejection(DlqReason.MISSING_HEADER, f"required header {name!r} is missing or empty")
            if name == h.MESSAGE_ID:
                if not 0 < len(value) <= MAX_MESSAGE_ID_BYTES:
                    raise Rejection(
                        DlqReason.MALFORMED_HEADER,
                        f"header {name!r} must have 1 to {MAX_MESSAGE_ID_BYTES} bytes, got {len(value)}",
                    )
                continue
            if (name, value) in valid:
                continue
            problem = _check_value(name, value)
            if problem is not None:
                raise Rejection(DlqReason.MALFORMED_HEADER, problem)
            if len(valid) >= _VALID_CACHE_LIMIT:
                valid.clear()
            valid.add((name, value))


def _encoded_fields(values: EnvelopeValues) -> bytes | None:
    """Metadata fields 2-8 holding `values`, encoded as the serializer writes them (field order, values
    at their default left out); None when they do not fit the fields (then only the parse decides)."""
    env, source, title, category, version, schema_id, payload_format = values
    try:
        md = Metadata(env=env, source=source, title=title, category=category, version=version,
                      schema_id=schema_id, payload_format=payload_format)  # type: ignore[arg-type]  # fmt: skip
    except (ValueError, TypeError):
        return None
    return md.SerializeToString()


def _envelope_rejection(topic: str, value: bytes | None, headers: Mapping[str, bytes]) -> Rejection:
    """Why a value failed the envelope check: not an envelope, or headers that contradict it."""
    try:
        md = envelope_metadata(value)
    except EnvelopeError as exc:
        return Rejection(DlqReason.MALFORMED_ENVELOPE, str(exc))
    header_env = headers[h.ENV].decode()
    if md.env != header_env:  # the header's env is the ingest topic's (checked before)
        return Rejection(
            DlqReason.ENV_MISMATCH,
            f"the envelope's env is {md.env!r} but header {h.ENV!r} is {header_env!r} and ingest topic "
            f"{topic!r} belongs to env {header_env!r}",
        )
    problems = []
    for name, field in ((h.MESSAGE_ID, "message_id"), *_MIRRORED[1:]):
        in_header = headers[name].decode("utf-8", "replace")
        raw = getattr(md, field)
        in_envelope = NAME_BY_FORMAT.get(raw, str(raw)) if name == h.FORMAT else str(raw)
        if in_header != in_envelope:
            problems.append(f"header {name!r} is {in_header!r} but the envelope's {field} is {in_envelope!r}")
    return Rejection(DlqReason.HEADER_MISMATCH, "; ".join(problems) or "headers contradict the envelope")

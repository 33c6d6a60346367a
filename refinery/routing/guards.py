"""Per-record checks that run before routing. The business payload is never parsed.

Header checks are a few dict/set lookups on the hot path: header values repeat a lot (a handful of
envs, titles, categories and versions), so each (header, value) pair is validated once and then
remembered. The envelope check (`verify_envelope`, on by default) parses the envelope framing with
the upb protobuf runtime (~1-2 us for a 1 KB record; the payload stays opaque bytes) and compares its
message id with `ce_id`, so a truncated or foreign value, or headers that belong to another envelope,
go to the DLQ instead of being routed.
A failed check is a `Rejection` that names the DLQ reason and says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any

from common import headers as h
from common.envelope import envelope_message_id
from common.errors import EnvelopeError, HeaderError, RefineryError, TopicNameError
from common.headers import REQUIRED_HEADERS, Headers, headers_dict
from common.topics import parse_topic, validate_component
from refinery.routing.dlq import DlqReason
from refinery.routing.schema_check import SchemaIdChecker

_COMPONENT_HEADERS = {h.ENV: "env", h.SOURCE: "source", h.TITLE: "title", h.CATEGORY: "category"}
_POSITIVE_INT_HEADERS = (h.VERSION, h.SCHEMA_ID)
MAX_MESSAGE_ID_BYTES = 200
_VALID_CACHE_LIMIT = 100_000
_OTHER_REQUIRED = itemgetter(*(name for name in REQUIRED_HEADERS if name != h.MESSAGE_ID))


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
    """What is wrong with one required header's value, or None."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"header {name!r} is not valid UTF-8"
    if name in _COMPONENT_HEADERS:
        try:
            validate_component(_COMPONENT_HEADERS[name], text)
        except TopicNameError as exc:
            return f"header {name!r}: {exc}"
    elif name in _POSITIVE_INT_HEADERS:
        if not (text.isascii() and text.isdigit() and text[0] != "0"):
            return f"header {name!r} must be a positive integer, got {text!r}"
    return None


class RecordGuard:
    """Checks headers, env, value size and (optionally) schema ids of ingest records."""

    def __init__(
        self,
        *,
        max_value_bytes: int,
        schema_checker: SchemaIdChecker | None = None,
        verify_envelope: bool = True,
    ) -> None:
        self._max_value_bytes = max_value_bytes
        self._schema_checker = schema_checker
        self._verify_envelope = verify_envelope
        self._valid: set[tuple[str, bytes]] = set()
        self._valid_combos: set[tuple[bytes, ...]] = set()  # values of _OTHER_REQUIRED, all valid

    def check(self, topic: str, value: bytes | None, raw_headers: Headers | None) -> dict[str, bytes]:
        """The record's headers as a dict, or raise Rejection."""
        if value is not None and len(value) > self._max_value_bytes:
            raise Rejection(
                DlqReason.VALUE_TOO_LARGE,
                f"value is {len(value)} bytes; the limit is {self._max_value_bytes}",
            )
        if not raw_headers:
            raise Rejection(DlqReason.MISSING_HEADER, "record has no headers; routing needs the ce_* headers")
        headers: dict[str, Any] = dict(raw_headers)  # fast path: consumed headers are (str, bytes|None)
        if len(headers) != len(raw_headers):
            try:
                headers_dict(raw_headers)  # names the duplicated header
            except HeaderError as exc:
                raise Rejection(DlqReason.DUPLICATE_HEADER, str(exc)) from None
        self._check_required(headers)
        if headers[h.ENV] != topic_env(topic):
            raise Rejection(
                DlqReason.ENV_MISMATCH,
                f"header {h.ENV!r} is {headers[h.ENV].decode()!r} but ingest topic {topic!r} "
                f"belongs to env {topic_env(topic).decode()!r}",
            )
        if self._verify_envelope:
            self._check_envelope(value, headers)
        if self._schema_checker is not None and not self._schema_checker.known(headers[h.SCHEMA_ID]):
            raise Rejection(
                DlqReason.UNKNOWN_SCHEMA,
                f"schema id {headers[h.SCHEMA_ID].decode()} is not registered in the schema registry",
            )
        return headers

    @staticmethod
    def _check_envelope(value: bytes | None, headers: Mapping[str, bytes]) -> None:
        try:
            message_id = envelope_message_id(value)
        except EnvelopeError as exc:
            raise Rejection(DlqReason.MALFORMED_ENVELOPE, str(exc)) from None
        if message_id.encode() != headers[h.MESSAGE_ID]:
            raise Rejection(
                DlqReason.HEADER_MISMATCH,
                f"header {h.MESSAGE_ID!r} is not the envelope's message id {message_id!r}",
            )

    def _check_required(self, headers: Mapping[str, bytes]) -> None:
        # fast path: this exact combination of the non-id header values was fully validated before
        try:
            combo = _OTHER_REQUIRED(headers)
        except KeyError:
            combo = None
        message_id = headers.get(h.MESSAGE_ID)
        if combo is not None and combo in self._valid_combos and message_id:
            if len(message_id) <= MAX_MESSAGE_ID_BYTES:
                return
        self._check_required_slowly(headers)
        if combo is not None:
            if len(self._valid_combos) >= _VALID_CACHE_LIMIT:
                self._valid_combos.clear()
            self._valid_combos.add(combo)

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

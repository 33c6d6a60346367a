"""The guard's envelope check: the value must be an Envelope whose routing metadata the headers mirror."""

from __future__ import annotations

import pytest

from common.envelope import envelope_message_id
from common.errors import EnvelopeError
from common.headers import Headers
from refinery.routing.dlq import DlqReason
from refinery.routing.guards import RecordGuard, Rejection
from tests.refinery.worker.worker_harness import record

TOPIC = "prod.src.ingest.all-v1"


def _replace(headers: Headers, name: str, value: bytes) -> Headers:
    return [(k, value if k == name else v) for k, v in headers]


def _reject(guard: RecordGuard, value: bytes | None, headers: Headers) -> Rejection:
    with pytest.raises(Rejection) as caught:
        guard.check(TOPIC, value, headers)
    return caught.value


def test_a_matching_envelope_passes() -> None:
    value, headers = record("prod", "src", "1234", "kill", attributes={"platform": "pc"})
    assert RecordGuard(max_value_bytes=10_000).check(TOPIC, value, headers)["ce_title"] == b"1234"


@pytest.mark.parametrize("cut", [1, 2, 10, 50, -1])
def test_truncated_envelope_with_valid_headers_is_malformed(cut: int) -> None:
    value, headers = record("prod", "src", "1234", "kill", payload=b"p" * 200)
    rejection = _reject(RecordGuard(max_value_bytes=10_000), value[:cut], headers)
    assert rejection.reason is DlqReason.MALFORMED_ENVELOPE and "not a Refinery envelope" in rejection.message


@pytest.mark.parametrize("value", [None, b"", b"\xff" * 40, b"plain text, not protobuf"])
def test_values_that_are_no_envelope_are_malformed(value: bytes | None) -> None:
    _, headers = record("prod", "src", "1234", "kill")
    assert _reject(RecordGuard(max_value_bytes=10_000), value, headers).reason is DlqReason.MALFORMED_ENVELOPE


def test_a_ce_id_that_is_not_the_envelopes_message_id_is_a_mismatch() -> None:
    value, _ = record("prod", "src", "1234", "kill")
    _, other = record("prod", "src", "1234", "kill")  # the headers of another envelope
    rejection = _reject(RecordGuard(max_value_bytes=10_000), value, other)
    assert rejection.reason is DlqReason.HEADER_MISMATCH and "ce_id" in rejection.message


def test_the_check_can_be_turned_off() -> None:
    value, headers = record("prod", "src", "1234", "kill")
    guard = RecordGuard(max_value_bytes=10_000, verify_envelope=False)
    assert guard.check(TOPIC, value[:5], _replace(headers, "ce_id", b"other"))["ce_id"] == b"other"


def test_envelope_message_id_reads_the_framing_only() -> None:
    value, headers = record("prod", "src", "1234", "kill")
    assert envelope_message_id(value).encode() == dict(headers)["ce_id"]
    with pytest.raises(EnvelopeError, match="no metadata"):
        envelope_message_id(b"\x12\x01x")  # only a payload field

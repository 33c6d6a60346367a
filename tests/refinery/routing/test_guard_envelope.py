"""The guard's envelope check: the value must be an Envelope whose routing metadata the headers mirror."""

from __future__ import annotations

import pytest

from common.envelope import envelope_message_id
from common.errors import EnvelopeError
from common.headers import Headers
from common.limits import MAX_RECORD_BYTES, record_size
from refinery.routing import guards
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
    assert RecordGuard().check(TOPIC, value, headers)["ce_title"] == b"1234"


@pytest.mark.parametrize("cut", [1, 2, 10, 50, -1])
def test_truncated_envelope_with_valid_headers_is_malformed(cut: int) -> None:
    value, headers = record("prod", "src", "1234", "kill", payload=b"p" * 200)
    rejection = _reject(RecordGuard(), value[:cut], headers)
    assert rejection.reason is DlqReason.MALFORMED_ENVELOPE and "not a Refinery envelope" in rejection.message


@pytest.mark.parametrize("value", [None, b"", b"\xff" * 40, b"plain text, not protobuf"])
def test_values_that_are_no_envelope_are_malformed(value: bytes | None) -> None:
    _, headers = record("prod", "src", "1234", "kill")
    assert _reject(RecordGuard(), value, headers).reason is DlqReason.MALFORMED_ENVELOPE


def test_a_ce_id_that_is_not_the_envelopes_message_id_is_a_mismatch() -> None:
    value, _ = record("prod", "src", "1234", "kill")
    _, other = record("prod", "src", "1234", "kill")  # the headers of another envelope
    rejection = _reject(RecordGuard(), value, other)
    assert rejection.reason is DlqReason.HEADER_MISMATCH and "ce_id" in rejection.message


def test_the_check_can_be_turned_off() -> None:
    value, headers = record("prod", "src", "1234", "kill")
    guard = RecordGuard(verify_envelope=False)
    assert guard.check(TOPIC, value[:5], _replace(headers, "ce_id", b"other"))["ce_id"] == b"other"


def test_envelope_message_id_reads_the_framing_only() -> None:
    value, headers = record("prod", "src", "1234", "kill")
    assert envelope_message_id(value).encode() == dict(headers)["ce_id"]
    with pytest.raises(EnvelopeError, match="no metadata"):
        envelope_message_id(b"\x12\x01x")  # only a payload field


def _lie(
    header: str,
    value: bytes,
    *,
    env: str = "prod",
    title: str = "1234",
    category: str = "kill",
    schema_id: int = 7,
) -> tuple[bytes, Headers]:
    """An envelope (prod/src/1234/kill v2, schema 7 unless told otherwise) whose `header` says `value`."""
    record_value, headers = record(env, "src", title, category, version=2, schema_id=schema_id)
    return record_value, _replace(headers, header, value)


@pytest.mark.parametrize(
    ("header", "lie", "truth"),
    [
        ("ce_source", b"other", "src"),
        ("ce_title", b"9999", "1234"),
        ("ce_type", b"purchase", "kill"),
        ("ce_version", b"3", "2"),
        ("ce_schemaid", b"8", "7"),
        ("ce_id", b"0190c0de-0000-7000-8000-000000000001", None),
    ],
)
def test_each_routing_header_that_lies_about_the_envelope_is_a_header_mismatch(
    header: str, lie: bytes, truth: str | None
) -> None:
    value, headers = _lie(header, lie)
    truth = truth or envelope_message_id(value)
    rejection = _reject(RecordGuard(), value, headers)
    assert rejection.reason is DlqReason.HEADER_MISMATCH
    assert header in rejection.message and repr(lie.decode()) in rejection.message
    assert repr(truth) in rejection.message


def test_a_prod_header_on_a_dev_envelope_is_an_env_mismatch() -> None:
    value, headers = _lie("ce_env", b"prod", env="dev")  # on the prod ingest topic: headers and topic agree
    rejection = _reject(RecordGuard(), value, headers)
    assert rejection.reason is DlqReason.ENV_MISMATCH
    assert "'dev'" in rejection.message and "'prod'" in rejection.message and TOPIC in rejection.message


def test_a_dev_envelope_with_dev_headers_on_the_prod_topic_is_an_env_mismatch() -> None:
    value, headers = record("dev", "src", "1234", "kill")
    assert _reject(RecordGuard(), value, headers).reason is DlqReason.ENV_MISMATCH


def test_a_prod_envelope_with_a_dev_header_on_the_prod_topic_is_an_env_mismatch() -> None:
    value, headers = _lie("ce_env", b"dev")
    assert _reject(RecordGuard(), value, headers).reason is DlqReason.ENV_MISMATCH


def test_env_wins_over_other_lies_and_every_other_lie_is_named() -> None:
    value, headers = _lie("ce_env", b"prod", env="dev", title="4321")
    headers = _replace(headers, "ce_title", b"1234")
    assert _reject(RecordGuard(), value, headers).reason is DlqReason.ENV_MISMATCH
    value, headers = _lie("ce_title", b"1234", title="4321", category="purchase")
    headers = _replace(headers, "ce_type", b"kill")
    rejection = _reject(RecordGuard(), value, headers)
    assert rejection.reason is DlqReason.HEADER_MISMATCH
    assert "ce_title" in rejection.message and "ce_type" in rejection.message


def test_a_cached_header_combination_still_checks_every_envelope() -> None:
    guard = RecordGuard()
    honest_value, honest_headers = record("prod", "src", "1234", "kill", version=2, schema_id=7)
    for _ in range(3):
        guard.check(TOPIC, honest_value, honest_headers)
    for lie in [_lie("ce_env", b"prod", env="dev"), _lie("ce_schemaid", b"7", schema_id=70)]:
        # the same cached combination as the honest record (id and time differ per record anyway)
        assert (
            dict(lie[1]).items() >= {k: v for k, v in honest_headers if k not in ("ce_id", "ce_time")}.items()
        )
        with pytest.raises(Rejection):
            guard.check(TOPIC, *lie)


def test_an_envelope_without_metadata_is_malformed() -> None:
    _, headers = record("prod", "src", "1234", "kill")
    rejection = _reject(RecordGuard(), b"\x12\x01x", headers)
    assert rejection.reason is DlqReason.MALFORMED_ENVELOPE and "no metadata" in rejection.message


def test_without_verify_envelope_the_value_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_data: object) -> None:
        raise AssertionError("the envelope was parsed")

    monkeypatch.setattr(guards, "_parse_envelope", refuse)
    monkeypatch.setattr(guards, "envelope_metadata", refuse)
    value, headers = _lie("ce_env", b"prod", env="dev")
    assert RecordGuard(verify_envelope=False).check(TOPIC, value, headers)
    with pytest.raises(AssertionError, match="parsed"):
        RecordGuard().check(TOPIC, value, headers)


@pytest.mark.parametrize("key", [None, b"match-42"])
def test_the_record_limit_counts_key_value_and_headers_at_the_default(key: bytes | None) -> None:
    """At the production limit (common/limits.py): a record whose whole size is exactly the limit passes,
    one byte more is `value_too_large`, and a value under the limit alone is over it with its headers."""
    _, headers = record("prod", "src", "1234", "kill")
    overhead = record_size(key, b"", headers)
    guard = RecordGuard()  # the default limit
    at_limit = b"x" * (MAX_RECORD_BYTES - overhead)
    with pytest.raises(Rejection) as not_envelope:  # the size check passes; the value is no envelope
        guard.check(TOPIC, at_limit, headers, key)
    assert not_envelope.value.reason is DlqReason.MALFORMED_ENVELOPE
    over = _reject_keyed(guard, at_limit + b"x", headers, key)
    assert over.reason is DlqReason.VALUE_TOO_LARGE and f"{MAX_RECORD_BYTES + 1} bytes" in over.message
    under_alone = b"x" * (MAX_RECORD_BYTES - 20)  # 999,980 bytes: under the limit as a value
    assert _reject_keyed(guard, under_alone, headers, key).reason is DlqReason.VALUE_TOO_LARGE


def _reject_keyed(guard: RecordGuard, value: bytes, headers: Headers, key: bytes | None) -> Rejection:
    with pytest.raises(Rejection) as caught:
        guard.check(TOPIC, value, headers, key)
    return caught.value


@pytest.mark.parametrize("topic", ["legacy-events", "prod.src.ingest"])
def test_a_record_on_a_topic_outside_the_naming_convention_is_dead_lettered(topic: str) -> None:
    """An ingest pattern set wider than the convention: its records are dead letters, never a crash."""
    value, headers = record("prod", "src", "1234", "kill")
    with pytest.raises(Rejection) as caught:
        RecordGuard().check(topic, value, headers)
    assert caught.value.reason is DlqReason.ENV_MISMATCH
    assert repr(topic) in caught.value.message and "{env}.{source}.ingest.all-v1" in caught.value.message

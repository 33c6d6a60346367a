"""`message_id=`, `produced_at_ms=` and `producer=` on `Producer.prepare` / `send`: the caller's id and
time in the envelope and the `ce_*` headers, validated before anything is queued."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common.config import KafkaSettings
from common.envelope import decode_envelope, new_message_id
from common.headers import format_time, header_mismatches, headers_dict, metadata_to_headers
from common.topics import ingest_topic
from producers.errors import BrokerUnavailableError, InvalidRecordError
from producers.producer import Producer, checked_message_id
from tests.support import consume_all, offline_producer


@pytest.fixture
def offline() -> Iterator[Producer]:
    """A producer with no broker behind it (nothing is sent): prepare only."""
    with offline_producer() as producer:
        yield producer


def test_the_callers_id_time_and_producer_go_into_envelope_and_headers(offline: Producer) -> None:
    given = new_message_id()
    record = offline.prepare(
        "1", "c", 1, b"x", message_id=given, produced_at_ms=1_764_496_800_123, producer="gateway:k1"
    )
    md = decode_envelope(record.value).metadata
    headers = {k: v.decode() for k, v in headers_dict(record.headers).items()}
    assert record.message_id == md.message_id == headers["ce_id"] == given
    assert record.timestamp_ms == md.produced_at_ms == 1_764_496_800_123
    assert headers["ce_time"] == format_time(1_764_496_800_123)
    assert md.producer == headers["ce_producer"] == "gateway:k1"
    assert header_mismatches(record.headers, decode_envelope(record.value)) == []


def test_the_headers_are_exactly_those_of_the_envelopes_metadata(offline: Producer) -> None:
    """`prepare` builds the headers from the values it has (`record_headers`), not from the encoded
    metadata: they must still be byte for byte what `metadata_to_headers` gives for the envelope."""
    stamps = [1_764_496_800_123, 1_764_496_800_123, 1_764_496_800_999, 1_764_496_801_000, 5]
    for attributes in (None, {}, {"zone": "eu", "platform": "pc", "a_b": ""}):
        for stamp in stamps:  # the same millisecond twice (the cached time header), then others
            record = offline.prepare("1", "c", 2, b"x", attributes=attributes, produced_at_ms=stamp)
            assert record.headers == metadata_to_headers(decode_envelope(record.value).metadata)


def test_without_them_a_fresh_uuid7_now_and_the_producer_id(offline: Producer) -> None:
    first, second = offline.prepare("1", "c", 1, b"x"), offline.prepare("1", "c", 1, b"x")
    assert first.message_id != second.message_id
    assert uuid.UUID(first.message_id).version == 7
    assert decode_envelope(first.value).metadata.producer == offline.producer_id


@pytest.mark.parametrize(
    "given",
    [
        "0190B7A4-1234-7ABC-8DEF-0123456789AB",
        "{0190b7a4-1234-7abc-8def-0123456789ab}",
        "urn:uuid:0190b7a4-1234-7abc-8def-0123456789ab",
        "0190b7a412347abc8def0123456789ab",
    ],
)
def test_any_uuid_text_becomes_canonical_lowercase(offline: Producer, given: str) -> None:
    record = offline.prepare("1", "c", 1, b"x", message_id=given)
    assert record.message_id == "0190b7a4-1234-7abc-8def-0123456789ab"
    assert headers_dict(record.headers)["ce_id"] == record.message_id.encode()


@pytest.mark.parametrize(
    "given", ["", "not-a-uuid", "0190b7a4-1234-7abc-8def", 12345, b"0190b7a4", uuid.uuid4()]
)
def test_a_message_id_that_is_not_a_uuid_string_is_refused_naming_it(offline: Producer, given: Any) -> None:
    with pytest.raises(InvalidRecordError, match="message_id must be a UUID string") as caught:
        offline.prepare("1", "c", 1, b"x", message_id=given)
    assert caught.value.field == "message_id"
    assert isinstance(caught.value, ValueError)  # an InvalidInputError, as every bad-input error


@pytest.mark.parametrize("given", [-1, 2**63, 1.5, True, "1764496800123"])
def test_a_bad_produced_at_ms_is_refused_naming_it(offline: Producer, given: Any) -> None:
    with pytest.raises(InvalidRecordError, match="produced_at_ms must be Unix milliseconds") as caught:
        offline.prepare("1", "c", 1, b"x", produced_at_ms=given)
    assert caught.value.field == "produced_at_ms"


def test_attribute_and_size_errors_name_their_argument(offline: Producer) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        offline.prepare("1", "c", 1, b"x", attributes={"bad name": "v"})
    assert caught.value.field == "attributes"
    with pytest.raises(InvalidRecordError, match="limit is 1000000") as caught:
        offline.prepare("1", "c", 1, b"x" * 999_000, key=b"k" * 700)
    assert caught.value.field == "record"


def test_attribute_names_are_checked_every_time_until_one_passes(offline: Producer) -> None:
    """Names that passed are remembered; a bad name is refused on every send, and a remembered name
    still needs a string value."""
    for _ in range(2):
        with pytest.raises(InvalidRecordError, match="attribute name 'bad name'"):
            offline.prepare("1", "c", 1, b"x", attributes={"bad name": "v"})
        assert offline.prepare("1", "c", 1, b"x", attributes={"good.name": "v"}).headers[-1] == (
            "attr.good.name",
            b"v",
        )
        with pytest.raises(InvalidRecordError, match=r"'good\.name': the value must be a string"):
            offline.prepare("1", "c", 1, b"x", attributes={"good.name": 1})  # type: ignore[dict-item]


def test_checked_message_id_keeps_canonical_text_as_is() -> None:
    given = new_message_id()
    assert checked_message_id(given) is given


def test_ensure_topic_is_public_and_fails_fast_without_kafka(offline: Producer) -> None:
    assert offline.ensure_topic() == "dev.s.ingest.all-v1"  # known: no Kafka needed
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:9"):
        offline.ensure_topic("dev", "other")


def test_send_with_an_id_lands_with_that_id(
    producer: Producer, workload_title: str, kafka: KafkaSettings
) -> None:
    given = new_message_id()
    payload = {"session_id": "s-1", "player_id": "p-1", "sent_at_ms": 1, "latency_ms": 20.5}
    delivered = producer.send(
        workload_title, "session_heartbeat", 1, payload, message_id=given, produced_at_ms=1_764_496_800_123
    ).result(timeout=30)
    assert delivered.message_id == given
    topic = ingest_topic(producer.settings.env, "telemetry")
    (msg,) = consume_all(kafka.bootstrap_servers, [topic], expected=1)
    assert decode_envelope(msg.value()).metadata.message_id == given
    assert headers_dict(msg.headers())["ce_id"] == given.encode()
    assert msg.timestamp()[1] == 1_764_496_800_123

"""An envelope with headers produced to the real broker comes back byte-identical."""

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common.envelope import decode_envelope, encode_envelope, make_envelope
from common.headers import header_mismatches, headers_to_metadata, metadata_to_headers

pytestmark = pytest.mark.integration


def test_envelope_round_trip_through_kafka(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"prod.telemetry.{unique_name}.match_started-v1"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)

    envelope = make_envelope(
        env="prod",
        source="telemetry",
        title=unique_name,
        category="match_started",
        version=1,
        schema_id=1,
        payload_format="raw",
        payload=bytes(range(256)) * 4,
        producer="test",
        attributes={"platform": "pc"},
    )
    value = encode_envelope(envelope)
    headers = metadata_to_headers(envelope.metadata)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    delivered = []
    producer.produce(
        topic, value=value, key=b"match-1", headers=headers, on_delivery=lambda e, m: delivered.append(e)
    )
    assert producer.flush(30) == 0
    assert delivered == [None]

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
    finally:
        consumer.close()

    assert msg.value() == value
    assert msg.key() == b"match-1"
    assert msg.headers() == headers
    decoded = decode_envelope(msg.value())
    assert decoded == envelope
    assert headers_to_metadata(msg.headers()) == decoded.metadata
    assert header_mismatches(msg.headers(), decoded) == []

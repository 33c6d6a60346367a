"""Send one envelope through the broker and print what came back: the quickest proof the stack works.

python -m common.smoke
"""

from __future__ import annotations

import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from google.protobuf.json_format import MessageToDict

from common.config import KafkaSettings
from common.envelope import decode_envelope, encode_envelope, make_envelope
from common.headers import header_mismatches, metadata_to_headers
from common.kafka_admin import TopicEnsurer

SMOKE_TOPIC = "dev.smoke.all.roundtrip-v1"


def round_trip(settings: KafkaSettings | None = None, timeout_s: float = 30.0) -> dict:
    settings = settings or KafkaSettings()
    conf = settings.client_config()
    TopicEnsurer(conf, partitions=1).ensure(SMOKE_TOPIC)
    envelope = make_envelope(
        env="dev", source="smoke", title="all", category="roundtrip", version=1, schema_id=1,
        payload_format="json", payload=b'{"hello": "refinery"}', producer="refinery-smoke",
        attributes={"platform": "pc"},
    )  # fmt: skip
    value = encode_envelope(envelope)
    producer = Producer({**conf, "enable.idempotence": True})
    producer.produce(SMOKE_TOPIC, value=value, headers=metadata_to_headers(envelope.metadata))
    if producer.flush(timeout_s) != 0:
        raise RuntimeError(f"the broker at {settings.bootstrap_servers} did not acknowledge the record")
    consumer = Consumer({**conf, "group.id": f"smoke-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    consumer.subscribe([SMOKE_TOPIC])
    try:
        for _ in range(int(timeout_s)):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            got = decode_envelope(msg.value())
            if got.metadata.message_id == envelope.metadata.message_id:
                return {
                    "topic": SMOKE_TOPIC,
                    "byte_identical": msg.value() == value,
                    "headers_agree": header_mismatches(msg.headers(), got) == [],
                    "envelope": MessageToDict(got, preserving_proto_field_name=True),
                }
    finally:
        consumer.close()
    raise RuntimeError(f"the record did not come back from {SMOKE_TOPIC} within {timeout_s:.0f}s")


def main() -> int:
    result = round_trip()
    print(json.dumps(result, indent=2))
    return 0 if result["byte_identical"] and result["headers_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The SDK against the real broker and the real schema registry."""

from __future__ import annotations

import json
import threading
from concurrent.futures import wait

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.envelope import decode_envelope
from common.headers import header_mismatches, headers_dict
from common.topics import ingest_topic
from producers.aio import AsyncProducer
from producers.errors import PayloadValidationError, SchemaNotRegisteredError, SchemaVersionError
from producers.producer import Delivered, Producer
from producers.reader import Reader, jsonable
from producers.schemas import SchemaCatalog
from producers.workload import WorkloadGenerator, purchase_class
from tests.support import consume_all

pytestmark = pytest.mark.integration


def _one_of_each(title: str) -> list[tuple[str, int, object]]:
    gen = {m.category: m for m in WorkloadGenerator(seed=5).take(200)}
    return [
        ("match_started", 1, gen["match_started"].payload),
        ("player_killed", 2, gen["player_killed"].payload),
        ("purchase", 1, gen["purchase"].payload),
        ("session_heartbeat", 1, gen["session_heartbeat"].payload),
        ("crash_report", 1, gen["crash_report"].payload),
    ]


def test_round_trip_every_format(
    producer: Producer, catalog: SchemaCatalog, workload_title: str, kafka: KafkaSettings
) -> None:
    sent = _one_of_each(workload_title)
    futures = [
        producer.send(workload_title, category, version, payload, attributes={"platform": "pc"})
        for category, version, payload in sent
    ]
    delivered = [f.result(timeout=30) for f in futures]
    topic = ingest_topic(producer.settings.env, "telemetry")
    assert {d.topic for d in delivered} == {topic}

    records = consume_all(kafka.bootstrap_servers, [topic], expected=len(sent))
    assert len(records) == len(sent)
    for msg in records:
        assert header_mismatches(msg.headers(), decode_envelope(msg.value())) == []
    with Reader(
        [topic],
        catalog=catalog,
        kafka=kafka,
        from_beginning=True,
    ) as reader:
        decoded = {
            r.metadata["category"]: r for r in reader.records(max_records=len(sent), idle_timeout_s=15)
        }
    assert {r.metadata["format"] for r in decoded.values()} == {"avro", "protobuf", "json", "raw"}
    for category, version, payload in sent:
        record = decoded[category]
        assert record.error is None
        assert record.metadata["version"] == version and record.metadata["attributes"] == {"platform": "pc"}
        assert jsonable(record.payload) == jsonable(payload)  # Protobuf classes differ by pool: compare data
        assert record.key == payload_key(payload)


def payload_key(payload: object) -> bytes | None:
    if isinstance(payload, dict):
        return payload["match_id"].encode()
    if isinstance(payload, bytes):
        return None  # raw bytes carry no readable key field
    return payload.match_id.encode()  # type: ignore[attr-defined]


def test_unregistered_schema_is_refused(producer: Producer, workload_title: str) -> None:
    with pytest.raises(SchemaNotRegisteredError, match="version=3"):
        producer.send(workload_title, "player_killed", 3, {"match_id": "m"})
    with pytest.raises(SchemaNotRegisteredError, match="no_such_category"):
        producer.send(workload_title, "no_such_category", 1, {"match_id": "m"})
    assert producer.stats.queued == 0


def test_invalid_payload_is_refused_naming_the_field(producer: Producer, workload_title: str) -> None:
    good = WorkloadGenerator(seed=1).take(50)
    kill = next(m.payload for m in good if m.category == "player_killed")
    with pytest.raises(PayloadValidationError, match="distance_m") as exc:
        producer.send(workload_title, "player_killed", 2, {**kill, "distance_m": "far"})
    assert exc.value.field.endswith("distance_m")
    beat = next(m.payload for m in good if m.category == "session_heartbeat")
    with pytest.raises(PayloadValidationError, match="latency_ms") as exc:
        producer.send(workload_title, "session_heartbeat", 1, {**beat, "latency_ms": -1})
    assert exc.value.field == "latency_ms"
    # A Protobuf message sent under an Avro schema is refused too.
    with pytest.raises(PayloadValidationError, match="AVRO"):
        producer.send(workload_title, "match_started", 1, purchase_class()(match_id="m"))
    assert producer.stats.queued == 0


def test_register_checks_versions(catalog: SchemaCatalog, workload_title: str, title: str) -> None:
    v2 = catalog.resolve(workload_title, "player_killed", 2)
    assert v2.subject == f"{workload_title}.player_killed-value" and v2.version == 2
    # the registry stores the canonical form (compact JSON for Avro): the same schema, not the same text
    assert json.loads(catalog.by_id(v2.schema_id).schema_str) == json.loads(v2.schema_str)
    # Registering the same schema again is a no-op that confirms its version; a wrong version is refused.
    assert (
        catalog.register(workload_title, "player_killed", v2.schema_str, "AVRO", version=2).schema_id
        == v2.schema_id
    )
    with pytest.raises(SchemaVersionError, match="version 2, not 1"):
        catalog.register(workload_title, "player_killed", v2.schema_str, "AVRO", version=1)
    with pytest.raises(SchemaVersionError, match="would make version 1, not 2"):
        catalog.register(workload_title, "fresh_category", v2.schema_str, "AVRO", version=2)


def test_auto_register_is_opt_in(kafka: KafkaSettings, registry: RegistrySettings, unique_name: str) -> None:
    schema = Schema('{"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]}', "AVRO")
    settings = ProducerSettings(env=unique_name, partitions=1)
    with Producer(settings, kafka=kafka, registry=registry) as producer:
        with pytest.raises(SchemaNotRegisteredError):
            producer.send(unique_name, "ping", 1, {"n": 1}, schema=schema)
    dev = ProducerSettings(env=unique_name, partitions=1, auto_register=True)
    with Producer(dev, kafka=kafka, registry=registry) as producer:
        assert producer.send(unique_name, "ping", 1, {"n": 1}, schema=schema).result(timeout=30).offset == 0


def test_message_ids_unique_across_100k_sends(
    producer: Producer, workload_title: str, kafka_bootstrap: str
) -> None:
    count = 100_000
    payload = {"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 3.5}
    futures = [producer.send(workload_title, "session_heartbeat", 1, payload) for _ in range(count)]
    producer.flush(60)
    ids = {f.result().message_id for f in futures}
    assert len(ids) == count
    stored = consume_all(
        kafka_bootstrap, [ingest_topic(producer.settings.env, "telemetry")], expected=count, timeout=60
    )
    assert len({headers_dict(m.headers())["ce_id"] for m in stored}) == count


def test_topic_created_once_under_concurrent_senders(
    kafka: KafkaSettings, registry: RegistrySettings, workload_title: str, unique_name: str
) -> None:
    settings = ProducerSettings(env=unique_name, source="backend", partitions=5)
    producers = [Producer(settings, kafka=kafka, registry=registry) for _ in range(3)]
    payload = {"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 1.0}
    start = threading.Barrier(6)
    futures: list = []
    errors: list[BaseException] = []

    def sender(producer: Producer) -> None:
        start.wait()
        try:
            futures.extend(producer.send(workload_title, "session_heartbeat", 1, payload) for _ in range(50))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(p,)) for p in producers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in producers:
        p.close()
    assert errors == []
    done, _ = wait([f.as_future() for f in futures], timeout=30)  # handles convert for `wait`
    assert all(isinstance(f.result(), Delivered) for f in done) and len(done) == 300
    topic = ingest_topic(unique_name, "backend")
    meta = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(topic, timeout=10)
    assert len(meta.topics[topic].partitions) == 5


def test_async_producer(
    kafka: KafkaSettings, registry: RegistrySettings, workload_title: str, unique_name: str
) -> None:
    import asyncio

    async def main() -> list[Delivered]:
        async with AsyncProducer(
            ProducerSettings(env=unique_name, partitions=1), kafka=kafka, registry=registry
        ) as p:
            await p.preload(workload_title, "match_started", 1)
            payload = next(
                m.payload for m in WorkloadGenerator(seed=9).take(20) if m.category == "match_started"
            )
            first = await p.send(workload_title, "match_started", 1, payload)
            queued = [await p.enqueue(workload_title, "match_started", 1, payload) for _ in range(10)]
            return [first, *await asyncio.gather(*queued)]

    delivered = asyncio.run(main())
    assert [d.offset for d in delivered] == list(range(11))

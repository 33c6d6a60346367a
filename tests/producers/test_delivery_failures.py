"""Delivery errors and back-pressure reach the caller. Uses a broker of its own (started and stopped here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from common.config import KafkaSettings, LocalKafkaSettings, ProducerSettings
from devstack.local_kafka import LocalKafka
from producers.errors import DeliveryError, QueueFullError
from producers.metrics import ProducerMetrics
from producers.producer import Delivered, Producer
from producers.schemas import SchemaCatalog
from tests.support import free_port

pytestmark = pytest.mark.integration

PING = '{"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]}'


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(
        port=free_port(),
        home=tmp_path / "kafka",
        settings=LocalKafkaSettings(controller_port=free_port(), heap="512m"),
    )
    broker.start()
    yield broker
    broker.wipe()


def test_delivery_error_and_back_pressure_reach_the_caller(
    own_broker: LocalKafka, catalog: SchemaCatalog, unique_name: str
) -> None:
    catalog.register(unique_name, "ping", PING, "AVRO", version=1)
    settings = ProducerSettings(
        env=unique_name, partitions=1, delivery_timeout_ms=3000, queue_max_messages=5, block_timeout_s=0.5
    )
    kafka = KafkaSettings(bootstrap_servers=own_broker.bootstrap)
    metrics = ProducerMetrics(CollectorRegistry())
    producer = Producer(settings, kafka=kafka, catalog=catalog, metrics=metrics)
    try:
        assert isinstance(producer.send(unique_name, "ping", 1, {"n": 0}).result(timeout=30), Delivered)

        own_broker.stop(kill=True)
        reports: list[tuple[DeliveryError | None, Delivered | None]] = []
        futures = [
            producer.send(unique_name, "ping", 1, {"n": n}, on_delivery=lambda e, d: reports.append((e, d)))
            for n in range(5)
        ]
        # The local queue holds 5 records: the sixth waits block_timeout_s, then fails loudly.
        with pytest.raises(QueueFullError, match="queue full"):
            producer.send(unique_name, "ping", 1, {"n": 5})

        for future in futures:
            error = future.exception(timeout=30)
            assert isinstance(error, DeliveryError)
            assert error.topic == f"{unique_name}.telemetry.ingest.all-v1" and error.message_id
        assert len(reports) == 5 and all(isinstance(e, DeliveryError) and d is None for e, d in reports)
        assert producer.stats.failed == 5 and producer.stats.delivered == 1

        # ...and the same story in the producer's metrics.
        def count(name: str, **labels: str) -> float:
            return metrics.registry.get_sample_value(f"refinery_producer_{name}_total", labels) or 0.0

        assert count("delivery_errors", reason="msg_timed_out") == 5  # librdkafka _MSG_TIMED_OUT
        assert count("send_refused", reason="queue_full") == 1
        assert count("records_sent", env=unique_name, source="telemetry", category="ping") == 1
    finally:
        producer.close(timeout=10)

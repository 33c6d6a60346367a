"""The SDK's Prometheus metrics count what happened (sent, refused), the demo serves them, and
librdkafka's client errors become a readable cause. Delivery errors are counted in
test_delivery_failures.py, which has a broker of its own to stop."""

from __future__ import annotations

import httpx
import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from common.client_errors import ClientErrors
from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from producers.demo import metrics_server
from producers.errors import (
    FlushTimeoutError,
    PayloadValidationError,
    ProducerClosedError,
    SchemaNotRegisteredError,
)
from producers.metrics import ProducerMetrics
from producers.producer import OutgoingRecord, Producer
from producers.schemas import SchemaCatalog
from tests.support import free_port

PING = '{"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]}'


def sample(metrics: ProducerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.integration
def test_sent_and_refused_sends_are_counted(
    kafka: KafkaSettings, catalog: SchemaCatalog, unique_name: str
) -> None:
    catalog.register(unique_name, "ping", PING, "AVRO", version=1)
    metrics = ProducerMetrics(CollectorRegistry())
    settings = ProducerSettings(env=unique_name, source="telemetry", partitions=1)
    producer = Producer(settings, kafka=kafka, catalog=catalog, metrics=metrics)
    try:
        for n in range(3):
            producer.send(unique_name, "ping", 1, {"n": n}).result(timeout=30)
        with pytest.raises(SchemaNotRegisteredError):
            producer.send(unique_name, "pong", 1, {"n": 0})
        with pytest.raises(PayloadValidationError):
            producer.send(unique_name, "ping", 1, {"n": "not a number"})
        with pytest.raises(PayloadValidationError):
            producer.send(unique_name, "ping", 1, {})
        assert sample(metrics, "refinery_producer_queue_length") == 0
    finally:
        producer.close(timeout=10)
    with pytest.raises(ProducerClosedError):
        producer.send(unique_name, "ping", 1, {"n": 9})

    sent = sample(
        metrics, "refinery_producer_records_sent_total", env=unique_name, source="telemetry", category="ping"
    )
    assert sent == 3 == producer.stats.delivered
    refused = "refinery_producer_send_refused_total"
    assert sample(metrics, refused, reason="unregistered_schema") == 1
    assert sample(metrics, refused, reason="invalid_payload") == 2
    assert sample(metrics, refused, reason="closed") == 1
    assert sample(metrics, "refinery_producer_delivery_errors_total", reason="msg_timed_out") == 0


def test_demo_metrics_server_serves_the_sdk_metrics() -> None:
    port = free_port()
    with metrics_server(ProducerSettings(metrics_port=port)):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for name in ("refinery_producer_send_refused_total", "refinery_producer_queue_length"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, text[:2000]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_client_errors_name_the_authentication_failure_and_hide_the_password() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="127.0.0.1:19092", sasl_username="alice", sasl_password=SecretStr("s3cret-pw")
    )
    errors = ClientErrors(kafka)
    errors.on_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: bad s3cret-pw"))
    errors.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert errors.problem == (
        "authentication failed for user 'alice' at 127.0.0.1:19092: SASL authentication error: bad ***"
    )
    errors.clear()
    assert errors.problem is None
    errors.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    errors.on_error(KafkaError(KafkaError._PARTITION_EOF, "not a client problem"))
    assert errors.problem == "1/1 brokers are down"


def test_queue_length_counts_waiting_records_of_open_producers() -> None:
    metrics = ProducerMetrics(CollectorRegistry())
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens: nothing leaves
    producer = Producer(
        ProducerSettings(env="dev"), kafka=kafka, registry=RegistrySettings(), metrics=metrics
    )
    record = OutgoingRecord(topic="t", key=None, value=b"x", headers=[], message_id="m", timestamp_ms=0)
    assert producer.try_submit(record) is not None and producer.try_submit(record) is not None
    # librdkafka's queue length also counts events not served yet (here: "connection refused" errors)
    assert sample(metrics, "refinery_producer_queue_length") >= 2
    with pytest.raises(FlushTimeoutError):
        producer.close(timeout=0.2)
    assert sample(metrics, "refinery_producer_queue_length") == 0  # a closed producer is not counted

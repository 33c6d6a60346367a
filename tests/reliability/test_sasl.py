"""A broker whose client listener needs SASL/PLAIN (a broker of our own): the SDK, the registry and a
refinery worker work against it from configuration alone (REFINERY_KAFKA_SECURITY_PROTOCOL, SASL_*), and
wrong credentials give a clear error within a bounded time, not a hang."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer as ConfluentProducer

from common.config import KafkaSettings, LocalKafkaSettings, ProducerSettings, RegistrySettings
from common.kafka_admin import TopicEnsurer
from devstack.local_kafka import LocalKafka
from producers.errors import BrokerUnavailableError
from producers.producer import Producer
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, worker_env
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up
from tests.schema_registry.processes import RegistryProcess
from tests.support import consume_all, free_port

pytestmark = pytest.mark.integration

USERS = {"admin": "admin-Secret-1", "alice": "alice-Secret-2"}
ROUTES = """
routes:
  - name: by-category
    match: {env: prod}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
"""
SENT = 500
PING = json.dumps({"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]})


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, int]]:
    sasl_port = free_port()
    users = " ".join(f'user_{name}="{password}"' for name, password in USERS.items())
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{USERS["admin"]}" {users};'
    )
    broker = LocalKafka(
        port=free_port(),
        home=tmp_path_factory.mktemp("sasl") / "kafka",
        settings=LocalKafkaSettings(controller_port=free_port(), heap="512m"),
        listeners={"SASL": (sasl_port, "SASL_PLAINTEXT")},
        extra_properties={
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl.plain.sasl.jaas.config": jaas,
        },
    )
    broker.start()
    yield broker, sasl_port
    broker.wipe()


def sasl_env(port: int, password: str = USERS["alice"]) -> dict[str, str]:
    return {
        "REFINERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "REFINERY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REFINERY_KAFKA_SASL_MECHANISM": "PLAIN",
        "REFINERY_KAFKA_SASL_USERNAME": "alice",
        "REFINERY_KAFKA_SASL_PASSWORD": password,
    }


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """KafkaSettings built from the environment only, as every process builds them."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return KafkaSettings()


def test_sdk_and_registry_over_sasl(
    sasl_broker: tuple[LocalKafka, int], unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = sasl_broker
    env = sasl_env(port)
    kafka = settings_from(env, monkeypatch)
    bootstrap = env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"]
    registry = RegistryProcess(bootstrap, "_schemas", log_path=tmp_path / "registry.log", env=env).start()
    try:
        settings = ProducerSettings(env="prod", source=unique_name, partitions=3)
        with Producer(settings, kafka=kafka, registry=RegistrySettings(url=registry.url)) as producer:
            producer.register("1234", "ping", PING, "AVRO", version=1)
            futures = [producer.send("1234", "ping", 1, {"n": n}, key=str(n)) for n in range(SENT)]
            delivered = {f.result(timeout=60).message_id for f in futures}
    finally:
        registry.stop()
    ingest = f"prod.{unique_name}.ingest.all-v1"
    read = consume_all(bootstrap, [ingest], expected=SENT, timeout=60, extra_config=kafka.client_config())
    assert {dict(m.headers() or [])["ce_id"].decode() for m in read} == delivered and len(read) == SENT
    record_figures("sasl_sdk_registry", sent=SENT, acknowledged=len(delivered), read_back=len(read))


def test_worker_over_sasl(
    sasl_broker: tuple[LocalKafka, int], unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = sasl_broker
    env = sasl_env(port)
    conf = settings_from(env, monkeypatch).client_config()
    worker_environment = {**worker_env(env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"], unique_name, tmp_path), **env}
    publish_route_set(conf, worker_environment["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    ingest = f"prod.{unique_name}.ingest.all-v1"
    TopicEnsurer(conf, partitions=3).ensure(ingest)
    producer = ConfluentProducer({**conf, "enable.idempotence": True})
    for n in range(SENT):
        value, headers = record("prod", unique_name, "1234", "ping")
        producer.produce(ingest, value, str(n), headers=headers)
    assert producer.flush(30) == 0
    worker = WorkerProcess(worker_environment, tmp_path / "worker.log")
    try:
        worker.start()
        wait_caught_up(conf, unique_name, [ingest])
        dlq_topic = worker_environment["REFINERY_WORKER_DLQ_TOPIC"]
        report = reconcile_worker_output(conf, ROUTES, name=unique_name, dlq_topic=dlq_topic)
        assert report.clean and report.delivered == SENT, report
    finally:
        worker.stop()


def wrong_credentials(port: int, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], KafkaSettings]:
    env = sasl_env(port, password="wrong-password")
    return env, settings_from(env, monkeypatch)


def test_sdk_with_wrong_credentials_fails_within_bounds(
    sasl_broker: tuple[LocalKafka, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, kafka = wrong_credentials(sasl_broker[1], monkeypatch)
    started = time.monotonic()
    with Producer(ProducerSettings(env="prod"), kafka=kafka) as producer:
        with pytest.raises(BrokerUnavailableError, match=r"Kafka at 127\.0\.0\.1:\d+: no answer within 5s"):
            producer.check_connection(timeout=5)
    assert time.monotonic() - started < 15


def test_sdk_with_wrong_credentials_says_authentication_failed(
    sasl_broker: tuple[LocalKafka, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, kafka = wrong_credentials(sasl_broker[1], monkeypatch)
    with Producer(ProducerSettings(env="prod"), kafka=kafka) as producer:
        with pytest.raises(BrokerUnavailableError, match=r"(?i)authenticat") as raised:
            producer.check_connection(timeout=5)
    assert f"user 'alice' at 127.0.0.1:{sasl_broker[1]}" in str(raised.value)
    assert "wrong-password" not in str(raised.value)


def test_registry_with_wrong_credentials_exits_saying_why(
    sasl_broker: tuple[LocalKafka, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = wrong_credentials(sasl_broker[1], monkeypatch)
    log_path = tmp_path / "registry.log"
    registry = RegistryProcess(
        env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"], "_schemas_wrong", log_path=log_path, env=env
    )
    started = time.monotonic()
    with pytest.raises((RuntimeError, TimeoutError)):
        registry.start(timeout=60)
    registry.stop()
    log = log_path.read_text(errors="replace")
    assert "Kafka refused the registry's credentials" in log and "uthenticat" in log, log[-2000:]
    assert "wrong-password" not in log
    record_figures("sasl_registry_wrong_credentials", refused_after_s=round(time.monotonic() - started, 1))


def test_worker_with_wrong_credentials_exits_saying_why(
    sasl_broker: tuple[LocalKafka, int], unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = wrong_credentials(sasl_broker[1], monkeypatch)
    worker_environment = {**worker_env(env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"], unique_name, tmp_path), **env}
    worker = WorkerProcess(worker_environment, tmp_path / "worker.log")
    started = time.monotonic()
    with pytest.raises(AssertionError, match="worker exited"):
        worker.start()
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "uthenticat" in log, log[-2000:]
    assert "wrong-password" not in log
    record_figures("sasl_worker_wrong_credentials", refused_after_s=round(time.monotonic() - started, 1))

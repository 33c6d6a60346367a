"""The SDK keeps sending while its broker (one of our own) is stopped and restarted: every acknowledged
record is in the topic afterwards, every send made during the outage either succeeds later or fails to
the caller with a clear error, and none vanishes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import KafkaSettings, LocalKafkaSettings, ProducerSettings, RegistrySettings
from common.errors import RefineryError
from devstack.local_kafka import LocalKafka
from producers.delivery import DeliveryHandle
from producers.errors import DeliveryError
from producers.producer import Producer
from producers.schemas import SchemaCatalog
from tests.reliability.figures import record_figures
from tests.support import consume_all, free_port

pytestmark = pytest.mark.integration

PING = json.dumps({"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]})
OUTAGE_S = 30.0 if os.environ.get("REFINERY_SOAK") == "1" else 8.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(port=free_port(), home=tmp_path / "kafka",
                        settings=LocalKafkaSettings(controller_port=free_port(), heap="512m"))  # fmt: skip
    broker.start()
    yield broker
    broker.wipe()


SOAK_ONLY = pytest.mark.skipif(
    os.environ.get("REFINERY_SOAK") != "1",
    reason="soak variant (REFINERY_SOAK=1): CI runs the SIGKILL outage",
)


@pytest.mark.parametrize("how", [pytest.param("sigterm", marks=SOAK_ONLY), "sigkill"])
def test_broker_restart_while_sending_loses_nothing_acknowledged(
    own_broker: LocalKafka, registry_url: str, unique_name: str, how: str
) -> None:
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=registry_url))
    catalog.register("1234", "ping", PING, "AVRO", version=1)
    settings = ProducerSettings(env=unique_name, partitions=3, delivery_timeout_ms=120_000, block_timeout_s=1)
    producer = Producer(
        settings, kafka=KafkaSettings(bootstrap_servers=own_broker.bootstrap), catalog=catalog
    )
    futures: dict[int, DeliveryHandle] = {}
    refused: dict[int, str] = {}  # sends that raised to the caller at once
    stop = threading.Event()

    def sender() -> None:
        n = 0
        while not stop.is_set():
            try:
                futures[n] = producer.send("1234", "ping", 1, {"n": n}, key=str(n % 10))
            except RefineryError as exc:
                refused[n] = str(exc)
            n += 1
            time.sleep(0.002)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        time.sleep(3)
        own_broker.stop(kill=how == "sigkill")
        time.sleep(OUTAGE_S)
        own_broker.start()
        time.sleep(3)
    finally:
        stop.set()
        thread.join(30)
    producer.flush(150)
    producer.close(10)
    catalog.close()

    acked: dict[str, int] = {}
    failed: dict[int, BaseException] = {}
    for n, future in futures.items():
        assert future.done(), f"send {n} neither succeeded nor failed"  # none vanishes
        error = future.exception()
        if error is None:
            acked[future.result().message_id] = n
        else:
            failed[n] = error
    for error in failed.values():  # failures reach the caller typed and saying what happened
        assert isinstance(error, DeliveryError) and "was not delivered" in str(error)
    for message in refused.values():
        assert message
    topic = f"{unique_name}.telemetry.ingest.all-v1"
    read = consume_all(own_broker.bootstrap, [topic], expected=len(acked), timeout=90)
    read_ids = [dict(m.headers() or [])["ce_id"].decode() for m in read]
    lost = set(acked) - set(read_ids)
    duplicated = len(read_ids) - len(set(read_ids))
    record_figures(
        f"broker_outage[{how}]", outage_s=OUTAGE_S, sends=len(futures) + len(refused),
        acknowledged=len(acked), failed_to_caller=len(failed), refused_at_send=len(refused),
        lost=len(lost), duplicated=duplicated,
    )  # fmt: skip
    assert len(acked) > 0 and lost == set(), f"{len(lost)} acknowledged records lost"
    assert duplicated == 0
    assert len(acked) + len(failed) == len(futures)

"""Kafka going down mid-request, on a broker of this test's own (never the shared one), frozen with
SIGSTOP (a hung broker or a partition: connections stay open, nothing answers; a restart would only add
its start-up time): the request in flight is answered 503 with `Retry-After` and its events `failed`
(none reported accepted), requests while Kafka is down are refused 503 at once, /ready says so, and the
gateway serves again by itself once Kafka is back; every event it reported accepted is in the topic."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uuid_utils

from common.config import LocalKafkaSettings
from common.envelope import decode_envelope
from devstack.local_kafka import LocalKafka
from tests.gateway.harness import GatewayProcess, gateway_env, unique
from tests.support import consume_all, free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(port=free_port(), home=tmp_path / "kafka",
                        settings=LocalKafkaSettings(controller_port=free_port(), heap="512m"))  # fmt: skip
    broker.start()
    yield broker
    pid = broker.pid()
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
    broker.wipe()


def batch(n: int = 20) -> bytes:
    payload = {"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 1.0}
    events = [
        {"category": "session_heartbeat", "version": 1, "id": str(uuid_utils.uuid7()), "payload": payload}
        for _ in range(n)
    ]
    return json.dumps(events).encode()


def test_kafka_down_mid_request_is_503_and_the_gateway_recovers(
    own_broker: LocalKafka, registry_url: str, title: str, tmp_path: Path
) -> None:
    env = gateway_env(own_broker.bootstrap, registry_url, "_gw_keys", delivery_timeout_ms=3000,
                      kafka_check_interval_s=0.5, retry_after_s=2)  # fmt: skip
    gateway = GatewayProcess(env, tmp_path / "gateway.log").start()
    accepted: list[str] = []

    def post() -> httpx.Response:
        response = gateway.post(key, batch(), timeout=30)
        accepted.extend(e["id"] for e in response.json().get("events", []) if e["status"] == "accepted")
        return response

    try:
        key = gateway.make_key(unique("gwdown"), title, ("telemetry",))
        assert post().status_code == 200
        pid = own_broker.pid()
        assert pid is not None
        answers: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: answers.setdefault("mid", post()))
        started = time.monotonic()
        os.kill(pid, signal.SIGSTOP)  # Kafka stops answering while the request waits for its acks
        thread.start()
        thread.join(30)
        mid = answers["mid"]
        assert mid.status_code == 503, mid.text
        assert mid.headers["Retry-After"] == "2"
        doc = mid.json()
        assert doc["accepted"] == 0 and doc["failed"] == 20, doc
        assert {e["status"] for e in doc["events"]} == {"failed"} and doc["error_code"] == 50302
        assert "not delivered" in doc["message"] and time.monotonic() - started < 10

        # while Kafka is down: refused at once, nothing queued; /ready says why; /health stays up
        refused = wait_for(lambda: (r := post()).json().get("error_code") == 50301 and r, timeout=20,
                           what="requests refused while Kafka is down")  # fmt: skip
        assert refused.status_code == 503 and "Kafka is unavailable" in refused.json()["message"]
        assert refused.headers["Retry-After"] == "2"
        assert httpx.get(gateway.url + "/ready", timeout=5).status_code == 503
        assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200

        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: post().status_code == 200, timeout=60, interval=1, what="the gateway to recover")
        assert gateway.alive()
        topic = f"{key and gateway_topic(gateway, key)}"
        ids = [decode_envelope(m.value()).metadata.message_id
               for m in consume_all(own_broker.bootstrap, [topic], timeout=30, idle=3)]  # fmt: skip
        assert set(accepted) <= set(ids), "an event reported accepted is not in Kafka"
        assert len(ids) == len(set(ids))
    finally:
        gateway.stop()


def gateway_topic(gateway: GatewayProcess, key: str) -> str:
    from gateway.keys import key_id_of, read_keys

    ring = read_keys({"bootstrap.servers": gateway.bootstrap}, gateway.keys_topic)
    found = ring.get(key_id_of(key) or "")
    assert found is not None
    return f"{found.scope.env}.telemetry.ingest.all-v1"

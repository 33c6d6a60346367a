"""Run `refinery worker` as a real subprocess (so SIGKILL is real) and feed it records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from common.envelope import encode_envelope, make_envelope
from common.headers import Headers, metadata_to_headers
from common.kafka_admin import TopicEnsurer
from tests.support import free_port, wait_for

REFINERY = Path(sys.executable).parent / "refinery"


def worker_env(bootstrap: str, name: str, tmp: Path, **overrides: Any) -> dict[str, str]:
    """Environment for a worker whose group, topics and ports belong to one test (`name`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINERY_WORKER_")}
    env.update(
        {
            "REFINERY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REFINERY_LOG_FORMAT": "json",
            "REFINERY_WORKER_GROUP_ID": name,
            "REFINERY_WORKER_INGEST_PATTERN": rf"^[a-z]+\.{name}\.ingest\.all-v1$",
            "REFINERY_WORKER_ROUTES_TOPIC": f"_{name}-routes",
            "REFINERY_WORKER_DLQ_TOPIC": f"_{name}-dlq",
            "REFINERY_WORKER_DATA_DIR": str(tmp / "faust"),
            "REFINERY_WORKER_DERIVED_PARTITIONS": "3",
            "REFINERY_WORKER_STATS_INTERVAL_S": "1",
        }
    )
    env.update({f"REFINERY_WORKER_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


class WorkerProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.port = free_port()
        self.env["REFINERY_WORKER_WEB_PORT"] = str(self.port)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(REFINERY), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for(self._serving, timeout=60, what=f"worker web server on {self.url} (log: {self.log_path})")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.proc.returncode}; log: {self.log_path.read_text()[-3000:]}"
            )
        try:
            stats = self.stats()
        except httpx.HTTPError:
            return False
        # past `starting`: the route set is read and the consumer subscribed (it may already be paused)
        return bool(stats["running"]) and stats.get("state", "starting") != "starting"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/stats").json())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def record(
    env: str,
    source: str,
    title: str,
    category: str,
    *,
    version: int = 1,
    schema_id: int = 1,
    attributes: Mapping[str, str] | None = None,
    payload: bytes = b"payload",
    message_id: str | None = None,
    producer: str = "tests",
    produced_at_ms: int | None = None,
) -> tuple[bytes, Headers]:
    """An encoded envelope and its headers, as the producer SDK would send them."""
    envelope = make_envelope(
        env=env, source=source, title=title, category=category, version=version, schema_id=schema_id,
        payload_format="raw", payload=payload, producer=producer, attributes=attributes,
        message_id=message_id, produced_at_ms=produced_at_ms,
    )  # fmt: skip
    return encode_envelope(envelope), metadata_to_headers(envelope.metadata)


def send(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None, Any]]) -> None:
    """Produce (key, value, headers) records to `topic` (created if missing) and wait for the acks."""
    TopicEnsurer({"bootstrap.servers": bootstrap}, partitions=3).ensure(topic)
    # a raw client that can send what our SDK refuses: records up to 10 MB (the topic must accept them)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": True,
            "message.max.bytes": 10_000_000,
        }
    )
    for key, value, headers in items:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0

"""Small helpers for tests: free ports, waiting, reading topics back from the real broker."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from confluent_kafka import Consumer, Message

from common.config import KafkaSettings, ProducerSettings
from producers.producer import Producer
from producers.schemas import parse_schema

T = TypeVar("T")


class FakeClock:
    """A clock for code that takes one (`clock=`): `now` moves only when a test moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair(low: int = 20_000, high: int = 32_000) -> int:
    """A port P with P and P + 1 both free, below Linux's ephemeral range (32768-60999): a port from
    `free_port()` is an ephemeral one, and P + 1 can be taken by any client's outgoing connection
    between the check and the bind (seen: a stack's Kafka controller failing with 'Address already in
    use' while other tests ran)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high - 1)
        if all(_bindable(p) for p in (port, port + 1)):
            return port
    raise RuntimeError(f"no two adjacent free ports in [{low}, {high})")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(
    check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def consume_all(
    bootstrap: str,
    topics: list[str],
    *,
    expected: int | None = None,
    timeout: float = 30.0,
    idle: float = 3.0,
    extra_config: dict[str, Any] | None = None,
) -> list[Message]:
    """Read `topics` from the beginning until `expected` records arrived (or `idle` seconds pass quietly)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **(extra_config or {}),
        }
    )
    consumer.subscribe(topics)
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                break
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            good = [m for m in batch if m.error() is None]
            if good:
                out.extend(good)
                last = time.monotonic()
            elif expected is None and out and time.monotonic() - last > idle:
                break
            elif expected is None and not out and time.monotonic() - last > idle * 3:
                break
    finally:
        consumer.close()
    return out


class _BytesSchemaCatalog:
    """Knows one schema (Avro bytes) for every (title, category, version): prepare() needs no registry."""

    def resolve(self, *_: Any) -> Any:
        return parse_schema(1, '{"type": "bytes"}', "AVRO")

    def close(self) -> None:
        pass


@contextmanager
def offline_producer() -> Iterator[Producer]:
    """An SDK Producer (env dev, source s) with no broker behind it, for `prepare()` only: its ingest
    topic is marked ready, so nothing is created or sent."""
    settings = ProducerSettings(env="dev", source="s")
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9")
    with Producer(settings, kafka=kafka, catalog=_BytesSchemaCatalog()) as producer:  # type: ignore[arg-type]
        producer._ready_topics[("dev", "s")] = "dev.s.ingest.all-v1"
        yield producer

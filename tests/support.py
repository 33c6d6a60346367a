"""Small helpers for tests: free ports, waiting, reading topics back from the real broker."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, Message

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

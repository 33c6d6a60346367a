"""Paced sending and timed reading for the latency and memory benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.context import BenchContext
from common.headers import MESSAGE_ID, headers_dict
from producers.producer import OutgoingRecord


def paced(
    records: Sequence[OutgoingRecord],
    send: Callable[[OutgoingRecord], object],
    rate: float,
    *,
    on_send: Callable[[OutgoingRecord, float], None] | None = None,
    poll: Callable[[], object] | None = None,
) -> float:
    """Send `records` at `rate` per second (in 1 ms steps, catching up when late); return the achieved
    rate. `on_send(record, wall_time)` runs just before each send."""
    began = time.monotonic()
    sent = 0
    total = len(records)
    while sent < total:
        due = min(total, int((time.monotonic() - began) * rate) + 1)
        while sent < due:
            record = records[sent]
            if on_send is not None:
                on_send(record, time.time())
            send(record)
            sent += 1
        if poll is not None:
            poll()
        time.sleep(0.001)
    return total / max(time.monotonic() - began, 1e-9)


class ArrivalReader:
    """Reads `topics` from their current end in a thread and records, for every record whose message
    id is in `sent_at`, how long after sending it became readable (ms)."""

    def __init__(self, ctx: BenchContext, topics: list[str], sent_at: dict[str, float]) -> None:
        self.latencies_ms: list[float] = []
        self.arrivals = 0
        self._sent_at = sent_at
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                **ctx.client_config,
                "group.id": ctx.name("latency-reader"),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
                "fetch.queue.backoff.ms": 0,
            }
        )
        ends = ctx.end_offsets(topics)
        self._consumer.assign([TopicPartition(t, p, ends.get((t, p), OFFSET_END)) for t, p in ends])
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)

    def start(self) -> ArrivalReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        consume, sent_at, out = self._consumer.consume, self._sent_at, self.latencies_ms
        while not self._stop.is_set():
            for m in consume(1000, 0.05):
                now = time.time()
                if m.error() is not None:
                    continue
                self.arrivals += 1
                began = sent_at.get(headers_dict(m.headers()).get(MESSAGE_ID, b"").decode())
                if began is not None:
                    out.append((now - began) * 1000)

    def wait_quiet(self, expected: int, timeout: float, idle: float = 3.0) -> None:
        """Return when `expected` latencies were recorded, or nothing new came for `idle` seconds."""
        deadline = time.monotonic() + timeout
        last, last_change = len(self.latencies_ms), time.monotonic()
        while time.monotonic() < deadline and len(self.latencies_ms) < expected:
            time.sleep(0.2)
            if len(self.latencies_ms) != last:
                last, last_change = len(self.latencies_ms), time.monotonic()
            elif time.monotonic() - last_change > idle:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

"""How long the data plane's consume() waits for a batch (no broker): a full wait only after a batch that
came full at once (a deep queue), the short idle wait on a live feed, including one fast enough to fill
a batch within the long wait (bench/results/NOTES.md §3, tenth round: waiting for full batches there
held every record ~200 ms for good)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from common.config import KafkaSettings, WorkerSettings
from refinery.worker import dataplane
from refinery.worker.dataplane import DataPlane
from refinery.worker.metrics import WorkerMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class Rec:
    def error(self) -> None:
        return None


class TimedConsumer:
    """consume() returns `count` records after `took` seconds of the clock, and notes the wait asked."""

    def __init__(self, clock: Clock, script: list[tuple[int, float]]) -> None:
        self.clock, self.script, self.waits = clock, script, list[float]()

    def consume(self, _n: int, timeout: float) -> list[Rec]:
        self.waits.append(timeout)
        count, took = self.script.pop(0)
        self.clock.now += took
        return [Rec() for _ in range(count)]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(dataplane, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def waits_for(clock: Clock, script: list[tuple[int, float]]) -> list[float]:
    settings = WorkerSettings()  # the defaults: 2,000 records, 0.2 s after a deep queue, 5 ms otherwise
    dp = DataPlane(settings, KafkaSettings(), lambda: None, WorkerMetrics())
    consumer = TimedConsumer(clock, script)
    dp.consumer = consumer  # type: ignore[assignment]
    for _ in range(len(consumer.script)):
        dp._next_records()
    return consumer.waits


def test_a_batch_that_came_full_at_once_waits_for_the_next_full_one(clock: Clock) -> None:
    full = WorkerSettings().records_per_batch
    assert (full, WorkerSettings().batch_timeout_s, WorkerSettings().batch_idle_timeout_s) == (
        2_000,
        0.2,
        0.005,
    )
    # a backlog: full batches there at once (the edge: exactly the idle wait), then a partial one
    waits = waits_for(clock, [(full, 0.0), (full, 0.005), (full, 0.0), (17, 0.2), (5, 0.005)])
    assert waits == [0.005, 0.2, 0.2, 0.2, 0.005]


def test_a_live_feed_that_fills_batches_while_waiting_keeps_the_short_wait(clock: Clock) -> None:
    full = WorkerSettings().records_per_batch
    # 10k msg/s: 2,000 records fill in 0.2 s, the long wait. A full batch that filled while consume()
    # waited, even just past the idle wait, is the live edge: the next wait stays short.
    waits = waits_for(clock, [(full, 0.0), (full, 0.2), (full, 0.0051), (full, 0.19), (full - 1, 0.0)])
    assert waits == [0.005, 0.2, 0.005, 0.005, 0.005]

"""How long the data plane's consume() waits for a batch (no broker): the full wait only after a batch
that came full at once or while a batch more waits in the partitions (a deep queue), the short idle wait
on a live feed, including one fast enough to fill a batch within the long wait (bench/results/NOTES.md
§3, tenth round: waiting for full batches there held every record ~200 ms for good)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

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
    """consume() returns `count` records after `took` seconds of the clock, and notes the wait asked.
    Partition 0 is `behind` records short of its last fetched high watermark; partition 1 was never
    fetched (librdkafka knows no watermark for it); partition 2 has no position yet."""

    def __init__(self, clock: Clock, script: list[tuple[int, float]], behind: int = 0) -> None:
        self.clock, self.script, self.waits, self.behind = clock, script, list[float](), behind

    def consume(self, _n: int, timeout: float) -> list[Rec]:
        self.waits.append(timeout)
        count, took = self.script.pop(0)
        self.clock.now += took
        return [Rec() for _ in range(count)]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("prod.s.ingest.all-v1", p) for p in range(3)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, -1001 if tp.partition == 2 else 500) for tp in partitions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached  # never a round trip to the broker from the loop
        if tp.partition == 1:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
        return 0, 500 + self.behind


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(dataplane, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def waits_of(consumer: TimedConsumer) -> list[float]:
    """The waits a data plane at its defaults (2,000 records, 0.2 s after a deep queue, 5 ms otherwise)
    asks of `consumer` over its whole script."""
    dp = DataPlane(WorkerSettings(), KafkaSettings(), lambda: None, WorkerMetrics())
    dp.consumer = consumer  # type: ignore[assignment]
    for _ in range(len(consumer.script)):
        dp._next_records()
    return consumer.waits


def waits_for(clock: Clock, script: list[tuple[int, float]], behind: int = 0) -> list[float]:
    return waits_of(TimedConsumer(clock, script, behind))


def test_a_batch_that_came_full_at_once_waits_for_the_next_full_one(clock: Clock) -> None:
    defaults = WorkerSettings()
    full = defaults.records_per_batch
    assert (full, defaults.batch_timeout_s, defaults.batch_idle_timeout_s) == (2_000, 0.2, 0.005)
    # a backlog: full batches there at once (the edge: exactly the idle wait), then a partial one
    waits = waits_for(clock, [(full, 0.0), (full, 0.005), (full, 0.0), (17, 0.2), (5, 0.005)])
    assert waits == [0.005, 0.2, 0.2, 0.2, 0.005]


def test_a_live_feed_that_fills_batches_while_waiting_keeps_the_short_wait(clock: Clock) -> None:
    full = WorkerSettings().records_per_batch
    # 10k msg/s: 2,000 records fill in 0.2 s, the long wait. A full batch that filled while consume()
    # waited, even just past the idle wait, is the live edge: the next wait stays short.
    waits = waits_for(clock, [(full, 0.0), (full, 0.2), (full, 0.0051), (full, 0.19), (full - 1, 0.0)])
    assert waits == [0.005, 0.2, 0.005, 0.005, 0.005]


@pytest.mark.parametrize(("behind", "deep"), [(2_000, True), (1_999, False)])
def test_a_batch_that_filled_while_waiting_with_a_batch_more_behind_it_is_a_deep_queue(
    clock: Clock, behind: int, deep: bool
) -> None:
    """A backlog whose fetches lag the loop (exactly-once's 10,000-record batches wait on fetches) keeps
    the long wait while the partitions hold a full batch more; one record short of that, the live edge."""
    full = WorkerSettings().records_per_batch
    waits = waits_for(clock, [(full, 0.0), (full, 0.2), (full, 0.0)], behind=behind)
    assert waits == [0.005, 0.2, 0.2 if deep else 0.005]


def test_a_consumer_that_cannot_tell_its_positions_means_the_live_edge(clock: Clock) -> None:
    """position() raising (a closing consumer, a fatal error consume() reports next) must not end the loop."""
    full = WorkerSettings().records_per_batch
    consumer = TimedConsumer(clock, [(full, 0.2), (full, 0.0)], behind=10_000)

    def no_positions(_partitions: list[TopicPartition]) -> list[TopicPartition]:
        raise KafkaException(KafkaError(KafkaError._STATE))

    consumer.position = no_positions  # type: ignore[method-assign]
    assert waits_of(consumer) == [0.005, 0.005]

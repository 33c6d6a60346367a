"""The data plane's rebalance handling with a scripted fake consumer (no broker): which records a
revoke keeps or gives up, where an assignment starts, and that a consume() during which partitions were
assigned has them read again from that start (refinery.worker.stale). Real-broker behaviour is in
tests/reliability/ (outages, scaling, rolling restarts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_INVALID, TopicPartition

from common.config import KafkaSettings, WorkerSettings
from refinery.dedup.store import RestoreReport
from refinery.worker.dataplane import DataPlane
from refinery.worker.metrics import WorkerMetrics

TOPIC = "prod.s.ingest.all-v1"


class Rec:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class FakeConsumer:
    """consume() first runs the rebalance callbacks a test scripted for it (as librdkafka runs them inside
    consume()), then returns the scripted records."""

    def __init__(self, committed: dict[int, int]) -> None:
        self.committed_offsets = committed
        self.script: list[tuple[list[Callable[[], None]], list[Rec]]] = []
        self.assigned: list[TopicPartition] = []
        self.assign_calls: list[list[tuple[int, int]]] = []
        self.paused: set[int] = set()

    def consume(self, _n: int, _timeout: float) -> list[Rec]:
        if not self.script:
            return []
        callbacks, records = self.script.pop(0)
        for callback in callbacks:
            callback()
        return records

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in partitions]
        self.assign_calls.append([(tp.partition, tp.offset) for tp in partitions])

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        found = self.committed_offsets
        return [
            TopicPartition(tp.topic, tp.partition, found.get(tp.partition, OFFSET_INVALID))
            for tp in partitions
        ]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID) for tp in partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}


class FakeCommitter:
    """Drains as told; remembers what was released and abandoned."""

    def __init__(self, drains: bool) -> None:
        self.drains = drains
        self.released: list[tuple[int, ...]] = []
        self.abandoned = 0

    def idle(self) -> bool:
        return True

    def drain(self, _timeout: float) -> bool:
        return self.drains

    def release(self, partitions: list[TopicPartition]) -> None:
        self.released.append(tuple(tp.partition for tp in partitions))

    def abandon(self) -> int:
        self.abandoned += 1
        return 0


class FakeChangelog:
    def restore(self, _store: Any, _owned: Any) -> RestoreReport:
        return RestoreReport()


def data_plane(consumer: FakeConsumer, committer: FakeCommitter) -> DataPlane:
    dp = DataPlane(WorkerSettings(), KafkaSettings(), lambda: None, WorkerMetrics())
    dp.consumer = consumer  # type: ignore[assignment]
    dp.committer = committer  # type: ignore[assignment]
    dp.changelog = FakeChangelog()  # type: ignore[assignment]
    return dp


def tps(*partitions: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, p) for p in partitions]


def offsets(records: list[Any]) -> list[tuple[int, int]]:
    return [(r.partition(), r.offset()) for r in records]


def test_records_held_at_a_successful_revoke_are_read_again_when_the_partition_comes_back() -> None:
    """Records 10..13 of partition 0 were consumed and held (not written) when the partition was revoked;
    the revoke's drain committed 10 and the held records were given up. The consume() that ran the revoke
    and the new assignment also returned 14..16, fetched before the revoke, then 10..16 read from the new
    start. None of them is routed; the partition is assigned again at 10, so 10..13 are read again."""
    consumer = FakeConsumer(committed={0: 10})
    dp = data_plane(consumer, FakeCommitter(drains=True))
    consumer.script.append(([lambda: dp._on_assign(consumer, tps(0))], []))  # type: ignore[arg-type]
    assert dp._consume(0.1) == [] and consumer.assign_calls == [[(0, 10)]]
    dp._backlog = [Rec(0, o) for o in range(10, 14)]  # held while the committer had no room
    dp._consumed[(TOPIC, 0)] = 14
    consumer.script.append((
        [lambda: dp._on_revoke(consumer, tps(0)), lambda: dp._on_assign(consumer, tps(0))],  # type: ignore[arg-type]
        [Rec(0, o) for o in range(14, 17)] + [Rec(0, o) for o in range(10, 17)],
    ))  # fmt: skip
    assert dp._consume(0.1) == []
    assert dp._backlog == [] and dp._retained is None
    assert consumer.assign_calls[-2:] == [[(0, 10)], [(0, 10)]]  # the assignment, then read again from 10
    consumer.script.append(([], [Rec(0, o) for o in range(10, 17)]))
    assert offsets(dp._consume(0.1)) == [(0, o) for o in range(10, 17)]


def test_a_revoke_of_nothing_keeps_what_is_held_and_what_a_lost_session_kept() -> None:
    """A lost session kept the positions (the drain could not commit); a later revoke of no partitions
    must neither drop the held records nor the kept positions, or resuming at the kept position after
    the outage would skip the held records."""
    consumer = FakeConsumer(committed={0: 10, 1: 20})
    committer = FakeCommitter(drains=False)
    dp = data_plane(consumer, committer)
    consumer.script.append(([lambda: dp._on_assign(consumer, tps(0, 1))], []))  # type: ignore[arg-type]
    dp._consume(0.1)
    dp._backlog = [Rec(0, 10), Rec(0, 11)]
    dp._consumed.update({(TOPIC, 0): 12, (TOPIC, 1): 20})
    dp._on_revoke(consumer, tps(0, 1))  # type: ignore[arg-type]  # session lost: the drain fails
    assert dp._retained == {(TOPIC, 0): 12, (TOPIC, 1): 20}
    committer.drains = True  # the broker is back
    dp._on_revoke(consumer, [])  # type: ignore[arg-type]
    assert dp._retained == {(TOPIC, 0): 12, (TOPIC, 1): 20} and len(dp._backlog) == 2
    assert committer.released == []
    dp._on_assign(consumer, tps(0, 1))  # type: ignore[arg-type]  # nobody committed past us: carry on
    assert consumer.assign_calls[-1] == [(0, 12), (1, 20)] and len(dp._backlog) == 2

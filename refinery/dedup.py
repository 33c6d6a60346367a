"""Drop resent records: message ids (`ce_id`) seen within a time window, per input partition.

Store: for each assigned input partition, an insertion-ordered dict of message id -> time seen, bounded
by the window and by a maximum count. A producer that resends a record (a retry after a timeout) sends
it with the same key, so it lands in the same partition; per-partition stores move with the partitions.

Durability: ids are written to a changelog topic (`WorkerSettings.dedup_changelog`, one partition,
time-based retention of a few windows; not compacted, because every id in the window matters). One
changelog record per input partition per batch: key `{topic}:{partition}`, value the ids joined by
newlines, timestamp the time they were recorded. When partitions are assigned (rebalance or restart),
the worker rebuilds their stores by reading the changelog from `now - window` to its end.

Ids are recorded only after the records they stand for are acknowledged (at-least-once: after the
flush; exactly-once: in the same transaction), so a crash can repeat output but never lose it.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

PartitionKey = tuple[str, int]


def changelog_key(tp: PartitionKey) -> bytes:
    return f"{tp[0]}:{tp[1]}".encode()


def parse_changelog_key(key: bytes) -> PartitionKey:
    topic, _, partition = key.decode().rpartition(":")
    return topic, int(partition)


class DedupStore:
    """Message ids seen recently, per input partition."""

    def __init__(self, *, window_s: float, max_ids_per_partition: int) -> None:
        self.window_s = window_s
        self._max_ids = max_ids_per_partition
        self._seen: dict[PartitionKey, OrderedDict[bytes, float]] = {}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._seen.values())

    def seen(self, tp: PartitionKey, message_id: bytes) -> bool:
        ids = self._seen.get(tp)
        return ids is not None and message_id in ids

    def add(self, tp: PartitionKey, message_ids: Iterable[bytes], at: float | None = None) -> None:
        at = time.time() if at is None else at
        ids = self._seen.setdefault(tp, OrderedDict())
        for message_id in message_ids:
            ids[message_id] = at
            ids.move_to_end(message_id)
        self._evict(ids)

    def _evict(self, ids: OrderedDict[bytes, float]) -> None:
        horizon = time.time() - self.window_s
        while ids and (len(ids) > self._max_ids or next(iter(ids.values())) < horizon):
            ids.popitem(last=False)

    def retain(self, partitions: Iterable[PartitionKey]) -> None:
        """Forget partitions this worker no longer owns."""
        keep = set(partitions)
        for tp in list(self._seen):
            if tp not in keep:
                del self._seen[tp]

    def has_partition(self, tp: PartitionKey) -> bool:
        return tp in self._seen


class DedupChangelog:
    """Writes and replays the ids of a `DedupStore` through a Kafka topic."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        self._client_config = dict(client_config)
        self.topic = topic
        self._group_id = group_id

    def records(self, batch_ids: Mapping[PartitionKey, Iterable[bytes]]) -> list[tuple[bytes, bytes]]:
        """(key, value) changelog records for the ids recorded in one batch."""
        return [(changelog_key(tp), b"\n".join(ids)) for tp, ids in batch_ids.items() if ids]

    def restore(self, store: DedupStore, partitions: Iterable[PartitionKey], timeout_s: float = 30.0) -> int:
        """Load the ids of `partitions` from the last window of the changelog; return how many."""
        wanted = set(partitions)
        for tp in wanted:
            store.add(tp, ())
        if not wanted:
            return 0
        consumer = Consumer(
            {
                **self._client_config,
                "group.id": f"{self._group_id}-dedup-restore-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
        loaded = 0
        try:
            since_ms = int((time.time() - store.window_s) * 1000)
            start = consumer.offsets_for_times([TopicPartition(self.topic, 0, since_ms)], timeout=timeout_s)[
                0
            ]
            if start.offset < 0:
                start = TopicPartition(self.topic, 0, OFFSET_END)
            consumer.assign([start])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    continue
                tp = parse_changelog_key(msg.key() or b":0")
                if tp in wanted:
                    ids = (msg.value() or b"").split(b"\n")
                    store.add(tp, ids, at=msg.timestamp()[1] / 1000)
                    loaded += len(ids)
        finally:
            consumer.close()
        return loaded

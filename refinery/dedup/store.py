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

Closing the at-least-once window (a crash after the outputs are acknowledged but before their ids
are recorded): before a batch with outputs on `dedup` routes is produced, the worker writes and
flushes an INTENT record naming the batch, its input partitions and offsets and the derived topics
of those outputs; after the outputs are acknowledged it writes the ids and a DONE record. A rebuild
that finds an intent without DONE reads those derived topics from the intent's time to their end
and adds every `ce_id` found: whatever landed is known (not repeated when the batch is replayed),
whatever did not land is not (sent again, so never lost). Intent and DONE records carry a `kind`
header; id records carry none.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from common import headers as h

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
KIND_HEADER = "refinery.changelog.kind"
INTENT, DONE = b"intent", b"done"
BATCH_KEY = b"_batch"
SCAN_MARGIN_MS = 1000  # read derived topics from a little before the intent (clock granularity)


@dataclass
class Intent:
    """A batch about to write outputs on dedup routes: its inputs (partition -> [first, next) offsets)
    and the derived topics those outputs go to."""

    batch_id: str
    inputs: dict[PartitionKey, tuple[int, int]]
    topics: list[str]
    timestamp_ms: int = 0

    def encode(self) -> bytes:
        inputs = [[t, p, first, next_] for (t, p), (first, next_) in self.inputs.items()]
        return json.dumps({"batch": self.batch_id, "inputs": inputs, "topics": self.topics}).encode()

    @classmethod
    def decode(cls, value: bytes, timestamp_ms: int) -> Intent:
        data = json.loads(value)
        inputs = {(t, int(p)): (int(first), int(next_)) for t, p, first, next_ in data["inputs"]}
        return cls(str(data["batch"]), inputs, [str(t) for t in data["topics"]], timestamp_ms)


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

    @staticmethod
    def intent_record(intent: Intent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return BATCH_KEY, intent.encode(), [(KIND_HEADER, INTENT)]

    @staticmethod
    def done_record(batch_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return BATCH_KEY, batch_id.encode(), [(KIND_HEADER, DONE)]

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
        unfinished: dict[str, Intent] = {}
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
                kind = changelog_kind(msg.headers())
                if kind == INTENT:
                    intent = Intent.decode(msg.value() or b"{}", msg.timestamp()[1])
                    if wanted.intersection(intent.inputs):
                        unfinished[intent.batch_id] = intent
                    continue
                if kind == DONE:
                    unfinished.pop((msg.value() or b"").decode(), None)
                    continue
                tp = parse_changelog_key(msg.key() or b":0")
                if tp in wanted:
                    ids = (msg.value() or b"").split(b"\n")
                    store.add(tp, ids, at=msg.timestamp()[1] / 1000)
                    loaded += len(ids)
            for intent in unfinished.values():
                loaded += self.settle(store, intent, wanted, timeout_s=timeout_s)
        finally:
            consumer.close()
        return loaded

    def settle(
        self, store: DedupStore, intent: Intent, partitions: Iterable[PartitionKey], timeout_s: float = 30.0
    ) -> int:
        """Record the ids of an unfinished batch's outputs that did land: every `ce_id` on its derived
        topics since the intent is added to its input partitions among `partitions`."""
        owners = [tp for tp in partitions if tp in intent.inputs]
        found = read_message_ids(
            self._client_config, intent.topics, intent.timestamp_ms - SCAN_MARGIN_MS, timeout_s=timeout_s
        )
        for tp in owners:
            store.add(tp, found)
        log.info(
            "settled an unfinished dedup batch",
            extra={"batch": intent.batch_id, "topics": intent.topics, "ids_found": len(found)},
        )
        return len(found) * len(owners)


def changelog_kind(headers: Any) -> bytes | None:
    if not headers:
        return None
    for key, value in headers:
        if key == KIND_HEADER:
            return value if isinstance(value, bytes) else str(value).encode()
    return None


def read_message_ids(
    client_config: Mapping[str, Any], topics: Iterable[str], since_ms: int, *, timeout_s: float = 30.0
) -> set[bytes]:
    """The `ce_id` header of every record on `topics` from `since_ms` to their current end."""
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"refinery-dedup-settle-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    found: set[bytes] = set()
    try:
        wanted: list[TopicPartition] = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                continue  # never created (e.g. its name was rejected): nothing landed there
            wanted += [TopicPartition(topic, p, since_ms) for p in meta.partitions]
        if not wanted:
            return found
        ends: dict[tuple[str, int], int] = {}
        starts = []
        for tp in consumer.offsets_for_times(wanted, timeout=timeout_s):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s
            )
            if 0 <= tp.offset < high:
                ends[(tp.topic, tp.partition)] = high
                starts.append(tp)
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:  # unknown ids can only be repeated, never lost
                log.warning("derived topics not read to the end in time", extra={"unread": len(ends)})
                break
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    continue
                key = (msg.topic(), msg.partition())
                message_id = dict(msg.headers() or ()).get(h.MESSAGE_ID)
                if message_id:
                    found.add(message_id if isinstance(message_id, bytes) else message_id.encode())
                if key in ends and (msg.offset() or 0) + 1 >= ends[key]:
                    del ends[key]
    finally:
        consumer.close()
    return found

"""At-least-once pipelining: batches whose outputs are produced but not yet all acknowledged.

Each produced batch gets a `BatchTracker`; every record written for it (outputs and dead letters)
carries the tracker's `on_delivery`, served by `Producer.poll()`. A batch is complete when its
outstanding count is back to zero with no error. Batches complete in consume order (`Inflight.pop_done`
stops at the first unfinished one), so the offsets committed are always those of fully acknowledged
batches, never of a later batch that overtook an earlier one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from confluent_kafka import KafkaError

from refinery.dedup.store import DedupStore, PartitionKey
from refinery.routing.batch import RoutedBatch


class BatchTracker:
    """Delivery bookkeeping of one produced batch."""

    __slots__ = ("batch", "errors", "left", "started")

    def __init__(self, batch: RoutedBatch, started: float) -> None:
        self.batch = batch
        self.started = started
        self.left = 0  # records produced and not yet acknowledged (may dip below 0 while producing)
        self.errors: list[KafkaError] = []

    def on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        self.left -= 1
        if err is not None:
            self.errors.append(err)

    @property
    def done(self) -> bool:
        return self.left <= 0


class Inflight:
    """Produced batches in consume order."""

    def __init__(self) -> None:
        self._queue: deque[BatchTracker] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[BatchTracker]:
        return iter(self._queue)

    def add(self, tracker: BatchTracker) -> None:
        self._queue.append(tracker)

    def failed(self) -> BatchTracker | None:
        """The first batch with a delivery error, if any."""
        return next((t for t in self._queue if t.errors), None)

    def pop_done(self) -> list[BatchTracker]:
        """Remove and return the leading batches that are fully and successfully acknowledged."""
        done: list[BatchTracker] = []
        queue = self._queue
        while queue and queue[0].done and not queue[0].errors:
            done.append(queue.popleft())
        return done

    def take_all(self) -> list[RoutedBatch]:
        batches = [t.batch for t in self._queue]
        self._queue.clear()
        return batches


class PendingDedup:
    """The dedup store as seen by the next batch: ids already recorded, plus the ids of batches still
    in flight (recorded only once acknowledged, but a resend in the next batch is still a duplicate)."""

    def __init__(self, store: DedupStore, inflight: Inflight) -> None:
        self._store = store
        self._inflight = inflight

    def seen(self, tp: PartitionKey, message_id: bytes) -> bool:
        if self._store.seen(tp, message_id):
            return True
        for tracker in self._inflight:
            ids = tracker.batch.dedup_ids.get(tp)
            if ids is not None and message_id in ids:
                return True
        return False

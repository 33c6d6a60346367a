"""At-least-once pipelining: batches whose records are produced but not yet all acknowledged.

Each produced batch gets a `BatchTracker`; every record written for it (outputs and dead letters)
carries the tracker as its `on_delivery`, served by `Producer.poll()`: a report per failed record only
(the default, `delivery.report.only.error`), or per record (`success_reports`). With failure-only
reports, success is known two ways: per record, when the worker's producer carries the acknowledgement
interceptor (`count_acks`, refinery/worker/write_fast.c), which counts each acknowledged record of a
tracker in `acked` without a report; and per producer, when it has nothing outstanding after its reports
were served (`Inflight.settle`): every record written so far was then acknowledged or has reported its
failure (this holds in every mode). A batch is complete when every record written for it is known
acknowledged one of those ways and none of them failed. A failed record is kept with its error
(`failures`), so that exactly that record is dealt with (dead-lettered, or sent again), never the whole
batch. Batches complete in consume order (`Inflight.pop_done` stops at the first unfinished one), so
the offsets committed are always those of fully acknowledged batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError

from refinery.dedup.store import DedupStore, PartitionKey
from refinery.routing.batch import RoutedBatch
from refinery.worker.retry import Backoff


class _DeliveryCounter:
    """Counts a batch's delivery reports down and keeps its failures: the reference of the compiled
    `DeliveryCounter` (refinery/worker/write_fast.c), which spares a Python frame per report."""

    __slots__ = ("failures", "left")
    acked = 0  # only the compiled counter is counted by the interceptor

    def __init__(self) -> None:
        self.left = 0  # records written and not yet reported
        self.failures: list[tuple[KafkaError, Any]] = []

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self.left -= 1
        if err is not None:
            self.failures.append((err, msg))


if TYPE_CHECKING:  # the compiled class has the same attributes and call
    DeliveryCounter = _DeliveryCounter
else:
    try:  # compiled with the package (setup.py)
        from refinery.worker._write_fast import DeliveryCounter
    except ImportError:  # pragma: no cover - a machine that could not compile it
        DeliveryCounter = _DeliveryCounter
COMPILED_DELIVERY_COUNTER = DeliveryCounter is not _DeliveryCounter


class BatchTracker(DeliveryCounter):
    """Delivery bookkeeping of one produced batch. The tracker is its records' delivery callback
    (`on_delivery`): `left` counts the records produced and neither reported nor settled since (it
    may dip below `acked` while producing), `acked` those the interceptor counted acknowledged (never
    reported: failure-only reports), `failures` holds (error, the failed message) not yet handled."""

    __slots__ = ("_index", "backoff", "batch", "dead_sent", "resend", "started")

    def __init__(self, batch: RoutedBatch, started: float, backoff: Backoff) -> None:
        super().__init__()
        self.batch = batch
        self.started = started
        self.resend: list[tuple[str, Any]] = []  # ("output", index) / ("dead", (key, value)) awaiting resend
        self.dead_sent: dict[tuple[Any, Any], Any] = {}  # dead letters written: (key, value) -> headers
        self.backoff = backoff
        self._index: dict[tuple[Any, Any, Any], list[int]] | None = None

    @property
    def on_delivery(self) -> BatchTracker:
        return self

    def settled(self) -> None:
        """The producer has nothing outstanding and its reports were served: every record written so
        far for this batch was acknowledged, or its failure is in `failures`. Nothing of it is
        outstanding, so no count of `acked` is still to come for what was written so far."""
        self.left = self.acked

    @property
    def reported(self) -> bool:
        """Every record written so far is acknowledged or has reported its failure."""
        return self.left <= self.acked

    @property
    def done(self) -> bool:
        return self.left <= self.acked and not self.failures and not self.resend

    def output_index(self, msg: Any) -> int | None:
        """The output a failed message was written for. Delivery reports carry topic, key and value
        but no headers or input coordinates; the index is built on the first failure only."""
        if self._index is None:
            index: dict[tuple[Any, Any, Any], list[int]] = {}
            for i, out in enumerate(self.batch.outputs):
                index.setdefault((out.topic, out.record.key(), out.record.value()), []).append(i)
            self._index = index
        found = self._index.get((msg.topic(), msg.key(), msg.value()))
        if not found:
            return None
        position = found.pop(0)
        found.append(position)  # identical outputs (two routes, one topic) take turns
        return position


class Inflight:
    """Produced batches in consume order, and how many input records they hold."""

    def __init__(self) -> None:
        self._queue: deque[BatchTracker] = deque()
        self.records = 0
        # the batches with dedup-route ids, for `PendingDedup`: at most one of up to `max_inflight_batches`
        # (such a batch is accepted only when nothing is in flight, `AtLeastOnceCommitter.accepts`)
        self.deduplicating: deque[BatchTracker] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[BatchTracker]:
        return iter(self._queue)

    def add(self, tracker: BatchTracker) -> None:
        self._queue.append(tracker)
        self.records += len(tracker.batch.records)
        if tracker.batch.dedup_ids:
            self.deduplicating.append(tracker)

    def settle(self) -> None:
        """The producer has nothing outstanding (see `BatchTracker.settled`)."""
        for tracker in self._queue:
            tracker.settled()

    def pop_done(self) -> list[BatchTracker]:
        """Remove and return the leading batches that are fully and successfully acknowledged."""
        done: list[BatchTracker] = []
        queue, deduplicating = self._queue, self.deduplicating
        while queue and queue[0].done:
            tracker = queue.popleft()
            self.records -= len(tracker.batch.records)
            if deduplicating and deduplicating[0] is tracker:  # both in consume order
                deduplicating.popleft()
            done.append(tracker)
        return done

    def clear(self) -> int:
        dropped = len(self._queue)
        self._queue.clear()
        self.deduplicating.clear()
        self.records = 0
        return dropped


class PendingDedup:
    """The dedup store as seen by the next batch: ids already recorded, plus the ids of batches still
    in flight (recorded only once acknowledged, but a resend in the next batch is still a duplicate)."""

    def __init__(self, store: DedupStore, inflight: Iterable[BatchTracker]) -> None:
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

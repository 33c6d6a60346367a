"""What both guarantees share: the committer interface the loop talks to, and what happens when a batch
is complete (dedup ids recorded, metrics, progress).

The loop only consumes, routes and hands batches over (`Committer.submit`); a committer owns "when are
offsets committed": `AtLeastOnceCommitter` after every record of a batch is acknowledged,
`TransactionalCommitter` in the batch's own transaction.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition

from common.config import WorkerSettings
from refinery.dedup.store import DedupChangelog, DedupStore
from refinery.routing.batch import RoutedBatch, SeenLike
from refinery.routing.schema_check import SchemaIdChecker
from refinery.worker.health import Health
from refinery.worker.metrics import WorkerMetrics
from refinery.worker.watchdog import CallWatch
from refinery.worker.writer import BatchWriter

log = logging.getLogger(__name__)
WRITES = "writes"  # the Health source name of a committer's troubles


@dataclass(frozen=True)
class CommitterParts:
    """What a committer works with, built once by the data plane."""

    settings: WorkerSettings
    writer: BatchWriter
    consumer: Callable[[], Consumer]  # the data plane's consumer (built after the committer)
    dedup: DedupStore
    changelog: DedupChangelog
    completion: Completion
    health: Health
    metrics: WorkerMetrics
    watch: CallWatch  # blocking Kafka calls run under it: one that outlives its timeout is reported


class CommitterBase:
    """What both committers keep of their parts (the dedup view, `seen`, is each one's own)."""

    def __init__(self, parts: CommitterParts) -> None:
        self._settings = parts.settings
        self._writer = parts.writer
        self._consumer = parts.consumer
        self._changelog = parts.changelog
        self._completion = parts.completion
        self._health = parts.health
        self._metrics = parts.metrics
        self._watch = parts.watch

    def wait(self, timeout_s: float) -> None:
        """The loop holds a batch: serve delivery reports for at most `timeout_s`."""
        self._writer.producer.poll(timeout_s)


class Committer(Protocol):
    @property
    def seen(self) -> SeenLike:
        """What routing asks about message ids already written (or in flight)."""
        ...

    def accepts(self, batch: RoutedBatch) -> bool:
        """Whether `submit(batch)` may be called now (room in flight, no earlier batch it must wait for)."""
        ...

    def has_room(self) -> bool:
        """Whether another (non-dedup) batch could be submitted now."""
        ...

    def idle(self) -> bool:
        """Nothing in flight or pending."""
        ...

    def submit(self, batch: RoutedBatch, started: float) -> None:
        """Write the batch. Raises `TransientWriteError` when it could not be written at all (then
        nothing of it was written and the caller offers it again later)."""
        ...

    def service(self) -> None:
        """Serve delivery reports; deal with failed records; complete and commit finished batches."""
        ...

    def wait(self, timeout_s: float) -> None:
        """The loop holds a batch (no room, or a write being retried): wait at most `timeout_s` for
        delivery reports to make room."""
        ...

    def drain(self, timeout_s: float) -> bool:
        """Complete and commit what is in flight, synchronously, within `timeout_s`; False if it could not."""
        ...

    def recommit(self, offsets: list[TopicPartition]) -> None:
        """A commit of these offsets failed asynchronously: include them in the next one."""
        ...

    def confirm(self, offsets: list[TopicPartition]) -> bool:
        """A commit's outcome per partition: note the committed offsets, commit the failed ones again.
        True when none failed."""
        ...

    def release(self, partitions: list[TopicPartition]) -> None:
        """These partitions were revoked after `drain` committed them: keep no offset of theirs for a
        later commit."""
        ...

    def abandon(self) -> int:
        """Give up what is in flight (partitions moved away): nothing of it is committed, so the next
        owner reads it again. Returns how many batches were dropped."""
        ...


class Completion:
    """A batch is done: record its dedup ids, count it, note the progress."""

    def __init__(
        self,
        dedup: DedupStore,
        metrics: WorkerMetrics,
        health: Health,
        schema_checker: SchemaIdChecker | None,
    ) -> None:
        self._dedup = dedup
        self._metrics = metrics
        self._health = health
        self._schema_checker = schema_checker

    def __call__(self, batch: RoutedBatch, started: float) -> None:
        for tp, ids in batch.dedup_ids.items():
            self._dedup.add(tp, ids)
        now = time.time()
        latencies = [now - r.timestamp()[1] / 1000 for r in batch.records]
        self._metrics.apply(batch.counts, time.monotonic() - started, latencies)
        self._metrics.dedup_ids.set(len(self._dedup))
        checker = self._schema_checker
        if checker is not None and checker.unreachable:
            self._metrics.registry_unreachable.inc(checker.unreachable)
            checker.unreachable = 0
        self._health.progress()


def crash_for_test() -> None:
    """Reliability-test hook (`WorkerSettings.test_crash_after_flush`): die like a kill -9 would, right
    after a dedup batch's outputs are acknowledged and before its ids and offsets are recorded."""
    log.warning("test hook: SIGKILL after the flush, before the dedup ids and the commit")
    os.kill(os.getpid(), signal.SIGKILL)

"""Exactly-once: each batch is one Kafka transaction holding its outputs, dead letters, dedup-changelog
records and consumed offsets (`send_offsets_to_transaction`). Readers of derived topics use
`isolation.level=read_committed`.

A failed attempt is aborted and the same batch (kept in memory, never re-consumed) is written again in
a new transaction: outputs Kafka refused for good are written as `output_rejected` dead letters in the
next attempt at once; transient failures wait a bounded, jittered backoff; a fatal producer error
(e.g. fenced) gets a new producer. A spent budget or a DLQ that refuses pauses the worker and the batch
is probed every `pause_probe_interval_s`. Nothing of an aborted attempt is ever visible to readers.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from refinery.routing.batch import RoutedBatch
from refinery.worker.committing import WRITES, CommitterParts
from refinery.worker.inflight import BatchTracker
from refinery.worker.outcomes import Outcome, classify, reason_name
from refinery.worker.retry import Backoff
from refinery.worker.writer import TransientWriteError

log = logging.getLogger(__name__)
ABORT_TIMEOUT_S = 30.0


class _AttemptFailed(Exception):
    def __init__(self, error: KafkaError | None, message: str) -> None:
        super().__init__(message)
        self.error = error


class TransactionalCommitter:
    def __init__(self, parts: CommitterParts) -> None:
        self._settings = settings = parts.settings
        self._writer = parts.writer
        self._consumer = parts.consumer
        self._changelog = parts.changelog
        self._completion = parts.completion
        self._health = parts.health
        self._metrics = parts.metrics
        self._watch = parts.watch
        self.seen = parts.dedup
        self._pending: tuple[RoutedBatch, float] | None = None
        self._backoff = Backoff.from_settings(settings)

    def accepts(self, batch: RoutedBatch) -> bool:
        return self.has_room()

    def has_room(self) -> bool:
        return self._pending is None

    def idle(self) -> bool:
        return self._pending is None

    def submit(self, batch: RoutedBatch, started: float) -> None:
        self._pending = (batch, started)
        self._backoff.reset()
        self._attempt()

    def service(self) -> None:
        self._writer.producer.poll(0)
        if self._pending is not None and self._backoff.due():
            self._attempt()

    def drain(self, timeout_s: float) -> bool:
        if self._pending is not None:
            self._attempt()
        return self._pending is None

    def recommit(self, offsets: list[TopicPartition]) -> None:
        """Offsets travel in each batch's transaction; there are no separate commits to repeat."""

    def confirm(self, offsets: list[TopicPartition]) -> None:
        """Offsets travel in each batch's transaction; nothing to confirm."""

    def abandon(self) -> int:
        if self._pending is None:
            return 0
        self._pending = None
        self._health.report(WRITES, "running")
        return 1

    # -- one attempt -------------------------------------------------------------------------------
    def _attempt(self) -> None:
        assert self._pending is not None
        batch, started = self._pending
        tracker = BatchTracker(batch, started, self._backoff)
        try:
            self._write_transaction(batch, tracker)
        except (_AttemptFailed, TransientWriteError, KafkaException) as exc:
            self._abort()
            self._failed(batch, tracker, exc)
            return
        self._pending = None
        self._backoff.reset()
        self._completion(batch, started)
        if self._health.trouble(WRITES) != "running":
            self._health.report(WRITES, "running")

    def _write_transaction(self, batch: RoutedBatch, tracker: BatchTracker) -> None:
        writer = self._writer
        self._writer.prepare_topics(batch)  # before the transaction: a transient failure aborts nothing
        producer = writer.producer
        producer.begin_transaction()
        writer.write(batch, tracker.on_delivery)
        for key, value in self._changelog.records(batch.dedup_ids):
            writer.produce(self._changelog.topic, value, key, None, tracker.on_delivery)
        timeout_s = self._settings.drain_timeout_s
        with self._watch.call("flush", timeout_s):
            left = producer.flush(timeout_s)  # serves the delivery reports of failures
        if tracker.failures:
            err = tracker.failures[0][0]
            raise _AttemptFailed(err, f"{len(tracker.failures)} records not delivered: {err.str()}")
        if left:
            raise _AttemptFailed(None, f"{left} records not acknowledged in {timeout_s} s")
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items()]
        group = self._consumer().consumer_group_metadata()
        # bounded, and watched: with the group coordinator down librdkafka may ignore this timeout
        with self._watch.call("send_offsets_to_transaction", timeout_s):
            producer.send_offsets_to_transaction(offsets, group, timeout_s)
        with self._watch.call("commit_transaction", timeout_s):
            producer.commit_transaction(timeout_s)

    def _abort(self) -> None:
        try:
            with self._watch.call("abort_transaction", ABORT_TIMEOUT_S):
                self._writer.producer.abort_transaction(ABORT_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError._STATE:
                return  # no transaction was open
            log.warning("abort failed; starting a new transactional producer", extra={"error": str(exc)})
            self._writer.replace_producer()

    def _failed(self, batch: RoutedBatch, tracker: BatchTracker, exc: Exception) -> None:
        """Decide what the next attempt does differently, and when it runs."""
        writer = self._writer
        rejected_now = 0
        dlq_refused: KafkaError | None = None
        for err, msg in tracker.failures:
            if classify(err) is not Outcome.PERMANENT:
                continue
            if msg.topic() == writer.dlq_topic:
                dlq_refused = err
                continue
            index = tracker.output_index(msg)
            if index is not None and index not in batch.rejected:
                batch.rejected[index] = f"Kafka refused the output to {msg.topic()!r}: {err.str()}"
                rejected_now += 1
        error = exc.args[0] if isinstance(exc, KafkaException) else getattr(exc, "error", None)
        if isinstance(error, KafkaError) and error.fatal():
            log.error("transactional producer failed fatally; replacing it", extra={"error": str(error)})
            writer.replace_producer()
        if dlq_refused is not None:
            self._backoff.next_at = time.monotonic() + self._settings.pause_probe_interval_s
            self._health.report(
                WRITES, "paused", reason="dlq_unwritable",
                error=f"the DLQ {writer.dlq_topic!r} refused a dead letter: {dlq_refused.str()}",
            )  # fmt: skip
            return
        if rejected_now and all(classify(err) is Outcome.PERMANENT for err, _ in tracker.failures):
            self._backoff.next_at = 0.0  # the next attempt dead-letters them: nothing to wait for
            return
        self._metrics.retries.labels(reason_name(error) if isinstance(error, KafkaError) else "timeout").inc()
        delay = self._backoff.failed()
        message = f"transaction aborted ({exc}); attempt {self._backoff.attempts}"
        if self._backoff.exhausted:
            self._backoff.next_at = time.monotonic() + self._settings.pause_probe_interval_s
            self._health.report(WRITES, "paused", reason="retry_budget_spent", error=message)
            return
        log.warning("transaction aborted; writing the batch again", extra={
            "error": str(exc), "attempt": self._backoff.attempts, "retry_in_s": round(delay, 3),
        })  # fmt: skip
        self._health.report(WRITES, "retrying", error=message)

"""Exactly-once: each batch is one Kafka transaction holding its outputs, dead letters, dedup-changelog
records and consumed offsets (`send_offsets_to_transaction`). Readers of derived topics use
`isolation.level=read_committed`. Each transaction also writes where its input partitions resume to the
progress topic, and tags the offsets it commits (`refinery.worker.progress`).

A failed attempt is aborted and the same batch (kept in memory, never re-consumed) is written again in
a new transaction: outputs Kafka refused for good are written as `output_rejected` dead letters in the
next attempt at once; transient failures wait a bounded, jittered backoff; a fatal producer error
(e.g. fenced) gets a new producer, and so does an attempt whose records were not all acknowledged (see
`_attempt`: written again on the same producer epoch, they could be taken for duplicates of the aborted
copies and dropped). A spent budget or a DLQ that refuses pauses the worker and the batch
is probed every `pause_probe_interval_s`. Nothing of an aborted attempt is ever visible to readers.

A commit that times out is not a failed attempt: librdkafka goes on committing in the background (the
error is retriable) and the transaction may still land. Aborting and writing the batch again would then
commit it twice, so the committer only calls `commit_transaction` again (it resumes the same commit),
with the same backoff and pause as any transient failure, until it succeeds or Kafka says the
transaction must be aborted. If the producer has to be replaced meanwhile (a fatal error), the new
producer's `init_transactions` finishes the old transaction either way, and the group's committed offsets
(they travel in the transaction) tell whether the batch landed before it is written again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from refinery.routing.batch import RoutedBatch
from refinery.worker.clients import INIT_TRANSACTIONS_TIMEOUT_S
from refinery.worker.committing import WRITES, CommitterBase, CommitterParts
from refinery.worker.inflight import BatchTracker, PendingDedup
from refinery.worker.outcomes import Outcome, classify, reason_name
from refinery.worker.progress import progress_records, tagged
from refinery.worker.retry import Backoff
from refinery.worker.writer import TransientWriteError

log = logging.getLogger(__name__)
ABORT_TIMEOUT_S = 30.0


class _AttemptFailed(Exception):
    def __init__(self, error: KafkaError | None, message: str) -> None:
        super().__init__(message)
        self.error = error


class _CommitPending(Exception):
    """commit_transaction returned a retriable error (e.g. timed out): the commit goes on in the
    background and must be resumed, never aborted and written again."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"transaction commit not confirmed yet: {error.str()}")
        self.error = error


def _resumable(exc: KafkaException) -> KafkaError | None:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError) and err.retriable() and not err.txn_requires_abort() and not err.fatal():
        return err
    return None


class _OpenTransaction:
    """The batch of the open transaction, as the dedup view sees it: a batch routed ahead must take its
    message ids as written (`PendingDedup`)."""

    def __init__(self, committer: TransactionalCommitter) -> None:
        self._committer = committer

    def __iter__(self) -> Iterator[BatchTracker]:
        return self._committer.open_transaction()


class TransactionalCommitter(CommitterBase):
    def __init__(self, parts: CommitterParts) -> None:
        super().__init__(parts)
        settings = parts.settings
        self._pending: tuple[RoutedBatch, float] | None = None
        self._committing = False  # the pending batch's commit_transaction is in progress (resume it)
        self._fresh_producer = False  # replace the producer before the next attempt (see `_attempt`)
        self._unacknowledged = False  # this attempt produced records not (yet) all acknowledged
        # the open transaction of a first attempt whose records are still being delivered: (its tracker,
        # the deadline for their acknowledgements); the loop routes the next batch meanwhile
        self._delivering: tuple[BatchTracker, float] | None = None
        self._backoff = Backoff.from_settings(settings)
        self.seen = PendingDedup(parts.dedup, _OpenTransaction(self))
        self._progress_topic = settings.progress_log

    def accepts(self, batch: RoutedBatch) -> bool:
        return self._pending is None

    def has_room(self) -> bool:
        # one batch may be routed ahead while the open transaction's records are delivered; it is
        # submitted once that transaction committed (`accepts`)
        return self._pending is None or self._delivering is not None

    def idle(self) -> bool:
        return self._pending is None

    def submit(self, batch: RoutedBatch, started: float) -> None:
        self._pending = (batch, started)
        self._backoff.reset()
        self._attempt(wait=False)

    def service(self) -> None:
        self._writer.producer.poll(0)
        if self._delivering is not None:
            self._finish_delivered()
        elif self._pending is not None and self._backoff.due():
            self._attempt()

    def wait(self, timeout_s: float) -> None:
        if self._delivering is not None:  # flush sends what lingers at once
            with self._watch.call("flush", timeout_s + self._settings.drain_timeout_s):
                self._writer.producer.flush(timeout_s)
        else:
            self._writer.producer.poll(timeout_s)

    def drain(self, timeout_s: float) -> bool:
        if self._delivering is not None:
            self._finish_delivered(block_s=timeout_s)
        if self._pending is not None and self._delivering is None:
            self._attempt()
        return self._pending is None

    def open_transaction(self) -> Iterator[BatchTracker]:
        """The tracker of the transaction whose records are being delivered, if any."""
        if self._delivering is not None:
            yield self._delivering[0]

    def recommit(self, offsets: list[TopicPartition]) -> None:
        """Offsets travel in each batch's transaction; there are no separate commits to repeat."""

    def confirm(self, offsets: list[TopicPartition]) -> bool:
        """Offsets travel in each batch's transaction; nothing to confirm."""
        return True

    def release(self, partitions: list[TopicPartition]) -> None:
        """Nothing to forget: each transaction commits its own batch's offsets and keeps none."""

    def abandon(self) -> int:
        if self._pending is None:
            return 0
        if self._delivering is not None:  # nothing of it may become visible: abort the open transaction
            self._delivering = None
            self._abort()
        self._pending = None
        self._committing = False
        self._health.report(WRITES, "running")
        return 1

    # -- one attempt -------------------------------------------------------------------------------
    def _attempt(self, *, wait: bool = True) -> None:
        """Write the pending batch in a transaction and commit it. Without `wait` (a batch's first
        attempt) the records are produced and the transaction is finished by `service` once they are
        delivered (`_finish_delivered`); a retry waits for its records here."""
        assert self._pending is not None
        batch, started = self._pending
        tracker = BatchTracker(batch, started, self._backoff)
        self._unacknowledged = False
        self._run(batch, started, tracker, lambda: self._open_attempt(batch, tracker, wait))

    def _finish_delivered(self, block_s: float = 0.0) -> None:
        """The open transaction's records: once all reported (or their deadline passed), commit it or
        fail the attempt."""
        assert self._delivering is not None and self._pending is not None
        tracker, deadline = self._delivering
        producer = self._writer.producer
        if block_s > 0:
            with self._watch.call("flush", block_s + self._settings.drain_timeout_s):
                left = producer.flush(block_s)
        else:
            left = len(producer)  # reports still to serve count too: 0 means every record reported
        if left and time.monotonic() < deadline:
            return
        self._delivering = None
        batch, started = self._pending
        self._run(batch, started, tracker, lambda: self._finish_transaction(tracker, left))

    def _open_attempt(self, batch: RoutedBatch, tracker: BatchTracker, wait: bool) -> bool:
        """The attempt up to its writes; True when the transaction also committed."""
        if self._fresh_producer:
            log.info(
                "starting a new transactional producer: the aborted attempt's writes were not all "
                "acknowledged, and may not be written again on the same producer epoch"
            )
            with self._watch.call("init_transactions", INIT_TRANSACTIONS_TIMEOUT_S):
                self._writer.replace_producer()  # may raise: then tried again by the next attempt
            self._fresh_producer = False
        if self._committing:
            self._commit()  # resume the commit in progress; the batch is not written again
            return True
        self._write_transaction(batch, tracker)
        if not wait:
            self._delivering = (tracker, time.monotonic() + self._settings.drain_timeout_s)
            return False
        with self._watch.call("flush", self._settings.drain_timeout_s):
            left = self._writer.producer.flush(self._settings.drain_timeout_s)  # serves failure reports
        self._finish_transaction(tracker, left)
        return True

    def _run(
        self, batch: RoutedBatch, started: float, tracker: BatchTracker, step: Callable[[], bool]
    ) -> None:
        """Run one step of an attempt and deal with its outcome: a failure aborts the transaction and
        schedules the next attempt; a committed transaction completes the batch."""
        try:
            if not step():
                return  # the records are being delivered; `service` finishes the transaction
        except _CommitPending as exc:
            self._committing = True
            self._retry_later(exc.error, f"{exc}; committing again, attempt {self._backoff.attempts + 1}")
            return
        except (_AttemptFailed, TransientWriteError, KafkaException) as exc:
            was_committing, self._committing = self._committing, False
            replaced = self._abort()
            if replaced and was_committing and self._landed(batch):
                log.warning("the transaction committed while its producer was replaced; not writing it again")
            else:
                # Records produced and not all acknowledged may have landed in the aborted
                # transaction anyway. After an abort librdkafka starts each partition's sequence
                # numbers again on the same producer epoch, assuming what the aborted transaction
                # held never reached the broker; when some did, the broker can take the batch
                # written again for a duplicate of it and keep only the aborted copy, and the commit
                # then covers inputs whose outputs no one reads (lost records seen with a partition
                # leader SIGKILLed). The next attempt runs on a new producer: init_transactions gives
                # it a new epoch, whose sequence numbers nothing on the broker matches.
                self._fresh_producer = self._unacknowledged and not replaced
                self._failed(batch, tracker, exc)
                return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("transaction committed", extra={
                "attempts": self._backoff.attempts + 1, "outputs": len(batch.outputs),
                "inputs": {f"{t}[{p}]": [batch.first_offsets.get((t, p)), o]
                           for (t, p), o in batch.next_offsets.items()},
            })  # fmt: skip
        self._committing = False
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
        self._unacknowledged = True
        writer.write(batch, tracker.on_delivery)
        for key, value in self._changelog.records(batch.dedup_ids):
            writer.produce(self._changelog.topic, value, key, None, tracker.on_delivery)
        for key, value in progress_records(batch.next_offsets):  # where each input resumes (`progress`)
            writer.produce(self._progress_topic, value, key, None, tracker.on_delivery)

    def _finish_transaction(self, tracker: BatchTracker, left: int) -> bool:
        """Every record of the transaction reported (`left` records did not, in time): commit it with
        the batch's offsets, or fail the attempt."""
        batch = tracker.batch
        timeout_s = self._settings.drain_timeout_s
        if tracker.failures:
            err = tracker.failures[0][0]
            raise _AttemptFailed(err, f"{len(tracker.failures)} records not delivered: {err.str()}")
        if left:
            raise _AttemptFailed(None, f"{left} records not acknowledged in {timeout_s} s")
        self._unacknowledged = False
        offsets = tagged(TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items())
        group = self._consumer().consumer_group_metadata()
        producer = self._writer.producer
        # bounded, and watched: with the group coordinator down librdkafka may ignore this timeout
        with self._watch.call("send_offsets_to_transaction", timeout_s):
            producer.send_offsets_to_transaction(offsets, group, timeout_s)
        self._commit()
        return True

    def _commit(self) -> None:
        timeout_s = self._settings.drain_timeout_s
        try:
            with self._watch.call("commit_transaction", timeout_s):
                self._writer.producer.commit_transaction(timeout_s)
        except KafkaException as exc:
            resumable = _resumable(exc)
            if resumable is not None:
                raise _CommitPending(resumable) from None
            raise

    def _abort(self) -> bool:
        """Abort the open transaction; True when the producer had to be replaced instead (then the old
        transaction was finished by the new producer's fencing, committed or aborted)."""
        try:
            with self._watch.call("abort_transaction", ABORT_TIMEOUT_S):
                self._writer.producer.abort_transaction(ABORT_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError._STATE:
                return False  # no transaction was open
            log.warning("abort failed; starting a new transactional producer", extra={"error": str(exc)})
            self._writer.replace_producer()
            return True
        return False

    def _landed(self, batch: RoutedBatch) -> bool:
        """Whether the group's committed offsets already cover the batch (its transaction committed;
        a read_committed consumer waits for offsets of transactions still open). False when Kafka does
        not answer: the batch is written again, which the warning logged here makes visible."""
        partitions = [TopicPartition(t, p) for (t, p) in batch.next_offsets]
        try:
            committed = self._consumer().committed(partitions, timeout=self._settings.drain_timeout_s)
        except KafkaException as exc:
            log.warning(
                "could not read the committed offsets of an ambiguous commit", extra={"error": str(exc)}
            )
            return False
        found = {(tp.topic, tp.partition): tp.offset for tp in committed}
        return all(found.get(key, -1) >= offset for key, offset in batch.next_offsets.items())

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
        self._retry_later(
            error if isinstance(error, KafkaError) else None,
            f"transaction aborted ({exc}); writing the batch again, attempt {self._backoff.attempts + 1}",
        )

    def _retry_later(self, error: KafkaError | None, message: str) -> None:
        """Count the retry and schedule the next attempt within the budget; pause once it is spent."""
        self._metrics.retries.labels(reason_name(error) if error is not None else "timeout").inc()
        delay = self._backoff.failed()
        if self._backoff.exhausted:
            self._backoff.next_at = time.monotonic() + self._settings.pause_probe_interval_s
            self._health.report(WRITES, "paused", reason="retry_budget_spent", error=message)
            return
        log.warning(message, extra={"attempt": self._backoff.attempts, "retry_in_s": round(delay, 3)})
        self._health.report(WRITES, "retrying", error=message)

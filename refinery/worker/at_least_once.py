"""At-least-once: offsets are committed only after every record written for a batch is acknowledged.

Batches are pipelined: each record carries its batch's delivery callback (`refinery.worker.inflight`,
served by `poll()`), the loop keeps consuming and producing while earlier batches deliver (at most
`max_inflight_batches`, holding at most `max_inflight_records` input records); a batch is acknowledged
once each of its records was counted acknowledged by the producer's interceptor or reported its failure
(the producer reports failures only, by default; `count_acks`), once the producer had nothing
outstanding after it was written and none of its records reported a failure (without the interceptor),
or once each of its records reported (`success_reports=true`); the leading fully acknowledged
batches get their dedup ids recorded and their offsets committed asynchronously (at most every
`commit_interval_s`), in consume order.

A failed record is dealt with alone, never by rewinding the batch: a write Kafka refuses for good
becomes an `output_rejected` dead letter; a transient failure is sent again after a bounded, jittered
backoff (`retry_*` settings), and only the records that failed are sent again, so without a crash no
acknowledged output is ever written twice. A dead letter the DLQ refuses, or a retry budget spent,
pauses the worker (Health `paused`, the loop stops consuming) and the same records are probed every
`pause_probe_interval_s` until they go through. A crash repeats at most the batches in flight (their
records bounded by `max_inflight_records`).

Dedup: a batch with outputs on `dedup` routes waits until nothing earlier is in flight, then writes and
flushes an intent to the dedup changelog before its outputs (`refinery.dedup`), so a replay after a
crash does not repeat those outputs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from refinery.dedup.store import Intent
from refinery.routing.batch import RoutedBatch
from refinery.routing.dlq import DlqReason
from refinery.worker.committing import WRITES, CommitterBase, CommitterParts, crash_for_test
from refinery.worker.inflight import BatchTracker, Inflight, PendingDedup
from refinery.worker.outcomes import Outcome, classify, reason_name
from refinery.worker.retry import Backoff
from refinery.worker.writer import TransientWriteError

log = logging.getLogger(__name__)
POLL_STEP_S = 0.05
# librdkafka reports a message to a topic that vanished as one of these: create the topic again
_TOPIC_GONE = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


class AtLeastOnceCommitter(CommitterBase):
    def __init__(self, parts: CommitterParts) -> None:
        super().__init__(parts)
        self._inflight = Inflight()
        self.seen = PendingDedup(parts.dedup, self._inflight.deduplicating)
        self._uncommitted: dict[tuple[str, int], int] = {}  # acknowledged: next offset per partition
        self._committed_at = 0.0
        self._acked: dict[tuple[str, int], int] = {}  # every partition's acknowledged next offset
        self._confirmed: dict[tuple[str, int], int] = {}  # ... and what the group confirmed committing
        self._changelog_retry: list[tuple[bytes, bytes, Any, int]] = []  # (key, value, headers, attempt)

    # -- the interface the loop uses ---------------------------------------------------------------
    def accepts(self, batch: RoutedBatch) -> bool:
        if batch.dedup_topics:  # the intent protocol wants nothing earlier in flight
            return not len(self._inflight)
        return self.has_room()

    def has_room(self) -> bool:
        inflight, s = self._inflight, self._settings
        if not len(inflight):
            return True  # one batch always goes, whatever its size
        return len(inflight) < s.max_inflight_batches and inflight.records < s.inflight_records_limit

    def idle(self) -> bool:
        return not len(self._inflight)

    def submit(self, batch: RoutedBatch, started: float) -> None:
        tracker = BatchTracker(batch, started, Backoff.from_settings(self._settings))
        if batch.dedup_topics:
            self._announce(batch)
        tracker.left += self._writer.write(batch, tracker.on_delivery, dead_sent=tracker.dead_sent)
        self._inflight.add(tracker)

    def service(self) -> None:
        self._writer.producer.poll(0)  # failure reports
        if len(self._inflight) and not self._writer.outstanding():
            self._inflight.settle()  # nothing outstanding: the rest of every batch is acknowledged
        trouble = False
        for tracker in self._inflight:
            if tracker.failures and tracker.reported:
                self._handle_failures(tracker)
            if tracker.resend:
                trouble = True
                if tracker.backoff.due():
                    self._resend(tracker)
        if self._changelog_retry:
            self._resend_changelog()
        done = self._inflight.pop_done()
        for tracker in done:
            self._complete(tracker)
        if done and not trouble and self._health.trouble(WRITES) != "running":
            self._health.report(WRITES, "running")
        self._commit()

    def wait(self, timeout_s: float) -> None:
        if self._settings.success_reports or self._writer.counts_acks:
            # batches complete one by one as their records are acknowledged: wait for the next reports,
            # leaving the producer its linger (a flush would send every partition's records at once)
            self._writer.producer.poll(timeout_s)
        else:  # batches complete once the producer has nothing outstanding: flush sends without linger
            self._writer.producer.flush(timeout_s)

    def drain(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self._inflight) and time.monotonic() < deadline:
            # returns once nothing is outstanding (without success reports a poll would wait it out)
            self._writer.producer.flush(POLL_STEP_S)
            self.service()
        # commit synchronously everything acknowledged that no commit has confirmed yet, including
        # what asynchronous commits still in flight carry: they fail too if the group session is gone
        for key, offset in self._acked.items():
            if self._confirmed.get(key) != offset:
                self._uncommitted.setdefault(key, offset)
        committed = self._commit(sync=True)
        return committed and not len(self._inflight)

    def confirm(self, offsets: list[TopicPartition]) -> bool:
        """A commit's outcome per partition (the consumer's commit callback, or a synchronous commit's
        result): note what the group committed, and commit the partitions that failed again. True when
        none failed."""
        failed = [tp for tp in offsets if tp.error is not None]
        for tp in offsets:
            if tp.error is None:
                self._confirmed[(tp.topic, tp.partition)] = tp.offset
        if failed:  # the commit as a whole went through, some partitions' offsets did not
            log.warning("offset commit failed for some partitions", extra={
                "errors": {f"{tp.topic}[{tp.partition}]": str(tp.error) for tp in failed[:20]},
            })  # fmt: skip
            self.recommit(failed)
        return not failed

    def recommit(self, offsets: list[TopicPartition]) -> None:
        """A commit failed: commit these offsets again with the next one, unless the partition is no
        longer ours or a later offset of it was acknowledged since (a later commit carries that one;
        committing the older offset after it would move the group's offset back)."""
        for tp in offsets:
            key = (tp.topic, tp.partition)
            if tp.offset >= 0 and self._acked.get(key) == tp.offset:
                self._uncommitted.setdefault(key, tp.offset)

    def release(self, partitions: list[TopicPartition]) -> None:
        """The partitions were revoked and their offsets committed: forget them. Any member of the
        group may commit any partition, so an offset of ours kept for them would, committed later
        (with the next revoke's synchronous commit), move the new owner's committed offset back."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._uncommitted.pop(key, None)
            self._acked.pop(key, None)
            self._confirmed.pop(key, None)

    def abandon(self) -> int:
        self._uncommitted.clear()
        self._acked.clear()
        dropped = self._inflight.clear()
        if dropped:
            producer = self._writer.producer
            producer.purge(in_queue=True, in_flight=False)
            producer.poll(0)  # their reports go to trackers nobody reads any more
            self._health.report(WRITES, "running")
        return dropped

    # -- completion and commits --------------------------------------------------------------------
    def _complete(self, tracker: BatchTracker) -> None:
        batch = tracker.batch
        if batch.intent is not None and self._settings.test_crash_after_flush:
            crash_for_test()
        self._write_changelog(batch)  # after the outputs are acknowledged
        self._uncommitted.update(batch.next_offsets)
        self._acked.update(batch.next_offsets)
        self._completion(batch, tracker.started)

    def _commit(self, *, sync: bool = False) -> bool:
        """Commit the offsets of the acknowledged batches: at once when `sync`, otherwise asynchronously
        and at most every `commit_interval_s` (an offset commit per small batch cost the broker more
        CPU than the records themselves under a live feed; a crash repeats at most that interval).
        Returns False when a synchronous commit failed (its offsets wait for the next commit)."""
        if not self._uncommitted:
            return True
        now = time.monotonic()
        if not sync and now - self._committed_at < self._settings.commit_interval_s:
            return True
        commit = [TopicPartition(t, p, o) for (t, p), o in self._uncommitted.items()]
        self._uncommitted.clear()
        self._committed_at = now
        try:
            if not sync:  # its outcome comes to the consumer's commit callback (`confirm`, `recommit`)
                self._consumer().commit(offsets=commit, asynchronous=True)
                return True
            with self._watch.call("commit", self._settings.drain_timeout_s):  # no timeout of its own
                result = self._consumer().commit(offsets=commit, asynchronous=False)
        except KafkaException as exc:  # e.g. the group session was lost: keep them for the next commit
            log.warning("offset commit failed", extra={"error": str(exc)})
            self.recommit(commit)
            return False
        return self.confirm(result if result is not None else commit)

    # -- failed records ----------------------------------------------------------------------------
    def _handle_failures(self, tracker: BatchTracker) -> None:
        """Every record of the batch has reported: dead-letter what Kafka refused for good, schedule
        the transient failures for a resend, pause if the DLQ itself refuses."""
        failures, tracker.failures = tracker.failures, []
        batch, writer = tracker.batch, self._writer
        transient: list[KafkaError] = []
        dlq_refused: KafkaError | None = None
        fatal = False
        for err, msg in failures:
            outcome = classify(err)
            fatal = fatal or outcome is Outcome.FATAL
            if msg.topic() == writer.dlq_topic:
                tracker.resend.append(("dead", (msg.key(), msg.value())))
                if outcome is Outcome.PERMANENT:
                    dlq_refused = err
                else:
                    transient.append(err)
                continue
            index = tracker.output_index(msg)
            if index is None:  # cannot happen: every output is indexed; say so loudly rather than drop
                log.error("a failed write matches no output; it will be repeated by a replay",
                          extra={"topic": msg.topic(), "error": str(err)})  # fmt: skip
                continue
            out = batch.outputs[index]
            if outcome is Outcome.PERMANENT:
                why = batch.rejected[index] = f"Kafka refused the output to {out.topic!r}: {err.str()}"
                batch.counts.routed[out.route] -= 1
                tracker.left += 1
                writer.dead_letter(
                    batch, out.record, DlqReason.OUTPUT_REJECTED, why, out.route, tracker.on_delivery,
                    dead_sent=tracker.dead_sent,
                )  # fmt: skip
                continue
            if err.code() in _TOPIC_GONE:
                writer.forget_topic(out.topic)
            tracker.resend.append(("output", index))
            transient.append(err)
        if fatal:
            log.error("producer failed fatally; replacing it", extra={"error": str(failures[0][0])})
            writer.replace_producer()
        if dlq_refused is not None:
            self._pause(tracker, "dlq_unwritable", f"the DLQ {writer.dlq_topic!r} refused a dead letter: "
                        f"{dlq_refused.str()}")  # fmt: skip
        elif transient:
            self._retry_later(tracker, transient)

    def _retry_later(self, tracker: BatchTracker, errors: list[KafkaError]) -> None:
        for err in errors:
            self._metrics.retries.labels(reason_name(err)).inc()
        backoff = tracker.backoff
        delay = backoff.failed()
        message = f"{len(errors)} records not delivered ({errors[0].str()}); attempt {backoff.attempts}"
        if backoff.exhausted:
            self._pause(tracker, "retry_budget_spent", message)
            return
        outputs = tracker.batch.outputs
        resend = [
            f"{outputs[ref].topic} <- {outputs[ref].record.topic()}[{outputs[ref].record.partition()}]"
            f"@{outputs[ref].record.offset()}"
            for kind, ref in tracker.resend[:20]
            if kind == "output"
        ]
        log.warning("records not delivered; sending them again", extra={
            "error": errors[0].str(), "records": len(errors), "attempt": backoff.attempts,
            "retry_in_s": round(delay, 3), "first_records": resend,
        })  # fmt: skip
        self._health.report(WRITES, "retrying", error=message)

    def _pause(self, tracker: BatchTracker, reason: str, message: str) -> None:
        tracker.backoff.next_at = time.monotonic() + self._settings.pause_probe_interval_s
        if self._health.trouble(WRITES) != "paused":
            log.error("pausing consumption until the writes go through", extra={
                "reason": reason, "error": message, "probe_every_s": self._settings.pause_probe_interval_s,
            })  # fmt: skip
        self._health.report(WRITES, "paused", reason=reason, error=message)

    def _resend(self, tracker: BatchTracker) -> None:
        items, tracker.resend = tracker.resend, []
        writer, batch = self._writer, tracker.batch
        for kind, ref in items:
            if kind == "output":
                writer.resend_output(batch.outputs[ref], tracker.on_delivery)
            else:
                key, value = ref
                writer.produce(writer.dlq_topic, value, key, tracker.dead_sent.get(ref), tracker.on_delivery)
            tracker.left += 1

    # -- the dedup changelog -----------------------------------------------------------------------
    def _announce(self, batch: RoutedBatch) -> None:
        """Write and flush the intent of a batch with dedup-route outputs, before any of them."""
        inputs = {tp: (batch.first_offsets[tp], batch.next_offsets[tp]) for tp in batch.dedup_ids}
        batch.intent = Intent.for_batch(inputs, sorted(batch.dedup_topics), batch.dedup_ids)
        key, value, headers = self._changelog.intent_record(batch.intent)
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        producer = self._writer.producer
        self._writer.produce(self._changelog.topic, value, key, headers, on_delivery)
        with self._watch.call("flush", self._settings.drain_timeout_s):
            left = producer.flush(self._settings.drain_timeout_s)
        if errors or left:
            batch.intent = None
            error = errors[0] if errors else None
            raise TransientWriteError(f"dedup intent not written: {error or 'timed out'}", error)

    def _write_changelog(self, batch: RoutedBatch) -> None:
        records: list[tuple[bytes, bytes, Any]] = [
            (key, value, None) for key, value in self._changelog.records(batch.dedup_ids)
        ]
        if batch.intent is not None:
            records.append(self._changelog.done_record(batch.intent.batch_id))
        for key, value, headers in records:
            self._produce_changelog(key, value, headers)

    def _produce_changelog(self, key: bytes, value: bytes, headers: Any, attempt: int = 1) -> None:
        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                return
            self._metrics.retries.labels(reason_name(err)).inc()
            if attempt < self._settings.retry_max_attempts:
                self._changelog_retry.append((key, value, headers, attempt + 1))
            else:  # a lost id record or DONE only risks repeats on a dedup route after a crash
                log.error("dedup changelog record not written; giving up on it", extra={"error": err.str()})

        self._writer.produce(self._changelog.topic, value, key, headers, on_delivery)

    def _resend_changelog(self) -> None:
        pending, self._changelog_retry = self._changelog_retry, []
        for key, value, headers, attempt in pending:
            self._produce_changelog(key, value, headers, attempt)

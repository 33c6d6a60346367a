"""Writing a routed batch: outputs, dead letters and derived topics, on the current producer.

Both guarantees write through one `BatchWriter`; they differ only in what they do around it
(`refinery.worker.at_least_once`, `refinery.worker.transactional`). Every record written for a batch
reports to the caller's `on_delivery` (its failure; its success too unless the producer reports
failures only). Outputs are the consumed records' own key, value and header objects (byte-identical);
a record whose output Kafka refused for good is written as a dead letter instead
(`RoutedBatch.rejected`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from common.config import WorkerSettings
from common.errors import RefineryError, TopicNameError
from common.kafka_admin import TopicCreationError, TopicEnsurer
from refinery.routing.batch import Output, RecordLike, RoutedBatch
from refinery.routing.dlq import DlqReason, dlq_headers, fit_dead_letter
from refinery.worker import direct
from refinery.worker.outcomes import Outcome, classify

try:  # compiled with the package (setup.py); the Python loop in `BatchWriter.write` is the reference
    from refinery.worker._write_fast import produce_outputs
except ImportError:  # pragma: no cover - a machine that could not compile it
    produce_outputs = None
COMPILED_WRITES = produce_outputs is not None

log = logging.getLogger(__name__)
DeliveryCallback = Callable[[Any, Any], None]
DeadSent = dict[tuple[Any, Any], Any]
QUEUE_FULL_WAIT_S = 0.05
PURGE_REPORTS_TIMEOUT_S = 5.0


class TransientWriteError(RefineryError):
    """The batch could not be written now (e.g. topic creation timed out); retry it later."""

    def __init__(self, message: str, error: KafkaError | None = None) -> None:
        super().__init__(message)
        self.error = error


class BatchWriter:
    def __init__(
        self,
        settings: WorkerSettings,
        topics: TopicEnsurer,
        producer_factory: Callable[[], Producer],
        instance_id: str,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._producer_factory = producer_factory
        self.producer = producer_factory()
        self.instance_id = instance_id
        self.dlq_topic = settings.dlq_topic
        self._max_bytes = settings.max_record_bytes
        self._ensured: set[str] = set()
        self._refused: dict[str, tuple[DlqReason, str]] = {}  # topics that may never be written
        self._retired: list[Producer] = []  # replaced producers whose purged records have not reported

    def replace_producer(self) -> Producer:
        """After a fatal producer error: drop the instance and build a new one. What the old one still
        held is purged and its failure reports are served, so every record written on it has either
        been acknowledged or reported its failure to its `on_delivery` (a batch is then never taken as
        acknowledged because the new producer has nothing outstanding)."""
        old = self.producer
        try:
            old.purge()
            left = old.flush(PURGE_REPORTS_TIMEOUT_S)  # purged records report at once
        except (KafkaException, RuntimeError) as exc:
            log.error("could not purge the old producer", extra={"error": str(exc)})
            left = len(old)
        if left:  # kept until they report: `outstanding` counts them
            log.error("old producer still holds records after its purge", extra={"records": left})
            self._retired.append(old)
        self.producer = self._producer_factory()
        return self.producer

    @property
    def counts_acks(self) -> bool:
        """The producer's interceptor counts acknowledged records into their trackers (`count_acks`):
        it carries the plugin, and the binding whose layout checks the interceptor relies on holds."""
        return bool(getattr(self._producer_factory, "counts_acks", False)) and direct.is_bound()

    def outstanding(self) -> int:
        """Records written and neither acknowledged nor reported failed yet (their failure reports are
        served by `poll`), on the producer and on a replaced one that still held some."""
        if self._retired:
            for old in self._retired:
                old.poll(0)
            self._retired = [old for old in self._retired if len(old)]
            return len(self.producer) + sum(len(old) for old in self._retired)
        return len(self.producer)

    # -- a whole batch -----------------------------------------------------------------------------
    def write(
        self, batch: RoutedBatch, on_delivery: DeliveryCallback, *, dead_sent: DeadSent | None = None
    ) -> int:
        """Produce every output and dead letter of `batch`; return how many records were produced.
        Raises TransientWriteError before producing anything when a derived topic cannot be created
        now. Dead letters written are noted in `dead_sent` ((key, value) -> headers), for a resend."""
        self.prepare_topics(batch)
        routed = batch.counts.routed
        routed.clear()  # counted per attempt: a transaction may write the batch again after an abort
        batch.counts.dlq.clear()
        outputs = batch.outputs
        if produce_outputs is not None and not batch.rejected and not self._refused:
            index, producer = 0, self.producer
            while index < len(outputs):  # compiled: stops at an output whose produce raised
                index, error = produce_outputs(
                    producer.produce, outputs, index, on_delivery, routed, producer
                )
                if error is not None:
                    self._output_failed(batch, index, error, on_delivery, dead_sent)
                    index += 1
        else:  # the reference, and what a batch with refused outputs or topics takes
            for index in range(len(outputs)):
                self._write_output(batch, index, on_delivery, dead_sent)
        for dead in batch.dead:
            self.dead_letter(
                batch, dead.record, dead.reason, dead.message, dead.route, on_delivery, dead_sent
            )
        return len(outputs) + len(batch.dead)  # each output is produced or written as a dead letter

    def _write_output(
        self, batch: RoutedBatch, index: int, on_delivery: DeliveryCallback, dead_sent: DeadSent | None
    ) -> None:
        out = batch.outputs[index]
        topic = out.topic
        if batch.rejected or self._refused:
            why = self._refusal(batch, index, topic)
            if why is not None:
                self.dead_letter(batch, out.record, why[0], why[1], out.route, on_delivery, dead_sent)
                return
        record = out.record
        try:
            self.producer.produce(
                topic, record.value(), record.key(), headers=record.headers(), on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            self._output_failed(batch, index, exc, on_delivery, dead_sent)
            return
        batch.counts.routed[out.route] += 1

    def _output_failed(
        self,
        batch: RoutedBatch,
        index: int,
        exc: BaseException,
        on_delivery: DeliveryCallback,
        dead_sent: DeadSent | None,
    ) -> None:
        """An output's produce raised: wait for room in the local queue and produce it, dead-letter it
        when the client refused it for good (e.g. a local size check), raise anything else."""
        out = batch.outputs[index]
        record = out.record
        if isinstance(exc, BufferError):
            self.produce(out.topic, record.value(), record.key(), record.headers(), on_delivery)
            batch.counts.routed[out.route] += 1
            return
        if not isinstance(exc, KafkaException) or classify(exc.args[0]) is not Outcome.PERMANENT:
            raise exc
        reason = batch.rejected[index] = f"Kafka refused the output to {out.topic!r}: {exc.args[0]}"
        self.dead_letter(batch, record, DlqReason.OUTPUT_REJECTED, reason, out.route, on_delivery, dead_sent)

    def _refusal(self, batch: RoutedBatch, index: int, topic: str) -> tuple[DlqReason, str] | None:
        why = batch.rejected.get(index)
        if why is not None:
            return DlqReason.OUTPUT_REJECTED, why
        return self._refused.get(topic)

    def prepare_topics(self, batch: RoutedBatch) -> None:
        """Create the batch's new derived topics, all in one request. Names we may not create, or that
        the broker refuses for good, become dead letters (`topic_rejected` / `output_rejected`); when
        any other creation failed (Kafka did not answer), raise TransientWriteError: the batch is
        tried again later (the topics created meanwhile are not asked for again)."""
        new = [topic for topic in batch.topics - self._ensured if topic not in self._refused]
        if not new:
            return
        try:
            failed = self._topics.create_missing(new)
        except KafkaException as exc:
            raise TransientWriteError(
                f"could not create topics {sorted(new)[:5]}: {exc}", exc.args[0]
            ) from None
        transient: RefineryError | None = None
        for topic in new:
            why = failed.get(topic)
            if why is None:
                self._ensured.add(topic)
                batch.counts.topics_created += 1
            elif isinstance(why, TopicNameError):
                self._refused[topic] = (DlqReason.TOPIC_REJECTED, str(why))
            elif not (isinstance(why, TopicCreationError) and self._refused_for_good(topic, why)):
                transient = transient or why
        if transient is not None:
            raise TransientWriteError(str(transient), getattr(transient, "error", None))

    def _refused_for_good(self, topic: str, exc: TopicCreationError) -> bool:
        if exc.error is None or classify(exc.error) is not Outcome.PERMANENT:
            return False
        log.warning("derived topic refused by the broker", extra={"topic": topic, "error": str(exc)})
        self._refused[topic] = (DlqReason.OUTPUT_REJECTED, str(exc))
        return True

    def forget_topic(self, topic: str) -> None:
        """A write found the topic missing: create it again on next use."""
        self._ensured.discard(topic)
        self._topics.forget(topic)

    # -- single records ----------------------------------------------------------------------------
    def resend_output(self, out: Output, on_delivery: DeliveryCallback) -> None:
        record = out.record
        self.produce(out.topic, record.value(), record.key(), record.headers(), on_delivery)

    def dead_letter(
        self,
        batch: RoutedBatch,
        record: RecordLike,
        reason: DlqReason,
        message: str,
        route: str | None,
        on_delivery: DeliveryCallback | None,
        dead_sent: DeadSent | None = None,
    ) -> None:
        """Write one dead letter (cut to fit when the original is too large)."""
        batch.counts.dlq[reason.value] += 1  # counted here so rejections found while writing count too
        headers = dlq_headers(
            record.headers(), reason=reason, message=message, topic=record.topic() or "",
            partition=record.partition() or 0, offset=record.offset() or 0,
            timestamp_ms=record.timestamp()[1], worker=self.instance_id, route=route,
        )  # fmt: skip
        key, value, headers = fit_dead_letter(record.key(), record.value(), headers, self._max_bytes)
        self.produce(self.dlq_topic, value, key, headers, on_delivery)
        if dead_sent is not None:
            dead_sent[(key, value)] = headers

    def produce(
        self, topic: str, value: Any, key: Any, headers: Any, on_delivery: DeliveryCallback | None = None
    ) -> None:
        """Produce one record, waiting (serving delivery reports) while the local queue is full."""
        producer = self.producer
        while True:
            try:
                if on_delivery is None:
                    producer.produce(topic, value, key, headers=headers)
                else:
                    producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(QUEUE_FULL_WAIT_S)

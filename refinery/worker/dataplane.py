"""The data plane: a batched confluent-kafka consume -> route -> produce -> commit loop in a thread.

Why not a Faust agent: Faust's per-event machinery moved ~3k records/s here, a plain confluent-kafka
loop ~65k/s. Faust hosts the control plane around this loop (`refinery.control.services`).

Guarantees
- At-least-once (default): offsets are committed only after every output and dead letter of a batch
  is acknowledged. Batches are pipelined: each record carries its batch's delivery callback
  (`refinery.worker.inflight`, served by `poll()`), the loop keeps consuming and producing while earlier
  batches deliver (at most `max_inflight_batches`), and the leading fully acknowledged batches get
  their dedup ids recorded and their offsets committed asynchronously, in consume order. On a delivery
  error every batch in flight is rewound (seek to its first offsets) and retried; a crash repeats at
  most the batches in flight, never loses one. On revoke/stop the loop drains and commits
  synchronously. A batch with outputs on `dedup` routes first drains the pipeline and writes an intent
  to the dedup changelog, so a replay after a crash does not repeat those outputs (`refinery.dedup.store`).
- Exactly-once (`exactly_once`): each batch is one Kafka transaction holding its outputs, dead letters,
  dedup-changelog records and consumed offsets (`send_offsets_to_transaction`); on error it is aborted
  and the consumer rewound. Readers of derived topics use `isolation.level=read_committed`.
Rebalances run inside `consume()`, between batches, so no batch is ever half-done when partitions move.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from common.config import KafkaSettings, RegistrySettings, WorkerSettings
from common.errors import RefineryError, TopicNameError
from common.kafka_admin import TopicEnsurer
from common.topics import validate_kafka_topic
from refinery.dedup.store import DedupChangelog, DedupStore, Intent
from refinery.routing.batch import RoutedBatch, RouterLike, route_batch
from refinery.routing.dlq import DlqReason, dlq_headers
from refinery.routing.guards import RecordGuard
from refinery.routing.schema_check import SchemaIdChecker
from refinery.worker.inflight import BatchTracker, Inflight, PendingDedup
from refinery.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)
DeliveryCallback = Callable[[Any, Any], None]

RETRY_BACKOFF_S = 0.5
FLUSH_STEP_S = 1.0


def tune_gc(settings: WorkerSettings) -> None:
    """Make the cyclic GC cheap for the data plane. Profiled: with Python's defaults ~25 % of the data
    plane thread went to `gc_collect_main`, walking the start-up heap and the records in flight again
    and again, although their garbage is acyclic and freed by reference counting."""
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()  # everything alive now (Faust, imports, clients) is left out of later collections
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)


class BatchFailedError(RefineryError):
    """A batch could not be written or committed; it is rewound and retried."""


class InternalTopics(TopicEnsurer):
    """Our own topics (DLQ, dedup changelog) do not follow the derived-topic naming convention."""

    def check_allowed(self, topic: str) -> None:
        validate_kafka_topic(topic)


class DataPlane:
    """Runs the routing loop in its own thread; `router_source()` returns the live router (or None)."""

    def __init__(
        self,
        settings: WorkerSettings,
        kafka: KafkaSettings,
        router_source: Callable[[], RouterLike | None],
        metrics: WorkerMetrics,
        registry: RegistrySettings | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.instance_id = settings.instance_id or uuid.uuid4().hex[:12]
        self._client_config = kafka.client_config()
        self._router_source = router_source
        checker = None
        if settings.registry_check:
            registry = registry or RegistrySettings()
            checker = SchemaIdChecker.from_url(registry.url, negative_ttl_s=settings.registry_negative_ttl_s)
        self._schema_checker = checker
        self.guard = RecordGuard(
            max_value_bytes=settings.max_value_bytes,
            schema_checker=checker,
            verify_envelope=settings.verify_envelope,
        )
        self.dedup = DedupStore(
            window_s=settings.dedup_window_s, max_ids_per_partition=settings.dedup_max_ids_per_partition
        )
        self.changelog = DedupChangelog(
            self._client_config, settings.dedup_changelog, group_id=settings.group_id
        )
        self.topics = TopicEnsurer(
            self._client_config,
            partitions=settings.derived_partitions,
            replication_factor=settings.derived_replication,
            allowed_envs=settings.derived_allowed_envs,
        )
        self._ensured: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivery_errors: list[KafkaError] = []  # of records outside any batch
        self._inflight = Inflight()  # at-least-once: produced, not yet acknowledged/committed
        self._seen = PendingDedup(self.dedup, self._inflight)
        self._uncommitted: dict[tuple[str, int], int] = {}  # acknowledged, next offset per partition
        self._committed_at = 0.0
        self._last_full = False
        self.error: BaseException | None = None
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="refinery-dataplane", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._ensure_internal_topics()
            self.producer = self._new_producer()
            while not self._stop.is_set() and self._router_source() is None:
                time.sleep(0.1)  # no route set yet: leave records in the ingest topics, do not guess
            self.consumer = self._new_consumer()
            tune_gc(self.settings)
            while not self._stop.is_set():
                self._step()
            self._drain()
        except BaseException as exc:
            self.error = exc
            log.exception("data plane stopped on an error")
            raise
        finally:
            self._close()

    def _close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)
        if self.consumer is not None:
            self.consumer.close()

    # -- clients ---------------------------------------------------------------------------------
    def _ensure_internal_topics(self) -> None:
        s = self.settings
        InternalTopics(
            self._client_config, partitions=s.derived_partitions, replication_factor=s.internal_replication
        ).ensure(s.dlq_topic)
        retention_ms = str(int(max(s.dedup_window_s * 3, 3600) * 1000))
        InternalTopics(
            self._client_config,
            partitions=1,
            replication_factor=s.internal_replication,
            topic_config={"cleanup.policy": "delete", "retention.ms": retention_ms},
        ).ensure(s.dedup_changelog)

    def _new_producer(self) -> Producer:
        s = self.settings
        conf: dict[str, Any] = {
            **self._client_config,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_bytes,
            "batch.num.messages": s.batch_num_messages,
            "compression.type": s.compression,
            "queue.buffering.max.messages": s.queue_max_messages,
            # at-least-once completes a batch by counting its acknowledgements
            "delivery.report.only.error": s.exactly_once,
            "on_delivery": self._on_delivery,
        }
        if s.exactly_once:
            conf["transactional.id"] = f"{s.group_id}-{self.instance_id}"
            conf["transaction.timeout.ms"] = s.transaction_timeout_ms
        producer = Producer(conf)
        if s.exactly_once:
            producer.init_transactions(60)
        return producer

    def _new_consumer(self) -> Consumer:
        s = self.settings
        consumer = Consumer(
            {
                **self._client_config,
                "group.id": s.group_id,
                "client.id": f"refinery-{self.instance_id}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": s.metadata_refresh_ms,
                "session.timeout.ms": s.session_timeout_ms,
                "heartbeat.interval.ms": max(s.session_timeout_ms // 3, 100),
                "statistics.interval.ms": int(s.stats_interval_s * 1000),
                "stats_cb": self.metrics.apply_librdkafka_stats,
                "on_commit": self._on_commit,
                "fetch.min.bytes": s.fetch_min_bytes,
                "fetch.wait.max.ms": s.fetch_wait_max_ms,
                "fetch.queue.backoff.ms": s.fetch_queue_backoff_ms,
                "queued.min.messages": s.queued_min_messages,
                "queued.max.messages.kbytes": s.queued_max_kbytes,
                "max.partition.fetch.bytes": s.max_partition_fetch_bytes,
            }
        )
        pattern = s.ingest_pattern if s.ingest_pattern.startswith("^") else "^" + s.ingest_pattern
        consumer.subscribe(
            [pattern], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        return consumer

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        """Records outside any batch (dedup intents and changelog records)."""
        if err is not None:
            self._delivery_errors.append(err)

    @staticmethod
    def _on_commit(err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        if err is not None:  # a later commit covers these offsets; a crash meanwhile repeats, never loses
            log.warning("asynchronous offset commit failed", extra={"error": str(err)})

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [(tp.topic, tp.partition) for tp in partitions]
        self.dedup.retain(owned)
        loaded = self.changelog.restore(self.dedup, owned)
        self.metrics.dedup_ids.set(len(self.dedup))
        log.info("partitions assigned", extra={"partitions": len(owned), "dedup_ids_restored": loaded})

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()  # commit what we wrote while the partitions are still ours
        if self.producer is not None:
            self.producer.flush(30)  # pending dedup-changelog records belong to the partitions leaving
        log.info("partitions revoked", extra={"partitions": len(partitions)})

    # -- the loop --------------------------------------------------------------------------------
    def _step(self) -> None:
        assert self.consumer is not None and self.producer is not None
        s = self.settings
        # a full previous batch means a deep queue: wait for a full one; otherwise forward what is there
        timeout = s.batch_timeout_s if self._last_full else s.batch_idle_timeout_s
        records: list[Any] = self.consumer.consume(s.batch_size, timeout)
        self._last_full = len(records) >= s.batch_size
        self.producer.poll(0)  # serve delivery reports of the batches in flight
        if not self._settle(records):
            return
        if not records:
            return
        router = self._router_source()
        assert router is not None
        started = time.monotonic()
        batch = route_batch(records, router, self.guard, self._seen, dlq_unmatched=s.dlq_unmatched)
        if not batch.records:
            return  # only error events (e.g. a topic deleted under the pattern): nothing to commit
        if s.exactly_once:
            try:
                self._write(batch, BatchTracker(batch, started))
            except (BatchFailedError, KafkaException) as exc:
                self._recover([batch], exc)
                return
            self._completed(batch, started)
            return
        while len(self._inflight) >= s.max_inflight_batches:  # bound what a failure has to redo
            self.producer.poll(0.005)
            if not self._settle(records):
                return
        if batch.dedup_topics and not self._drain(records):
            return  # the intent protocol wants no earlier batch in flight
        tracker = BatchTracker(batch, started)
        try:
            self._write(batch, tracker)
        except (BatchFailedError, KafkaException) as exc:
            self._recover([*self._inflight.take_all(), batch], exc)
            return
        self._inflight.add(tracker)
        self._settle()

    def _settle(self, unrouted: Sequence[Any] = (), *, sync: bool = False) -> bool:
        """Complete the leading fully acknowledged batches: record their dedup ids, commit their offsets
        (one commit, asynchronous unless `sync`). On a delivery error rewind every batch in flight (and
        `unrouted`, consumed after them) and return False."""
        failed = self._inflight.failed()
        if failed is not None or self._delivery_errors:
            errors = failed.errors if failed is not None else self._delivery_errors
            exc = BatchFailedError(f"{len(errors)} records not delivered: {errors[0]}")
            self._recover(self._inflight.take_all(), exc, unrouted)
            return False
        done = self._inflight.pop_done()
        for tracker in done:
            batch = tracker.batch
            if batch.intent is not None and self.settings.test_crash_after_flush:
                log.warning("test hook: SIGKILL after the flush, before the dedup ids and the commit")
                os.kill(os.getpid(), signal.SIGKILL)
            self._produce_changelog(batch)  # after the outputs are acknowledged
            self._uncommitted.update(batch.next_offsets)
            self._completed(batch, tracker.started)
        self._commit(sync=sync)
        return True

    def _commit(self, *, sync: bool = False) -> None:
        """Commit the offsets of the acknowledged batches: at once when `sync`, otherwise asynchronously
        and at most every `commit_interval_s` (an offset commit per small batch cost the broker more
        CPU than the records themselves under a live feed; a crash repeats at most that interval)."""
        if not self._uncommitted:
            return
        now = time.monotonic()
        if not sync and now - self._committed_at < self.settings.commit_interval_s:
            return
        assert self.consumer is not None
        commit = [TopicPartition(t, p, o) for (t, p), o in self._uncommitted.items()]
        self._uncommitted.clear()
        self._committed_at = now
        try:
            if sync:
                self.consumer.commit(offsets=commit, asynchronous=False)
            else:
                self.consumer.commit(offsets=commit, asynchronous=True)
        except KafkaException as exc:  # the outputs are acknowledged: a replay only repeats them
            log.warning("offset commit failed", extra={"error": str(exc)})

    def _drain(self, unrouted: Sequence[Any] = ()) -> bool:
        """Wait until every batch in flight is acknowledged, then commit synchronously."""
        producer = self.producer
        while len(self._inflight):
            assert producer is not None
            producer.poll(0.05)
            if self._inflight.failed() is not None or self._delivery_errors:
                break
            if all(t.done for t in self._inflight):
                break
        return self._settle(unrouted, sync=True)

    def _completed(self, batch: RoutedBatch, started: float) -> None:
        for tp, ids in batch.dedup_ids.items():
            self.dedup.add(tp, ids)
        now = time.time()
        latencies = [now - r.timestamp()[1] / 1000 for r in batch.records]
        self.metrics.apply(batch.counts, time.monotonic() - started, latencies)
        self.metrics.dedup_ids.set(len(self.dedup))
        if self._schema_checker is not None and self._schema_checker.unreachable:
            self.metrics.registry_unreachable.inc(self._schema_checker.unreachable)
            self._schema_checker.unreachable = 0

    def _write(self, batch: RoutedBatch, tracker: BatchTracker) -> None:
        """Produce the batch, every record reporting to `tracker`. Exactly-once: as one transaction with
        its offsets. At-least-once: acknowledgements and the commit come in `_settle`."""
        producer = self.producer
        assert producer is not None and self.consumer is not None
        rejected = self._ensure_topics(batch)
        eos = self.settings.exactly_once
        if eos:
            self._delivery_errors.clear()
            producer.begin_transaction()
        elif batch.dedup_topics:
            self._announce(batch)
        produce, retry = producer.produce, self._produce
        on_delivery = tracker.on_delivery
        routed = batch.counts.routed
        sent = 0
        for out in batch.outputs:
            topic = out.topic
            if topic in rejected:
                self._dead_letter(
                    batch, out.record, DlqReason.TOPIC_REJECTED, rejected[topic], out.route, on_delivery
                )
                sent += 1
                continue
            record = out.record
            try:
                produce(
                    topic, record.value(), record.key(), headers=record.headers(), on_delivery=on_delivery
                )
            except BufferError:  # local queue full: let deliveries drain
                retry(topic, record.value(), record.key(), record.headers(), on_delivery)
            sent += 1
            routed[out.route] += 1
        for dead in batch.dead:
            self._dead_letter(batch, dead.record, dead.reason, dead.message, dead.route, on_delivery)
            sent += 1
        tracker.left += sent
        if eos:
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items()]
            self._produce_changelog(batch)
            producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata())
            producer.commit_transaction()

    def _announce(self, batch: RoutedBatch) -> None:
        """Write and flush the intent of a batch with dedup-route outputs, before any of them."""
        inputs = {tp: (batch.first_offsets[tp], batch.next_offsets[tp]) for tp in batch.dedup_ids}
        batch.intent = Intent(uuid.uuid4().hex, inputs, sorted(batch.dedup_topics), int(time.time() * 1000))
        key, value, headers = self.changelog.intent_record(batch.intent)
        self._produce(self.changelog.topic, value, key, headers)
        self._flush()

    def _produce(
        self, topic: str, value: Any, key: Any, headers: Any, on_delivery: DeliveryCallback | None = None
    ) -> None:
        producer = self.producer
        assert producer is not None
        while True:
            try:
                if on_delivery is None:
                    producer.produce(topic, value, key, headers=headers)
                else:
                    producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain

    def _dead_letter(
        self,
        batch: RoutedBatch,
        record: Any,
        reason: DlqReason,
        message: str,
        route: str | None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        batch.counts.dlq[reason.value] += 1  # counted here so rejections found while writing count too
        headers = dlq_headers(
            record.headers(), reason=reason, message=message, topic=record.topic(),
            partition=record.partition(), offset=record.offset(), timestamp_ms=record.timestamp()[1],
            worker=self.instance_id, route=route,
        )  # fmt: skip
        self._produce(self.settings.dlq_topic, record.value(), record.key(), headers, on_delivery)

    def _produce_changelog(self, batch: RoutedBatch) -> None:
        for key, value in self.changelog.records(batch.dedup_ids):
            self._produce(self.changelog.topic, value, key, None)
        if batch.intent is not None:
            key, value, headers = self.changelog.done_record(batch.intent.batch_id)
            self._produce(self.changelog.topic, value, key, headers)

    def _flush(self) -> None:
        producer = self.producer
        assert producer is not None
        while producer.flush(FLUSH_STEP_S) > 0:
            if self._delivery_errors:
                break
        if self._delivery_errors:
            raise BatchFailedError(
                f"{len(self._delivery_errors)} records not delivered: {self._delivery_errors[0]}"
            )

    def _ensure_topics(self, batch: RoutedBatch) -> dict[str, str]:
        """Create derived topics on first use; return {topic: why} for names that may not be created."""
        rejected: dict[str, str] = {}
        for topic in batch.topics - self._ensured:
            try:
                self.topics.ensure(topic)
            except TopicNameError as exc:
                rejected[topic] = str(exc)
                continue
            self._ensured.add(topic)
            batch.counts.topics_created += 1
        return rejected

    def _recover(self, batches: list[RoutedBatch], exc: BaseException, unrouted: Sequence[Any] = ()) -> None:
        """Undo failed batches (and every later one): abort the transaction (or accept duplicates) and
        re-read them, plus `unrouted` records consumed after them, from their first offsets."""
        log.warning(
            "batch failed; rewinding to retry it",
            extra={
                "error": str(exc),
                "batches": len(batches),
                "records": sum(len(b.records) for b in batches),
            },
        )
        self.metrics.batches.labels("retried").inc()
        assert self.producer is not None and self.consumer is not None
        if self.settings.exactly_once:
            try:
                self.producer.abort_transaction(30)
            except KafkaException:
                self.producer = self._new_producer()  # fatal (e.g. fenced): start a fresh one
        else:
            self.producer.flush(30)  # late acknowledgements must not land in a retry's bookkeeping
            for batch in batches:  # remember the dedup outputs that did land, so the retry skips them
                if batch.intent is not None:
                    self.changelog.settle(self.dedup, batch.intent, batch.intent.inputs)
        self._delivery_errors.clear()
        rewind: dict[tuple[str, int], int] = {}
        for batch in batches:  # consume order: the first batch that holds a partition has its lowest offset
            for tp, offset in batch.first_offsets.items():
                rewind.setdefault(tp, offset)
        for record in unrouted:
            if record.error() is None:
                rewind.setdefault((record.topic(), record.partition()), record.offset())
        for (topic, partition), offset in rewind.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                pass  # no longer ours after a rebalance: the new owner reads from the committed offset
        self._last_full = False
        time.sleep(RETRY_BACKOFF_S)

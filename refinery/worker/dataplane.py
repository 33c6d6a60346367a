"""The data plane: a batched confluent-kafka consume -> route -> write -> commit loop in a thread.

Why not a Faust agent: Faust's per-event machinery moved ~3k records/s here, a plain confluent-kafka
loop ~65k/s. Faust hosts the control plane around this loop (`refinery.control.services`).

The loop only consumes, routes (`refinery.routing.batch.route_batch`) and hands each batch to a
committer, which owns the delivery guarantee: `AtLeastOnceCommitter` (default) or
`TransactionalCommitter` (`exactly_once`). Failures are dealt with per record by the committer; the
loop never rewinds. When a batch cannot go on (the committer has no room, a batch waits for earlier
ones, a write is being retried, the registry refuses our credentials), the loop holds it, stops
consuming (pausing its partitions after a moment, so the consumer stays in its group) and tries again;
`Health` says why. Rebalances run inside `consume()`, between batches: what is in flight is completed
and committed first (bounded by `drain_timeout_s`, then abandoned to the next owner).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from common.config import KafkaSettings, RegistrySettings, WorkerSettings
from common.errors import RegistryAccessError
from refinery.dedup.store import DedupChangelog, DedupStore, PartitionKey
from refinery.routing.batch import RecordLike, RoutedBatch, RouterLike, route_batch
from refinery.routing.guards import COMPILED_ENVELOPE_CHECK, RecordGuard
from refinery.routing.plan import COMPILED_ROUTING, RoutePlans
from refinery.routing.schema_check import SchemaIdChecker
from refinery.worker import direct
from refinery.worker.at_least_once import AtLeastOnceCommitter
from refinery.worker.clients import build_consumer, derived_topics, ensure_internal_topics, producer_factory
from refinery.worker.committing import WRITES, Committer, CommitterParts, Completion
from refinery.worker.health import Health
from refinery.worker.heap import HeapTrimmer
from refinery.worker.metrics import WorkerMetrics
from refinery.worker.outcomes import reason_name
from refinery.worker.progress import ProgressLog, resume_points
from refinery.worker.retry import Backoff
from refinery.worker.stale import StaleRecordFilter
from refinery.worker.transactional import TransactionalCommitter
from refinery.worker.watchdog import CallWatch
from refinery.worker.writer import BatchWriter, TransientWriteError

log = logging.getLogger(__name__)
HOLD = "held batch"  # the Health source names of the loop's own troubles
KAFKA = "kafka"
# Holding longer than this pauses the partitions, so the worker stays in its group however long a hold
# lasts (max.poll.interval.ms). Not sooner: a pause discards what librdkafka prefetched, and a partition
# resumed after a short hold (the producer catching up with its acknowledgements) waited ~1 s for its next
# fetch; at 10k msg/s those gaps left the tuned worker 12.5 s behind at start-up (5-6 s with this value).
PAUSE_CONSUMER_AFTER_S = 5.0
HOLD_POLL_S = 0.05
HOLD_WAIT_S = 0.005  # a held loop waits this long for delivery reports between looks at its batch
COMMITTED_TIMEOUT_S = 10.0
# idle counts as progress only when the consumer reported no error this long (librdkafka reconnects at
# most every 10 s: reconnect.backoff.max.ms), so a broker outage shows as `retrying`, then as a stall
KAFKA_ERROR_QUIET_S = 15.0


def tune_gc(settings: WorkerSettings) -> None:
    """Make the cyclic GC cheap for the data plane. Profiled: with Python's defaults ~25 % of the data
    plane thread went to `gc_collect_main`, walking the start-up heap and the records in flight again
    and again, although their garbage is acyclic and freed by reference counting."""
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()  # everything alive now (Faust, imports, clients) is left out of later collections
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)


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
        self.health = Health(metrics, stall_after_s=settings.stall_after_s)
        checker = None
        if settings.registry_check:
            checker = SchemaIdChecker.from_settings(
                registry or RegistrySettings(), negative_ttl_s=settings.registry_negative_ttl_s
            )
        self.guard = RecordGuard(
            max_record_bytes=settings.max_record_bytes,
            schema_checker=checker,
            verify_envelope=settings.verify_envelope,
        )
        if settings.verify_envelope and not COMPILED_ENVELOPE_CHECK:
            log.warning("the compiled envelope check is not built; every record is parsed (slower). "
                        "Reinstall with a C compiler: pip install -e .")  # fmt: skip
        if not COMPILED_ROUTING:
            log.warning("the compiled routing loop is not built; every record is routed in Python "
                        "(slower). Reinstall with a C compiler: pip install -e .")  # fmt: skip
        self.dedup = DedupStore(
            window_s=settings.dedup_window_s, max_ids_per_partition=settings.dedup_max_ids_per_partition
        )
        self.changelog = DedupChangelog(
            self._client_config, settings.dedup_changelog, group_id=settings.group_id,
            settle_window_s=settings.dedup_settle_window_s,
        )  # fmt: skip
        self.progress = ProgressLog(self._client_config, settings.progress_log, group_id=settings.group_id)
        self._completion = Completion(self.dedup, metrics, self.health, checker)
        self.watch = CallWatch(
            self.health, metrics,
            grace_s=settings.watchdog_grace_s, exit_after_s=settings.watchdog_exit_after_s,
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.consumer: Consumer | None = None
        self.writer: BatchWriter | None = None
        self.committer: Committer | None = None
        self._deep_queue = False  # the last batch was full and more waits behind it (`_next_records`)
        self._backlog: list[Any] = []  # consumed, not yet routed (returned while holding)
        self._held_records: list[Any] | None = None  # routing refused for now (registry denied)
        self._held_batch: tuple[RoutedBatch, float] | None = None  # routed, not yet accepted
        self._hold_backoff = Backoff.from_settings(settings)
        self._holding_since: float | None = None
        self._consumer_paused = False
        self._retained: dict[PartitionKey, int] | None = None  # positions kept over a lost session
        self._consumed: dict[PartitionKey, int] = {}  # next offset after the last record taken, per partition
        self._stale = StaleRecordFilter()
        self._kafka_error_at = 0.0
        self._heap = HeapTrimmer(settings.heap_trim_interval_s)
        self._plans: RoutePlans | None = None  # of the live router (`refinery.routing.plan`)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="refinery-dataplane", daemon=True)
        self._thread.start()
        self.watch.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._start_clients()
            while not self._stop.is_set():
                self._step()
            self._shutdown()
        except BaseException as exc:
            self.error = exc
            log.exception("data plane stopped on an error")
            raise
        finally:
            self.watch.stop()
            self.health.stopped()
            if self.consumer is not None:
                self.consumer.close()

    def _start_clients(self) -> None:
        s = self.settings
        ensure_internal_topics(s, self._client_config)
        transactional_id = f"{s.group_id}-{self.instance_id}" if s.exactly_once else None
        self.writer = BatchWriter(
            s, derived_topics(s, self._client_config),
            producer_factory(s, self._client_config, transactional_id, self._kafka_error), self.instance_id,
        )  # fmt: skip
        bound = direct.enable(self.writer.producer, s.direct_headers)
        self.metrics.direct_headers.set(1 if bound else 0)
        self.metrics.ack_counting.set(1 if self.writer.counts_acks else 0)
        while not self._stop.is_set() and self._router_source() is None:
            time.sleep(0.1)  # no route set yet: leave records in the ingest topics, do not guess
        committer_class: type[TransactionalCommitter | AtLeastOnceCommitter] = (
            TransactionalCommitter if s.exactly_once else AtLeastOnceCommitter
        )
        self.committer = committer_class(
            CommitterParts(s, self.writer, self._the_consumer, self.dedup, self.changelog, self._completion,
                           self.health, self.metrics, self.watch)
        )  # fmt: skip
        self.consumer = build_consumer(
            s, self._client_config, self.metrics, client_id=f"refinery-{self.instance_id}",
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_commit=self._on_commit,
            on_error=self._kafka_error,
        )  # fmt: skip
        tune_gc(s)
        self.health.started()

    def _the_consumer(self) -> Consumer:
        assert self.consumer is not None
        return self.consumer

    def _shutdown(self) -> None:
        assert self.committer is not None and self.writer is not None
        if not self.committer.drain(self.settings.drain_timeout_s):
            log.warning("stopping with batches not acknowledged; the next owner repeats them")
        with self.watch.call("flush", self.settings.drain_timeout_s):
            self.writer.producer.flush(self.settings.drain_timeout_s)

    # -- rebalances ------------------------------------------------------------------------------
    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:  # the committer commits these offsets again with its next commit
            log.warning("asynchronous offset commit failed", extra={"error": str(err)})
            if self.committer is not None:
                self.committer.recommit(partitions)
            return
        if self.committer is not None:
            self.committer.confirm(partitions)  # per partition: noted, or committed again

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [(tp.topic, tp.partition) for tp in partitions]
        committed = self._resume_points(self._committed_offsets(consumer, partitions), owned)
        if self._retained is not None:
            self._resume_retained(partitions, committed)  # may set their offsets to where we were
        for tp in partitions:  # start exactly there: a consume() that ran this reads them again from it
            if tp.offset < 0 and committed.get((tp.topic, tp.partition), -1) >= 0:
                tp.offset = committed[(tp.topic, tp.partition)]
        self._stale.assigned({(tp.topic, tp.partition): tp.offset for tp in partitions})
        self.dedup.retain(owned)
        report = self.changelog.restore(self.dedup, owned)
        self.metrics.apply_restore(report)
        self.metrics.dedup_ids.set(len(self.dedup))
        # Assign here, then say explicitly whether the partitions flow: librdkafka keeps a partition's
        # pause across a revoke and a new assign, so a partition paused while we held a batch would
        # otherwise come back paused and never be read again.
        consumer.assign(partitions)
        if partitions:
            (consumer.pause if self._consumer_paused else consumer.resume)(partitions)
        log.info("partitions assigned", extra={
            "partitions": len(owned), "dedup_ids_restored": report.ids_restored,
            "offsets": {f"{tp.topic}[{tp.partition}]": tp.offset for tp in partitions},
        })  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Complete and commit what we wrote while the partitions are still ours. When that fails (the
        group session was lost, e.g. the broker was away longer than `session_timeout_ms`), keep it all:
        if the same partitions come back and nobody committed past us meanwhile, carry on where we were,
        so a broker outage repeats nothing (`_resume_retained`)."""
        committer = self.committer
        log.info("partitions being revoked", extra={"partitions": len(partitions),
                 "in_flight": 0 if committer is None or committer.idle() else "some"})  # fmt: skip
        if not partitions:  # nothing given up: what we hold (or keep over a lost session) stays as it is
            self._stale.revoked(())
            return
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._stale.revoked(revoked)
        positions = {tp: offset for tp, offset in self._consumed.items() if tp in revoked}
        self._consumed = {tp: offset for tp, offset in self._consumed.items() if tp not in revoked}
        if committer is None or committer.drain(self.settings.drain_timeout_s):
            # everything written is committed; what we held is not: the next owner (maybe us) reads it
            # again from the committed offset, so no position of ours may be resumed over it
            self._forget_held()
            self._retained = None
            if committer is not None:
                committer.release(partitions)
        else:
            self._retained = positions
            log.warning("partitions revoked before their batches were committed; keeping them in case "
                        "they come back", extra={"partitions": len(positions)})  # fmt: skip
        if self.writer is not None:  # dedup-changelog records in flight
            with self.watch.call("flush", self.settings.drain_timeout_s):
                self.writer.producer.flush(self.settings.drain_timeout_s)
        log.info("partitions revoked", extra={
            "partitions": len(partitions), "positions": {f"{t}[{p}]": o for (t, p), o in positions.items()},
        })  # fmt: skip

    def _resume_retained(self, partitions: list[TopicPartition], committed: dict[PartitionKey, int]) -> None:
        retained, self._retained = self._retained, None
        if retained is None:
            return
        ours = {(tp.topic, tp.partition): tp for tp in partitions}
        # every retained partition is back, and nobody committed past where we were: then every record
        # before our position was taken by us (acknowledged, or in a batch we still hold), so carrying
        # on from there loses nothing and repeats nothing (the group's offset may have moved up to it
        # through our own commits that were in flight when the session was lost)
        unchanged = all(
            key in ours and committed.get(key, -1) <= position for key, position in retained.items()
        )
        if unchanged:
            for key, position in retained.items():
                ours[key].offset = position  # `_on_assign` assigns the list with these offsets
            log.info("partitions back unchanged; resuming where we were", extra={
                "partitions": len(retained), "positions": {f"{t}[{p}]": o for (t, p), o in retained.items()},
                "committed": {f"{t}[{p}]": o for (t, p), o in committed.items()},
            })  # fmt: skip
            return
        dropped = self.committer.abandon() if self.committer is not None else 0
        self._forget_held()
        moved = {f"{t}[{p}]": [position, committed.get((t, p))] for (t, p), position in retained.items()
                 if committed.get((t, p), -1) > position or (t, p) not in ours}  # fmt: skip
        log.warning("partitions moved on while away; the next owner repeats what we had not committed",
                    extra={"batches": dropped, "moved": moved})  # fmt: skip

    def _forget_held(self) -> None:
        self._backlog, self._held_records, self._held_batch = [], None, None
        self._hold_backoff.reset()
        self.health.report(HOLD, "running")

    @staticmethod
    def _committed_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets (with their metadata); none when Kafka did not answer."""
        if not partitions:
            return []
        try:
            return list(consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S))
        except KafkaException as exc:
            log.warning("could not read committed offsets", extra={"error": str(exc)})
            return [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID) for tp in partitions]

    def _resume_points(
        self, committed: list[TopicPartition], owned: list[PartitionKey]
    ) -> dict[PartitionKey, int]:
        """Where each assigned partition resumes: its committed offset, checked exactly-once against the
        progress topic (`refinery.worker.progress`)."""
        if not self.settings.exactly_once or not owned:
            return {(tp.topic, tp.partition): tp.offset for tp in committed}
        read = self.progress.read(owned, self.settings.progress_read_timeout_s)
        self.metrics.progress_read_seconds.observe(read.seconds)
        log.info("progress topic read", extra={"seconds": read.seconds, "records": read.records,
                                                "complete": read.complete})  # fmt: skip
        if not read.complete:
            self.metrics.progress_reads_incomplete.inc()
            log.warning(
                "the progress topic was not read to its end in time; partitions without a later record "
                "there resume at their committed offsets",
                extra={"topic": self.progress.topic, "seconds": read.seconds, "records": read.records},
            )
        points, corrections = resume_points(committed, read.positions)
        if corrections:
            self.metrics.resume_corrections.inc(len(corrections))
            behind = {f"{t}[{p}]": [c.committed, c.progress] for (t, p), c in corrections.items()}
            log.warning(
                "committed offsets behind the last committed transactions; resuming after those "
                "transactions, not repeating them",
                extra={"partitions": behind},
            )
        return points

    # -- the loop --------------------------------------------------------------------------------
    def _step(self) -> None:
        committer = self.committer
        assert committer is not None and self.consumer is not None
        committer.service()
        self._heap.maybe_trim()
        if self._held_records is not None or self._held_batch is not None:
            if self._hold_backoff.due():
                self._release_held(committer)
            if self._held_records is not None or self._held_batch is not None:
                self._hold()
                return
        if not committer.idle() and (self.health.trouble(WRITES) == "paused" or not committer.has_room()):
            self._hold()
            return
        self._stop_holding()
        records = self._next_records()
        if not records:
            if self._kafka_error_at and time.monotonic() - self._kafka_error_at > KAFKA_ERROR_QUIET_S:
                self._kafka_ok()
            if committer.idle() and not self._kafka_error_at:
                self.health.progress()  # idle with nothing to read, and Kafka answering
            return
        if self._kafka_error_at and records[-1].error() is None:
            self._kafka_ok()
        self._route_and_submit(records, committer)

    def _kafka_ok(self) -> None:
        self._kafka_error_at = 0.0
        self.health.report(KAFKA, "running")

    def _kafka_error(self, err: KafkaError) -> None:
        """A client-level error (`error_cb` of either client: brokers down, authentication...), served
        in this thread by consume()/poll(): shown in /stats as `retrying`; librdkafka reconnects by
        itself. While they keep coming, idle does not count as progress, so a long outage fails /ready."""
        self._kafka_error_at = time.monotonic()
        self.metrics.retries.labels(reason_name(err)).inc()
        self.health.report(KAFKA, "retrying", error=f"Kafka: {err.str()}")

    def _next_records(self) -> list[Any]:
        if self._backlog:
            backlog, self._backlog = self._backlog, []
            return backlog
        assert self.consumer is not None
        s = self.settings
        # a deep queue: wait for a full batch; otherwise forward what is there
        timeout = s.batch_timeout_s if self._deep_queue else s.batch_idle_timeout_s
        began = time.monotonic()
        records = self._consume(timeout)
        # A full batch that was there at once means a deep queue. One that filled while consume() waited
        # is a deep queue only if the partitions still hold a batch more (a backlog whose fetches lag the
        # loop); otherwise it is the live edge, where waiting for full batches holds each record up to a
        # batch's fill time, and at the rate where a batch fills within the wait (2,000 records in 0.2 s:
        # 10k msg/s with the defaults) every batch fills again: the worker stayed that far behind for good
        # (bench/results/NOTES.md §3, tenth round: p99 ~280 ms for the rest of a run).
        full = len(records) >= s.records_per_batch
        self._deep_queue = full and (
            time.monotonic() - began <= s.batch_idle_timeout_s or self._behind_by(s.records_per_batch)
        )
        return records

    def _behind_by(self, count: int) -> bool:
        """Whether the assigned partitions hold at least `count` records past the consumer's position, by
        the high watermarks of librdkafka's last fetches (no request to the broker)."""
        assert self.consumer is not None
        try:
            positions = self.consumer.position(self.consumer.assignment())
        except KafkaException:  # the consumer cannot say (closing, or a fatal error consume() will report)
            return False
        behind = 0
        for tp in positions:
            if tp.offset < 0:
                continue
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:  # nothing fetched for it yet: nothing known to be behind
                continue
            behind += max(0, high - tp.offset)
            if behind >= count:
                return True
        return False

    def _consume(self, timeout_s: float) -> list[Any]:
        """consume(), where rebalances run, without the records a rebalance made stale; partitions
        assigned during it are read again from their start (`refinery.worker.stale`)."""
        assert self.consumer is not None
        rebalances = self._stale.rebalances
        records: list[Any] = self.consumer.consume(self.settings.records_per_batch, timeout_s)
        records, dropped, reread = self._stale.current(
            records, rebalanced=rebalances != self._stale.rebalances
        )
        if dropped:
            log.info("records of a rebalance dropped", extra={
                "dropped": dropped, "kept": len(records),
                "read_again_from": {f"{t}[{p}]": o for (t, p), o in reread.items()},
            })  # fmt: skip
        if reread:
            self._read_again(reread)
        return records

    def _read_again(self, starts: dict[PartitionKey, int]) -> None:
        """Assign the partitions again at their starts: librdkafka drops what it fetched for them
        before and reads from there. With eager rebalancing they are the whole assignment; any other
        partition keeps its position."""
        consumer = self.consumer
        assert consumer is not None
        partitions = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in starts.items()
        ]
        others = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in starts]
        if others:
            partitions += consumer.position(others)
        consumer.assign(partitions)
        (consumer.pause if self._consumer_paused else consumer.resume)(partitions)

    def _route_and_submit(self, records: list[Any], committer: Committer) -> None:
        router = self._router_source()
        assert router is not None
        started = time.monotonic()
        dlq_unmatched = self.settings.dlq_unmatched
        plans = self._plans
        if plans is None or plans.router is not router:  # a new route set: new plans
            plans = self._plans = RoutePlans(router, self.guard, dlq_unmatched=dlq_unmatched)
        try:
            batch = route_batch(
                records, router, self.guard, committer.seen, dlq_unmatched=dlq_unmatched, plans=plans
            )
        except RegistryAccessError as exc:  # fail closed: never route what we cannot check
            self._held_records = records
            for record in records:
                if record.error() is None:
                    self._consumed[(record.topic(), record.partition())] = record.offset() + 1
            self.metrics.registry_denied.inc()
            self._hold_failed(exc, reason="registry_denied", pause_now=True)
            return
        if not batch.records:
            return  # only error events (e.g. a topic deleted under the pattern): nothing to commit
        self._consumed.update(batch.next_offsets)
        self._offer(batch, started, committer)

    def _offer(self, batch: RoutedBatch, started: float, committer: Committer) -> None:
        if not committer.accepts(batch):
            self._held_batch = (batch, started)  # e.g. a dedup batch waits for the earlier ones
            return
        try:
            committer.submit(batch, started)
        except TransientWriteError as exc:
            self._held_batch = (batch, started)
            self._hold_failed(exc, reason="retry_budget_spent")
            return
        self._hold_succeeded()

    # -- holding: nothing new is consumed while a batch waits ---------------------------------------
    def _release_held(self, committer: Committer) -> None:
        if self._held_records is not None:
            records, self._held_records = self._held_records, None
            self._route_and_submit(records, committer)
            if self._held_records is None:
                self._hold_succeeded()
        elif self._held_batch is not None:
            batch, started = self._held_batch
            if committer.accepts(batch):
                self._held_batch = None
                self._offer(batch, started, committer)

    def _hold_failed(self, exc: Exception, *, reason: str, pause_now: bool = False) -> None:
        backoff = self._hold_backoff
        delay = backoff.failed()
        error = getattr(exc, "error", None)
        self.metrics.retries.labels(reason if error is None else reason_name(error)).inc()
        if pause_now or backoff.exhausted:
            backoff.next_at = time.monotonic() + self.settings.pause_probe_interval_s
            if self.health.trouble(HOLD) != "paused":
                log.error("pausing consumption", extra={"reason": reason, "error": str(exc)})
            self.health.report(HOLD, "paused", reason=reason, error=str(exc))
            return
        log.warning(
            "batch not written; trying again", extra={"error": str(exc), "retry_in_s": round(delay, 3)}
        )
        self.health.report(HOLD, "retrying", error=str(exc))

    def _hold_succeeded(self) -> None:
        if self._hold_backoff.attempts:
            self._hold_backoff.reset()
            self.health.report(HOLD, "running")
            log.info("held batch went through; consuming again")

    def _hold(self) -> None:
        """Wait a moment without taking new records. Past `PAUSE_CONSUMER_AFTER_S` the partitions are
        paused and the consumer is polled, so the worker stays in its group however long this lasts."""
        assert self.consumer is not None and self.committer is not None
        now = time.monotonic()
        if self._holding_since is None:
            self._holding_since = now
        if not self._consumer_paused and now - self._holding_since > PAUSE_CONSUMER_AFTER_S:
            self._set_paused(True)
        if self._consumer_paused:
            for record in self._consume(HOLD_POLL_S):  # fetched before the pause took hold
                if record.error() is None:
                    self._backlog.append(record)
                    self._consumed[(record.topic(), record.partition())] = record.offset() + 1
        else:
            self.committer.wait(HOLD_WAIT_S)

    def _stop_holding(self) -> None:
        self._holding_since = None
        if self._consumer_paused:
            self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        consumer = self.consumer
        assert consumer is not None
        try:
            assignment = consumer.assignment()
            if assignment:
                (consumer.pause if paused else consumer.resume)(assignment)
        except KafkaException as exc:
            log.warning("could not pause or resume partitions", extra={"error": str(exc)})
            return
        self._consumer_paused = paused

    # -- for tests and views ---------------------------------------------------------------------
    def held(self) -> list[RecordLike]:
        """Records consumed but not yet handed to the committer."""
        held = list(self._backlog)
        if self._held_records is not None:
            held += self._held_records
        if self._held_batch is not None:
            held += self._held_batch[0].records
        return held

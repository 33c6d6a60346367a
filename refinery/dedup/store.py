"""Drop resent records: message ids (`ce_id`) seen within a time window, per input partition.

Store: for each assigned input partition, an insertion-ordered dict of message id -> time seen, bounded
by the window and by a maximum count. A producer that resends a record (a retry after a timeout) sends
it with the same key, so it lands in the same partition; per-partition stores move with the partitions.

Durability: ids are written to a changelog topic (`WorkerSettings.dedup_changelog`, one partition,
time-based retention of a few windows; not compacted, because every id in the window matters). One
changelog record per input partition per batch (format: `refinery.dedup.records`). When partitions are
assigned (rebalance or restart), the worker rebuilds their stores by reading the changelog from
`now - window` to its end (`DedupChangelog.restore`).

Ids are recorded only after the records they stand for are acknowledged (at-least-once: after the
flush; exactly-once: in the same transaction), so a crash can repeat output but never lose it.

Closing the at-least-once window (a crash after the outputs are acknowledged but before their ids
are recorded): before a batch with outputs on `dedup` routes is produced, the worker writes and
flushes an INTENT record naming the batch, its input partitions and offsets, the derived topics of
those outputs and a digest of each message id per input partition (`Intent.for_batch`); after the
outputs are acknowledged it writes the ids and a DONE record. A rebuild that finds an intent without
DONE settles it (`refinery.dedup.settle`): it reads those derived topics over the intent's time span,
records the ids that landed under the input partitions they came from (not repeated when the batch is
replayed; whatever did not land is sent again, so never lost), then writes those ids and a DONE for
the partitions it settled, so the batch is settled once. A crash while settling leaves no DONE, and
settling again finds the same ids.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Producer, TopicPartition

from common.errors import RefineryError
from refinery.dedup import records as rec
from refinery.dedup.records import ChangelogRecord, Intent, PartitionKey, changelog_key, parse_changelog_key
from refinery.dedup.settle import (
    DEFAULT_SETTLE_WINDOW_S,
    READ_FETCH_WAIT_MS,
    OutputMatcher,
    Scan,
    scan_outputs,
)

log = logging.getLogger(__name__)


class ChangelogWriteError(RefineryError):
    """Records for the dedup changelog were not acknowledged."""


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

    def ids(self, tp: PartitionKey) -> list[bytes]:
        """The ids held for `tp`, oldest first."""
        return list(self._seen.get(tp, ()))


@dataclass(frozen=True)
class RestoreReport:
    """What one `DedupChangelog.restore` did (logged once, and `WorkerMetrics.apply_restore`)."""

    partitions: int = 0
    ids_restored: int = 0  # ids added to the store: from the changelog's id records, plus ids_settled
    batches_settled: int = 0  # unfinished batches settled now (their ids and DONE written)
    ids_settled: int = 0  # ids found on derived topics while settling them
    derived_records_read: int = 0  # records read from derived topics while settling
    batches_unsettled: int = 0  # unfinished batches left for a later restore (read or write incomplete)
    changelog_records: int = 0  # changelog records read
    seconds: float = 0.0

    def summary(self) -> str:
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())


class ChangelogReplay:
    """Replays changelog records into a store for `partitions` (plain data, no I/O): id records are
    added, and intents are tracked until a DONE closes them for those partitions."""

    def __init__(self, store: DedupStore, partitions: Iterable[PartitionKey]) -> None:
        self.store = store
        self.wanted = set(partitions)
        self.records = 0
        self.ids_loaded = 0
        self._open: dict[str, tuple[Intent, set[PartitionKey]]] = {}  # batch -> (intent, left to settle)

    def apply(self, key: bytes | None, value: bytes | None, headers: Any, timestamp_ms: int) -> None:
        self.records += 1
        kind = rec.changelog_kind(headers)
        if kind == rec.INTENT:
            intent = Intent.decode(value or b"{}", timestamp_ms)
            left = self.wanted.intersection(intent.inputs)
            if left:
                self._open[intent.batch_id] = (intent, left)
        elif kind == rec.DONE:
            batch_id = (value or b"").decode()
            closed = rec.done_partitions(headers)
            entry = self._open.get(batch_id)
            if entry is not None and closed is not None:
                entry[1].difference_update(closed)
            if entry is not None and (closed is None or not entry[1]):
                del self._open[batch_id]
        elif kind is None:
            tp = parse_changelog_key(key or b":0")
            if tp in self.wanted:
                ids = (value or b"").split(b"\n")
                self.store.add(tp, ids, at=timestamp_ms / 1000)
                self.ids_loaded += len(ids)

    def unfinished(self) -> list[tuple[Intent, set[PartitionKey]]]:
        """Intents without a DONE for some of `partitions`, with those partitions, oldest first."""
        return list(self._open.values())


@dataclass
class Settled:
    """One settled batch: the ids found per input partition and the read that found them."""

    intent: Intent
    matcher: OutputMatcher
    scan: Scan

    @property
    def complete(self) -> bool:
        return self.scan.finished

    def changelog_records(self) -> list[ChangelogRecord]:
        """Its id records (stamped with the intent's time, so they age out with the batch) and, if the
        read was complete, its DONE: for the whole batch when every input partition was settled."""
        out = rec.id_records(self.matcher.found, self.intent.timestamp_ms)
        if self.complete:
            owners = set(self.matcher.owners)
            out.append(
                rec.done_record(self.intent.batch_id, None if owners >= set(self.intent.inputs) else owners)
            )
        return out


class DedupChangelog:
    """Writes and replays the ids of a `DedupStore` through a Kafka topic, and settles unfinished
    batches. `settle_window_s`: how long after its intent a batch's outputs may carry as timestamps
    (`WorkerSettings.dedup_settle_window_s`)."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        topic: str,
        *,
        group_id: str,
        settle_window_s: float = DEFAULT_SETTLE_WINDOW_S,
    ) -> None:
        self._client_config = dict(client_config)
        self.topic = topic
        self._group_id = group_id
        self.settle_window_s = settle_window_s

    def records(self, batch_ids: Mapping[PartitionKey, Iterable[bytes]]) -> list[tuple[bytes, bytes]]:
        """(key, value) changelog records for the ids recorded in one batch."""
        return [(changelog_key(tp), b"\n".join(ids)) for tp, ids in batch_ids.items() if ids]

    @staticmethod
    def intent_record(intent: Intent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        key, value, headers, _ = rec.intent_record(intent)
        return key, value, headers or []

    @staticmethod
    def done_record(batch_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        key, value, headers, _ = rec.done_record(batch_id)
        return key, value, headers or []

    def writer(self) -> Producer:
        """A short-lived idempotent producer for `write`, of its own: the data plane's producer may be
        transactional (exactly-once) or hold a batch in flight, and settling is rare. It connects and
        gets its producer id in the background (~0.5 s), so make it before the settle read."""
        return Producer({**self._client_config, "enable.idempotence": True, "acks": "all", "linger.ms": 5})

    def write(
        self, records: Sequence[ChangelogRecord], timeout_s: float = 30.0, *, producer: Producer | None = None
    ) -> None:
        """Write `records` in order and wait for their acknowledgements (with `producer`, from `writer`,
        or a new one). Raises `ChangelogWriteError`."""
        if not records:
            return
        producer = producer or self.writer()
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for r in records:
            options: dict[str, Any] = {"headers": r.headers, "on_delivery": on_delivery}
            if r.timestamp_ms is not None:
                options["timestamp"] = r.timestamp_ms
            producer.produce(self.topic, r.value, r.key, **options)
        left = producer.flush(timeout_s)
        if left or errors:
            raise ChangelogWriteError(
                f"{left or len(errors)} of {len(records)} dedup changelog records not written to "
                f"{self.topic}: {errors[0] if errors else 'timed out'}"
            )

    def restore(
        self, store: DedupStore, partitions: Iterable[PartitionKey], timeout_s: float = 30.0
    ) -> RestoreReport:
        """Load the ids of `partitions` from the last window of the changelog and settle the batches a
        crash left unfinished for them; log and return what it did."""
        began = time.monotonic()
        wanted = set(partitions)
        for tp in wanted:
            store.add(tp, ())
        if not wanted:
            return RestoreReport()
        replay = ChangelogReplay(store, wanted)
        self._replay(replay, store.window_s, timeout_s)
        unfinished = replay.unfinished()
        producer = self.writer() if unfinished else None
        settled = [self._settle(intent, left, timeout_s) for intent, left in unfinished]
        written = True
        try:
            self.write([r for s in settled for r in s.changelog_records()], timeout_s, producer=producer)
        except ChangelogWriteError as exc:  # the ids are in the store; a later restore settles again
            log.warning("settled dedup batches not recorded", extra={"error": str(exc)})
            written = False
        ids_settled = 0
        for s in settled:
            for tp, ids in s.matcher.found.items():
                store.add(tp, ids, at=s.intent.timestamp_ms / 1000)
                ids_settled += len(ids)
        done = sum(1 for s in settled if s.complete) if written else 0
        report = RestoreReport(
            partitions=len(wanted),
            ids_restored=replay.ids_loaded + ids_settled,
            batches_settled=done,
            ids_settled=ids_settled,
            derived_records_read=sum(s.scan.records_read for s in settled),
            batches_unsettled=len(settled) - done,
            changelog_records=replay.records,
            seconds=round(time.monotonic() - began, 3),
        )
        log.info(f"dedup store restored: {report.summary()}", extra={"dedup_restore": asdict(report)})
        return report

    def _replay(self, replay: ChangelogReplay, window_s: float, timeout_s: float) -> None:
        consumer = Consumer(
            {
                **self._client_config,
                "group.id": f"{self._group_id}-dedup-restore-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": READ_FETCH_WAIT_MS,
            }
        )
        try:
            since_ms = int((time.time() - window_s) * 1000)
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
                replay.apply(msg.key(), msg.value(), msg.headers(), msg.timestamp()[1])
        finally:
            consumer.close()

    def _settle(self, intent: Intent, partitions: Iterable[PartitionKey], timeout_s: float) -> Settled:
        matcher = OutputMatcher(intent, partitions)
        scan = scan_outputs(
            self._client_config, intent, matcher, window_s=self.settle_window_s, timeout_s=timeout_s
        )
        log.info(
            "settled an unfinished dedup batch",
            extra={
                "batch": intent.batch_id, "topics": intent.topics, "partitions": len(matcher.owners),
                "ids_expected": matcher.expected, "ids_found": matcher.ids_found,
                "records_read": scan.records_read, "complete": scan.finished,
            },
        )  # fmt: skip
        return Settled(intent, matcher, scan)

    def settle(
        self, store: DedupStore, intent: Intent, partitions: Iterable[PartitionKey], timeout_s: float = 30.0
    ) -> int:
        """Record the ids of an unfinished batch's outputs that did land, for its input partitions among
        `partitions`: add them to `store`, write them and the batch's DONE to the changelog (so no
        restore settles it again); return how many ids were added. A failed write is logged: the ids
        are in `store`, and a later restore settles the batch again."""
        producer = self.writer()
        settled = self._settle(intent, partitions, timeout_s)
        try:
            self.write(settled.changelog_records(), timeout_s, producer=producer)
        except ChangelogWriteError as exc:
            log.warning(
                "settled dedup batch not recorded", extra={"batch": intent.batch_id, "error": str(exc)}
            )
        added = 0
        for tp, ids in settled.matcher.found.items():
            store.add(tp, ids, at=intent.timestamp_ms / 1000)
            added += len(ids)
        return added

"""Route one consumed batch: decide, for every record, its outputs or its dead letter.

No I/O here: the data plane (`refinery.worker.dataplane`) consumes, then calls `route_batch`, then creates
topics, writes and commits. Keys, values and headers are passed through as the same objects, so the
outputs are byte-identical to the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from common import headers as h
from common.errors import TopicNameError
from common.headers import Headers
from refinery.dedup.store import Intent, PartitionKey
from refinery.routing.dlq import DlqReason
from refinery.routing.guards import RecordGuard, Rejection, topic_env
from refinery.routing.plan import RoutePlans, route_records
from refinery.routing.router import RoutingError
from refinery.worker.metrics import BatchCounts


class RecordLike(Protocol):
    """The parts of `confluent_kafka.Message` we use."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def error(self) -> Any: ...


class RouterLike(Protocol):
    def route(self, headers: Any) -> Sequence[Any]: ...


class SeenLike(Protocol):
    """What routing asks the dedup store (`DedupStore`, or `refinery.worker.inflight.PendingDedup`)."""

    def seen(self, tp: PartitionKey, message_id: bytes) -> bool: ...


class Output(NamedTuple):
    """One record to write: a consumed record to a derived topic, for a route. A named tuple, so that
    the compiled routing loop builds it without running Python code."""

    topic: str
    record: RecordLike
    route: str


@dataclass(slots=True)
class DeadLetter:
    record: RecordLike
    reason: DlqReason
    message: str
    route: str | None = None


@dataclass
class RoutedBatch:
    records: list[RecordLike] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    counts: BatchCounts = field(default_factory=BatchCounts)
    first_offsets: dict[PartitionKey, int] = field(default_factory=dict)
    next_offsets: dict[PartitionKey, int] = field(default_factory=dict)
    dedup_ids: dict[PartitionKey, dict[bytes, None]] = field(default_factory=dict)  # ordered set
    dedup_topics: set[str] = field(default_factory=set)  # derived topics of outputs on dedup routes
    intent: Intent | None = None  # at-least-once: announced in the dedup changelog before writing
    # outputs Kafka refused for good (index in `outputs` -> why): written as `output_rejected` dead letters
    rejected: dict[int, str] = field(default_factory=dict)

    @property
    def topics(self) -> set[str]:
        return {o.topic for o in self.outputs}


def route_batch(
    records: Sequence[RecordLike],
    router: RouterLike,
    guard: RecordGuard,
    dedup: SeenLike,
    *,
    dlq_unmatched: bool = False,
    plans: RoutePlans | None = None,
) -> RoutedBatch:
    """Check and route every record of a batch (records with `error()` set are skipped). With `plans`
    (built for this router and guard) and the compiled loop, the records its plans cover are routed
    in C; every other record, and every record without them, by `_RecordRouter` below (the reference)."""
    batch = RoutedBatch()
    step = _RecordRouter(batch, router, guard, dedup, dlq_unmatched)
    if plans is not None and route_records is not None and plans.fits(router, guard, dlq_unmatched):
        counts = batch.counts
        unmatched = route_records(
            plans.context, records, step, Output, batch.records, batch.outputs,
            batch.first_offsets, batch.next_offsets, counts.records_in, counts.origin,
        )  # fmt: skip
        counts.unmatched += unmatched  # after the call: the Python path counts into it meanwhile
        return batch
    first, next_, taken, records_in = (
        batch.first_offsets,
        batch.next_offsets,
        batch.records,
        batch.counts.records_in,
    )
    for record in records:
        if record.error() is not None:
            continue
        topic, partition, offset = record.topic() or "", record.partition() or 0, record.offset() or 0
        tp = (topic, partition)
        if tp not in first:
            first[tp] = offset
        next_[tp] = offset + 1
        taken.append(record)
        records_in[topic] += 1
        step(record, topic, tp)
    return batch


class _RecordRouter:
    """Checks and routes one record of a batch whose offsets are already noted: its dead letters,
    its outputs, its counts."""

    __slots__ = ("batch", "dedup", "dlq_unmatched", "guard", "router")

    def __init__(
        self, batch: RoutedBatch, router: RouterLike, guard: RecordGuard, dedup: SeenLike, dlq_unmatched: bool
    ) -> None:
        self.batch = batch
        self.router = router
        self.guard = guard
        self.dedup = dedup
        self.dlq_unmatched = dlq_unmatched

    def __call__(self, record: RecordLike, topic: str, tp: PartitionKey) -> None:
        batch = self.batch
        counts, dead = batch.counts, batch.dead
        try:
            headers = self.guard.check(topic, record.value(), record.headers(), record.key())
        except Rejection as rej:
            dead.append(DeadLetter(record, rej.reason, rej.message, rej.route))
            return
        env = headers[h.ENV]
        counts.origin[(env, headers[h.TITLE], headers[h.CATEGORY])] += 1
        try:
            destinations: Sequence[Any] = self.router.route(headers)
        except RoutingError as exc:
            # the failing route's copy goes to the DLQ; the routes that did resolve still get theirs
            dead.append(DeadLetter(record, DlqReason.ROUTE_ERROR, f"{exc.reason}: {exc}", exc.route))
            destinations = exc.partial
            if not destinations:
                return
        if not destinations:
            counts.unmatched += 1
            if self.dlq_unmatched:
                dead.append(DeadLetter(record, DlqReason.UNMATCHED, "no route matched this record"))
            return
        message_id = headers[h.MESSAGE_ID]
        seen_ids = batch.dedup_ids.get(tp)
        duplicate: bool | None = None  # decided lazily: only routes with dedup on need it
        for dest in destinations:
            name = dest.route
            try:
                dest_env = topic_env(dest.topic)
            except TopicNameError as exc:
                dead.append(DeadLetter(record, DlqReason.TOPIC_REJECTED, str(exc), name))
                continue
            if dest_env != env:
                dead.append(DeadLetter(
                    record, DlqReason.ENV_MISMATCH,
                    f"route {name!r} would write env {env.decode()!r} data to {dest.topic!r}", name,
                ))  # fmt: skip
                continue
            if dest.dedup:
                if duplicate is None:
                    duplicate = self.dedup.seen(tp, message_id) or (
                        seen_ids is not None and message_id in seen_ids
                    )
                    if not duplicate:
                        if seen_ids is None:
                            seen_ids = batch.dedup_ids[tp] = {}
                        seen_ids[message_id] = None
                if duplicate:
                    counts.deduplicated[name] += 1
                    continue
                batch.dedup_topics.add(dest.topic)
            batch.outputs.append(Output(dest.topic, record, name))

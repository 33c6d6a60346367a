"""Settling an unfinished batch: which of its dedup-route outputs did land on the derived topics.

A batch whose INTENT has no DONE crashed (or failed) somewhere between announcing its outputs and
recording their ids. What it may have written is bounded three ways, and the read is bounded the same:

- where: the intent's derived topics only;
- when: outputs are produced right after the intent is acknowledged and carry their produce time
  (librdkafka stamps CreateTime at `produce()`, and retries keep it), so they sit between the intent's
  time (less `SCAN_MARGIN_MS` for clock granularity) and that time plus the settle window
  (`WorkerSettings.dedup_settle_window_s`); records outside that span are skipped, and each partition is
  read only over the offsets `offsets_for_times` gives for it;
- what: the intent lists a digest of every message id it may write, per input partition, so the read
  stops as soon as every one was found, and a found id goes only to the input partitions whose list has
  it. (Intents from before ids were listed: every id in the span goes to every input partition.)

Whatever the read misses can only be written again by the replay (a duplicate), never lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from common import headers as h
from refinery.dedup.records import Intent, PartitionKey, header_value, id_digest

log = logging.getLogger(__name__)

SCAN_MARGIN_MS = 1000  # read derived topics from a little before the intent (clock granularity)
DEFAULT_SETTLE_WINDOW_S = 30.0
# Both restore readers read data already written, to its end, and end-of-partition is only known from
# an empty fetch, which the broker holds for fetch.wait.max.ms (librdkafka: 500 ms) waiting for more.
READ_FETCH_WAIT_MS = 20
FIRST_STAGE_MS = 1000  # the first read stage: outputs are stamped within milliseconds of the intent


class OutputMatcher:
    """The message ids found on an intent's derived topics, sorted into the input partitions they came
    from, for the input partitions among `partitions` (the ones being settled). Plain data, no I/O."""

    def __init__(self, intent: Intent, partitions: Iterable[PartitionKey]) -> None:
        self.owners = sorted(tp for tp in set(partitions) if tp in intent.inputs)
        self.legacy = not intent.ids  # an intent without ids: every id found belongs to every owner
        self._by_digest: dict[bytes, list[PartitionKey]] = {}
        if not self.legacy:
            for tp in self.owners:
                for digest in intent.ids.get(tp, ()):
                    self._by_digest.setdefault(digest, []).append(tp)
        self._missing = set(self._by_digest)
        self.found: dict[PartitionKey, dict[bytes, None]] = {tp: {} for tp in self.owners}  # ordered sets

    @property
    def expected(self) -> int | None:
        """How many distinct ids the batch may have written to the owners (None: not known)."""
        return None if self.legacy else len(self._by_digest)

    @property
    def needs_reading(self) -> bool:
        return bool(self.owners) and (self.legacy or bool(self._by_digest))

    @property
    def complete(self) -> bool:
        """Every id the batch may have written to the owners was found: nothing left to read."""
        return not self.legacy and not self._missing

    @property
    def ids_found(self) -> int:
        return sum(len(ids) for ids in self.found.values())

    def offer(self, message_id: bytes) -> None:
        """A message id seen on one of the intent's derived topics, within its time span."""
        if self.legacy:
            for tp in self.owners:
                self.found[tp][message_id] = None
            return
        digest = id_digest(message_id)
        owners = self._by_digest.get(digest)
        if owners is None:
            return
        self._missing.discard(digest)
        for tp in owners:
            self.found[tp][message_id] = None


@dataclass
class Scan:
    """What one settle read did: records read from the derived topics, and whether it read all it
    meant to (False: it ran out of time; the batch stays unfinished for a later restore)."""

    records_read: int = 0
    finished: bool = True


def scan_outputs(
    client_config: Mapping[str, Any],
    intent: Intent,
    matcher: OutputMatcher,
    *,
    window_s: float,
    timeout_s: float = 30.0,
) -> Scan:
    """Read the intent's derived topics over its time span, offering every `ce_id` to `matcher`, until
    the span is read or `matcher` is complete.

    In stages: first every partition up to `FIRST_STAGE_MS` after the intent, then the rest of the
    window. The consumer hands over records partition by partition (each one's prefetched run), so in one
    pass the last of the batch's outputs turns up only after most of every partition's span was read;
    in stages, a batch whose outputs all landed (the common crash: after its flush) costs about the first
    stage, and only one that crashed mid-write reads the whole window."""
    scan = Scan()
    if not matcher.needs_reading:
        return scan
    since_ms = intent.timestamp_ms - SCAN_MARGIN_MS
    until_ms = intent.timestamp_ms + int(window_s * 1000)
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"refinery-dedup-settle-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # the batch's outputs are never transactional: read_committed would only add a wait on
            # other writers' open transactions
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": READ_FETCH_WAIT_MS,
        }
    )
    deadline = time.monotonic() + timeout_s
    try:
        position = _offsets_at(consumer, _partitions(consumer, intent.topics, timeout_s), since_ms, timeout_s)
        position = {tp: offset for tp, offset in position.items() if offset >= 0}  # -1: nothing since
        cuts = sorted({min(intent.timestamp_ms + FIRST_STAGE_MS, until_ms), until_ms})
        for cut in cuts:
            if not position or matcher.complete:
                break
            # up to the first offset at `cut`; None (nothing written after it yet): to the current end
            ends = {
                tp: (o if o >= 0 else None)
                for tp, o in _offsets_at(consumer, position, cut, timeout_s).items()
            }
            pending = {tp: end for tp, end in ends.items() if end is None or position[tp] < end}
            if pending:
                assignment = [TopicPartition(t, p, position[(t, p)]) for t, p in pending]
                consumer.assign(assignment)
                consumer.resume(assignment)  # a partition paused at the end of a stage stays paused
                if not _read(consumer, pending, matcher, scan, since_ms, until_ms, deadline):
                    log.warning(
                        "derived topics not read to the end of the settle window in time",
                        extra={"batch": intent.batch_id, "unread_partitions": len(pending)},
                    )
                    scan.finished = False
                    break
            position = {tp: end for tp, end in ends.items() if end is not None}
    finally:
        consumer.close()
    return scan


def _read(
    consumer: Consumer,
    pending: dict[PartitionKey, int | None],
    matcher: OutputMatcher,
    scan: Scan,
    since_ms: int,
    until_ms: int,
    deadline: float,
) -> bool:
    """Consume the assigned partitions up to their `pending` end offsets (None: to their end), offering
    ids in the time span to `matcher`; False if `deadline` passed first."""
    while pending and not matcher.complete:
        if time.monotonic() > deadline:
            return False
        done: list[TopicPartition] = []
        for msg in consumer.consume(1000, 0.5):
            key = (msg.topic() or "", msg.partition() or 0)
            if key not in pending:
                continue
            end = pending[key]
            err = msg.error()
            offset = msg.offset() or 0
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    del pending[key]
                    done.append(TopicPartition(*key))
                continue
            if end is None or offset < end:
                scan.records_read += 1
                if since_ms <= msg.timestamp()[1] < until_ms:
                    message_id = header_value(msg.headers(), h.MESSAGE_ID)
                    if message_id:
                        matcher.offer(message_id)
                        if matcher.complete:
                            return True  # every id of the batch found: the rest of the span is others'
            if end is not None and offset + 1 >= end:
                del pending[key]
                done.append(TopicPartition(*key))
        if done and pending:
            consumer.pause(done)  # stop fetching past the span
    return True


def _partitions(consumer: Consumer, topics: Iterable[str], timeout_s: float) -> list[PartitionKey]:
    out: list[PartitionKey] = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            continue  # never created (e.g. its name was rejected): nothing landed there
        out += [(topic, p) for p in sorted(meta.partitions)]
    return out


def _offsets_at(
    consumer: Consumer, partitions: Iterable[PartitionKey], timestamp_ms: int, timeout_s: float
) -> dict[PartitionKey, int]:
    """The first offset of each partition at or after `timestamp_ms` (-1: none yet)."""
    wanted = [TopicPartition(t, p, timestamp_ms) for t, p in partitions]
    if not wanted:
        return {}
    return {
        (tp.topic, tp.partition): tp.offset for tp in consumer.offsets_for_times(wanted, timeout=timeout_s)
    }

"""Exactly-once resume points that travel in the same transactions as the outputs.

Each transaction also writes, per input partition of its batch, the next offset to read to a compacted
topic (`WorkerSettings.progress_topic`), and commits its offsets to the group tagged `PROGRESS_TAG`:
both land or neither. A newly assigned partition normally resumes at the group's committed offset; the
progress topic is the check on it. With its coordinator stalled (SIGSTOP, Kafka 4.1) the group has been
seen to serve an older committed offset after later transactions had committed past it: a transaction
whose commit markers were held by the stalled leader became visible on the new coordinator after the
next owner's commits, and the partition was read again from its offset (1,907 outputs written twice in
the cluster fault tests). The progress records sit in the topic's log in the order the transactions
wrote them, so the last committed one per partition is the true resume point whichever way the group's
offsets went.

- A committed offset with our tag that lies behind the last progress record is such a regression: the
  partition resumes at the progress record (logged, counted in `refinery_resume_corrections_total`).
- A committed offset without our tag was set by someone else (`kafka-consumer-groups --reset-offsets`,
  the at-least-once mode): it is followed as it is, backwards too.
- The topic is read with `read_committed` up to the high watermark taken when reading starts, so a
  transaction still open then (its markers held by a stalled leader) is waited for, up to
  `progress_read_timeout_s`; past it the worker goes on with what it read and says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from refinery.dedup.records import PartitionKey, changelog_key
from refinery.dedup.settle import READ_FETCH_WAIT_MS

log = logging.getLogger(__name__)

PROGRESS_TAG = "refinery.eos.v1"  # the metadata of the offsets our transactions commit


def progress_records(next_offsets: Mapping[PartitionKey, int]) -> list[tuple[bytes, bytes]]:
    """(key, value) per input partition of a batch: its next offset, in ASCII; keyed as the dedup
    changelog keys its id records (`{topic}:{partition}`)."""
    return [(changelog_key(key), str(offset).encode()) for key, offset in next_offsets.items()]


def parse_record(key: bytes | None, value: bytes | None) -> tuple[PartitionKey, int] | None:
    """The partition and offset of a progress record, or None for anything else."""
    if not key or not value:
        return None
    topic, sep, partition = key.decode(errors="replace").rpartition(":")
    if not sep or not topic or not partition.isdigit() or not value.isdigit():
        return None
    return (topic, int(partition)), int(value)


def tagged(offsets: Iterable[TopicPartition]) -> list[TopicPartition]:
    """The offsets a transaction commits, marked as ours (see `resume_points`)."""
    return [TopicPartition(tp.topic, tp.partition, tp.offset, metadata=PROGRESS_TAG) for tp in offsets]


@dataclass
class Correction:
    """A partition whose committed offset was behind its last committed transaction."""

    committed: int
    progress: int


def resume_points(
    committed: Iterable[TopicPartition], progress: Mapping[PartitionKey, int]
) -> tuple[dict[PartitionKey, int], dict[PartitionKey, Correction]]:
    """Where each partition resumes: its committed offset, or the progress record where a committed
    offset of ours lies behind it (a partition with no committed offset but a progress record resumes
    there too: its commit was lost). Returns the offsets and the corrections made."""
    points: dict[PartitionKey, int] = {}
    corrections: dict[PartitionKey, Correction] = {}
    for tp in committed:
        key = (tp.topic, tp.partition)
        offset = tp.offset
        ours = offset < 0 or (tp.metadata or "") == PROGRESS_TAG
        last = progress.get(key)
        if ours and last is not None and last > offset:
            corrections[key] = Correction(committed=offset, progress=last)
            offset = last
        points[key] = offset
    return points, corrections


@dataclass
class ProgressRead:
    positions: dict[PartitionKey, int] = field(default_factory=dict)  # last record per wanted partition
    records: int = 0
    complete: bool = True  # read up to the high watermark taken at the start
    seconds: float = 0.0


class ProgressLog:
    """Reads the progress topic (one partition) for the partitions a worker was just assigned."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        self._client_config = dict(client_config)
        self.topic = topic
        self._group_id = group_id

    def read(self, wanted: Iterable[PartitionKey], timeout_s: float) -> ProgressRead:
        """The last committed progress record of each of `wanted`, read to the high watermark taken at
        the start (waiting for transactions still open then), within `timeout_s`."""
        began = time.monotonic()
        wanted = set(wanted)
        result = ProgressRead()
        if not wanted:
            return result
        partition = TopicPartition(self.topic, 0)
        try:
            low, high = self._watermarks(partition, timeout_s)
        except KafkaException as exc:
            log.warning("could not read the progress topic", extra={"topic": self.topic, "error": str(exc)})
            result.complete = False
            high = low = 0
        if high > low:  # a reader only when there is something to read
            consumer = Consumer(
                {
                    **self._client_config,
                    "group.id": f"{self._group_id}-progress-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": READ_FETCH_WAIT_MS,
                }
            )
            try:
                consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
                result.complete = self._read_to(consumer, partition, high, wanted, result, began + timeout_s)
            finally:
                consumer.close()
        result.seconds = round(time.monotonic() - began, 3)
        return result

    def _watermarks(self, partition: TopicPartition, timeout_s: float) -> tuple[int, int]:
        """The partition's high watermark, open transactions included: a read_committed client is told
        the last stable offset instead, which stops short of exactly the records to wait for."""
        probe = Consumer(
            {
                **self._client_config,
                "group.id": f"{self._group_id}-progress-hw",
                "isolation.level": "read_uncommitted",
            }
        )
        try:
            low, high = probe.get_watermark_offsets(partition, timeout=timeout_s, cached=False)
            return int(low), int(high)
        finally:
            probe.close()

    @staticmethod
    def _read_to(
        consumer: Consumer,
        partition: TopicPartition,
        high: int,
        wanted: set[PartitionKey],
        result: ProgressRead,
        deadline: float,
    ) -> bool:
        """Read until the consumer's position reaches `high`. With read_committed the end of the
        partition is its last stable offset: an open transaction holds it, and the position moves on once
        that transaction committed or aborted."""
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    log.warning("progress topic read error", extra={"error": err.str()})
                    continue
                result.records += 1
                parsed = parse_record(msg.key(), msg.value())
                if parsed is not None and parsed[0] in wanted:
                    result.positions[parsed[0]] = parsed[1]
            position = consumer.position([partition])[0].offset
            if position >= high:
                return True
        return False

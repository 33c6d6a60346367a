"""Replay dead letters to their original ingest topic after a fix (`refinery dlq replay`).

    plan = replay_dead_letters(client_config, "_refinery_dlq", reason="unknown_schema",
                               since_ms=..., dry_run=True)
    print(plan.summary())

Reads the dead-letter topic from `since_ms` (Kafka's offsetsForTimes on the dead-letter time) up to its
end as of the start, keeps the records whose `__refinery.errors.reason` is `reason`, and sends each
back to the topic named by `__refinery.errors.topic` (the ingest topic it was read from) with:
- the original key and value (so the envelope and its message id are unchanged: dedup routes stay
  exact, and a record the worker had routed before is still recognised as a duplicate);
- the original headers minus every `__refinery.errors.*` one, plus `REPLAY_HEADER` saying where the
  dead letter was (`reason=<r> dlq=<topic>/<partition>/<offset>`), so a replayed record is traceable.
Not replayed, and counted: dead letters whose value was cut to fit (`__refinery.errors.value.truncated`
= true) or whose original headers were left out (`__refinery.errors.headers.dropped`) — sending them
would inject a record that is not the original — and those without an ingest topic of origin.
The producer is idempotent with `acks=all` and the SDK's partitioner (murmur2, by key), so a replayed
record lands on the partition its key always maps to.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from common.errors import RefineryError
from common.headers import Headers
from common.kafka_log import error_text
from common.topics import is_ingest_topic
from refinery.routing.dlq import ERROR_HEADER_PREFIX, HEADERS_DROPPED, REASON, TOPIC, VALUE_TRUNCATED

REPLAY_HEADER = "refinery.replay"


class ReplayError(RefineryError):
    """The dead-letter topic could not be read, or the broker refused replayed records."""


@dataclass
class ReplayReport:
    reason: str
    dry_run: bool
    scanned: int = 0  # dead letters read in the time window (any reason)
    matched: int = 0  # of those, with the asked reason
    replayed: int = 0  # sent (or, in a dry run, that would be sent)
    cut: int = 0  # not replayed: value cut or original headers left out
    no_origin: int = 0  # not replayed: no ingest topic of origin
    failed: list[str] = field(default_factory=list)  # delivery errors
    by_topic: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        topics = ", ".join(f"{t} ({n})" for t, n in sorted(self.by_topic.items())) or "none"
        text = (
            f"{verb} {self.replayed} of {self.matched} dead letters with reason {self.reason!r} "
            f"({self.scanned} read): {self.cut} cut (not replayed), {self.no_origin} without an ingest "
            f"topic of origin; to: {topics}"
        )
        return text + (f"; {len(self.failed)} not delivered: {self.failed[0]}" if self.failed else "")


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else None
    return None


def replay_headers(headers: Headers, marker: str) -> Headers:
    """The original headers (every `__refinery.errors.*` one removed) plus the replay header."""
    kept: Headers = [(k, v) for k, v in headers if not k.startswith(ERROR_HEADER_PREFIX)]
    return [*kept, (REPLAY_HEADER, marker.encode())]


def _start_offsets(consumer: Consumer, topic: str, since_ms: int, timeout_s: float) -> list[TopicPartition]:
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return []  # no dead-letter topic: nothing was ever dead-lettered
        asked = [TopicPartition(topic, p, since_ms) for p in sorted(meta.partitions)]
        return list(consumer.offsets_for_times(asked, timeout=timeout_s))
    except KafkaException as exc:
        raise ReplayError(f"could not read dead-letter topic {topic!r}: {error_text(exc)}") from None


def _read(consumer: Consumer, starts: list[TopicPartition], timeout_s: float) -> list[Message]:
    """Every record from the start offsets up to each partition's end as of now."""
    ends: dict[int, int] = {}
    assignment = []
    for tp in starts:
        low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s)
        start = high if tp.offset < 0 else max(tp.offset, low)
        if start < high:
            ends[tp.partition] = high
            assignment.append(TopicPartition(tp.topic, tp.partition, start))
    consumer.assign(assignment)
    out: list[Message] = []
    idle = 0.0
    while ends:
        batch = consumer.consume(500, 0.5)
        idle = 0.0 if batch else idle + 0.5
        if idle > timeout_s:
            raise ReplayError(f"dead-letter topic stopped answering after {len(out)} records")
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ReplayError(f"could not read dead-letter topic: {err.str()}")
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if partition in ends and offset < ends[partition]:
                out.append(msg)
                if offset + 1 >= ends[partition]:
                    del ends[partition]
    return out


def replay_dead_letters(
    client_config: Mapping[str, Any],
    dlq_topic: str,
    *,
    reason: str,
    since_ms: int,
    dry_run: bool = False,
    timeout_s: float = 15.0,
) -> ReplayReport:
    """Replay the dead letters of `reason` dead-lettered at or after `since_ms`; see the module docstring."""
    report = ReplayReport(reason, dry_run)
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"refinery-dlq-replay-{uuid.uuid4().hex}",  # never committed
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
        }
    )
    try:
        messages = _read(consumer, _start_offsets(consumer, dlq_topic, since_ms, timeout_s), timeout_s)
    except KafkaException as exc:
        raise ReplayError(f"could not read dead-letter topic {dlq_topic!r}: {error_text(exc)}") from None
    finally:
        consumer.close()
    producer = None if dry_run else Producer(
        {**client_config, "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"}
    )  # fmt: skip

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            report.failed.append(err.str())

    for msg in messages:
        if msg.timestamp()[1] < since_ms:  # offsetsForTimes finds the first newer record, not the last older
            continue
        report.scanned += 1
        raw = msg.headers() or []
        headers: Headers = list(raw.items() if isinstance(raw, dict) else raw)
        if _header(headers, REASON) != reason:
            continue
        report.matched += 1
        if _header(headers, VALUE_TRUNCATED) == "true" or _header(headers, HEADERS_DROPPED) is not None:
            report.cut += 1
            continue
        origin = _header(headers, TOPIC)
        if origin is None or not is_ingest_topic(origin):
            report.no_origin += 1
            continue
        report.replayed += 1
        report.by_topic[origin] += 1
        if producer is not None:
            marker = f"reason={reason} dlq={msg.topic()}/{msg.partition()}/{msg.offset()}"
            producer.produce(
                origin,
                msg.value(),
                msg.key(),
                headers=replay_headers(headers, marker),
                on_delivery=on_delivery,
            )
            producer.poll(0)
    if producer is not None:
        remaining = producer.flush(timeout_s)
        if remaining:
            report.failed.append(f"{remaining} records not confirmed within {timeout_s:.0f}s")
    return report

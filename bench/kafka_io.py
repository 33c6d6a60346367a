"""Raw confluent-kafka building blocks: the fast producer loop, the pre-fill, and the settings of the
tuned consume->produce pass-through that is the routing baseline (`bench.passthrough_main`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Producer, TopicPartition

from bench.context import BenchContext
from bench.workload import cycle, generate, prepare_records, sdk_producer, workload_ingest_topics
from producers.producer import OutgoingRecord

# The raw pass-through, as tuned on the 2-core dev machine with the broker on the same host (alternating
# variants, `python -m bench.tune_passthrough`, results in bench/results/passthrough_tuning.json). End to
# end, librdkafka's defaults with consume(1000, 1 s) and one poll() per batch won: a deep prefetch queue
# with no back-off made consume-only faster in isolation (73k -> 170k msg/s) but cost the producer and
# the broker CPU that the box does not have (18k vs 43k msg/s end to end); lz4, acks=1, a longer linger
# and other batch sizes did not beat it. Headers cost most of the Python time per record (~5 of ~8 us;
# `produce_batch` would save calls but cannot carry headers).
DEEP_PREFETCH: dict[str, Any] = {
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 4_194_304,
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 0,
}
BIG_BATCHES: dict[str, Any] = {
    "linger.ms": 100,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}
_SAFE = {"enable.idempotence": True, "acks": "all"}


@dataclass(frozen=True)
class PassThroughProfile:
    """Settings of the raw pass-through: `consume(batch, timeout_s)` per loop, then produce each record."""

    batch: int
    timeout_s: float
    consumer: dict[str, Any]
    producer: dict[str, Any]

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


PROFILES = {
    # Throughput: librdkafka defaults (idempotent producer), 1,000-record batches.
    "throughput": PassThroughProfile(1_000, 1.0, {}, dict(_SAFE)),
    # Latency: consume() returns after at most 5 ms and batches linger 5 ms (a consume() call waits for
    # its full timeout unless the batch fills, so the timeout is a latency floor).
    "latency": PassThroughProfile(1_000, 0.005, {"fetch.wait.max.ms": 5}, {**_SAFE, "linger.ms": 5}),
}


def produce_all(producer: Producer, records: Iterable[OutgoingRecord], *, poll_every: int = 1000) -> int:
    """Send records as fast as the client takes them (waiting on a full queue); return the count."""
    produce = producer.produce
    count = 0
    for record in records:
        while True:
            try:
                produce(record.topic, record.value, record.key, headers=record.headers)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % poll_every == 0:
            producer.poll(0)
    return count


def flush(producer: Producer, timeout: float = 120.0) -> None:
    left = producer.flush(timeout)
    if left:
        raise RuntimeError(f"{left} records were not acknowledged within {timeout:.0f}s")


@dataclass
class IngestRange:
    """Records pre-filled once so every consumer under test reads exactly the same ones."""

    topics: list[str]
    start: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]
    count: int
    params: dict[str, Any] = field(default_factory=dict)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.start.items() if self.end[(t, p)] > o]


def prefill(
    ctx: BenchContext, count: int, *, size: int | str = 1024, partitions: int = 12, pool: int = 20_000
) -> IngestRange:
    """Write `count` workload records to the four workload ingest topics (a pool of distinct records
    made by the SDK, cycled)."""
    topics = workload_ingest_topics()
    ctx.create_topics(topics, partitions)
    start = ctx.end_offsets(topics)
    sdk = sdk_producer(ctx.bootstrap)
    try:
        records = prepare_records(sdk, generate(min(pool, count), size))
    finally:
        sdk.close()
    producer = Producer({**ctx.client_config, **_SAFE, **BIG_BATCHES})
    began = time.monotonic()
    produce_all(producer, cycle(records, count))
    flush(producer)
    end = ctx.end_offsets(topics)
    written = sum(end[k] - start.get(k, 0) for k in end)
    ctx.log(f"pre-filled {written:,} records into {len(topics)} topics in {time.monotonic() - began:.1f}s")
    return IngestRange(topics=topics, start={k: start.get(k, 0) for k in end}, end=end, count=written)

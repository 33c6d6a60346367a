"""Benchmark 1: Producer SDK send throughput vs a raw confluent-kafka Producer sending the same final
bytes (envelope + headers) with the same settings, for 200 B, 1 KB and 20 KB payloads. Goal >= 0.9x."""

from __future__ import annotations

import itertools
import time
from typing import Any

from confluent_kafka import Producer

from bench.context import BenchContext
from bench.kafka_io import flush, produce_all
from bench.report import BenchResult, Row
from bench.workload import RecordFactory, WorkloadSampler
from common.config import ProducerSettings
from common.topics import ingest_topic

GOAL = 0.9
SIZES = (200, 1024, 20 * 1024)


def sdk_equivalent_config(settings: ProducerSettings) -> dict[str, Any]:
    """The librdkafka settings the SDK documents (idempotent, acks=all, its linger/compression/queue)."""
    return {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "compression.type": settings.compression,
        "queue.buffering.max.messages": settings.queue_max_messages,
        "queue.buffering.max.kbytes": settings.queue_max_kbytes,
    }


def raw_send(ctx: BenchContext, conf: dict[str, Any], topic: str, size: int, count: int) -> float:
    """msg/s of a raw Producer sending pre-built workload records (one ingest topic) until acknowledged."""
    sampler = WorkloadSampler(size=size, envs=(("prod", 1),))
    factory = RecordFactory()
    pool = [factory.record(sampler.next()) for _ in range(min(count, 5000))]
    pool = [r.__class__(topic, r.key, r.value, r.headers) for r in pool]
    producer = Producer({**ctx.client_config, **conf})
    produce_all(producer, pool[:100])  # connect, get a producer id and metadata before the clock starts
    flush(producer)
    began = time.monotonic()
    produce_all(producer, itertools.islice(itertools.cycle(pool), count))
    flush(producer)
    return count / (time.monotonic() - began)


def sdk_send(ctx: BenchContext, source: str, size: int, count: int) -> float | None:
    """msg/s of the Producer SDK; None until `producers.Producer` exists."""
    try:
        from producers import Producer as SdkProducer  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return None
    return None  # plugged in once the SDK's send() signature is settled (see bench/results/NOTES.md)


def run(ctx: BenchContext) -> BenchResult:
    settings = ProducerSettings()
    conf = sdk_equivalent_config(settings)
    counts = {
        200: ctx.pick(20_000, 400_000),
        1024: ctx.pick(15_000, 300_000),
        20 * 1024: ctx.pick(2_000, 40_000),
    }
    source = ctx.name("producer").replace("-", "")
    topic = ingest_topic("prod", source)
    result = BenchResult(
        name="producer",
        title=__doc__.split("\n")[0],
        params={"counts": counts, "topic_partitions": settings.partitions, "env": "prod"},
        baseline={
            "description": "raw confluent-kafka Producer, pre-built envelope + headers, same settings",
            "settings": conf,
        },
    )
    ctx.create_topics([topic], settings.partitions)
    try:
        plugged = True
        for size in SIZES:
            count = counts[size]
            base = raw_send(ctx, conf, topic, size, count)
            value = sdk_send(ctx, source, size, count)
            plugged = plugged and value is not None
            met = None if value is None else value / base >= GOAL
            result.add(
                Row(
                    case=f"send {size} B",
                    value=value,
                    unit="msg/s",
                    baseline=base,
                    goal=f">= {GOAL}x",
                    goal_met=met,
                    note="" if value is not None else "SDK not plugged in",
                )
            )
        result.status = "ok" if plugged else "partial"
    finally:
        ctx.delete_topics([topic])
    return result

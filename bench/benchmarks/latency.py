"""Benchmark 3: end-to-end latency, SDK send -> record readable in a derived topic, at a fixed rate
(10k msg/s), p50/p99/p99.9, vs a raw Producer -> raw pass-through -> sink topic at the same rate.
Goal: p99 < 50 ms.

Records are prepared by the SDK before the clock starts (unique message ids); the timed part is the
SDK's `submit` (queueing with its linger and delivery settings), the broker, the worker and the reader."""

from __future__ import annotations

import time
from collections.abc import Callable

import confluent_kafka

from bench import contenders
from bench.context import BenchContext
from bench.feed import ArrivalReader, paced
from bench.kafka_io import IngestRange
from bench.procs import Child
from bench.report import BenchResult, Row
from bench.stats import percentiles
from bench.workload import cycle, generate, sdk_producer, workload_ingest_topics
from common.config import KafkaSettings, ProducerSettings
from common.headers import headers_dict
from producers.kafka_config import producer_config
from producers.producer import OutgoingRecord, Producer
from refinery.router import compile_router
from refinery.rules import load_route_file

GOAL_P99_MS = 50.0
WARMUP_TIMEOUT_S = 90.0


def prepare_unique(sdk: Producer, count: int) -> list[OutgoingRecord]:
    """`count` records with distinct message ids (the workload's messages cycled through `prepare`)."""
    messages = generate(min(count, 20_000), 1024, seed=3)
    return [
        sdk.prepare(
            m.title,
            m.category,
            m.version,
            m.payload,
            key=m.key,
            attributes=m.attributes,
            env=m.env,
            source=m.source,
        )
        for m in cycle(messages, count)
    ]


def derived_topics(records: list[OutgoingRecord]) -> list[str]:
    router = compile_router(load_route_file(contenders.WORKLOAD_ROUTES))
    return sorted({d.topic for r in records for d in router.route(headers_dict(r.headers))})


def measure(
    ctx: BenchContext,
    start: Callable[[IngestRange], tuple[Child, str]],
    topics: list[str],
    send: Callable[[OutgoingRecord], object],
    poll: Callable[[], object],
    warmup: list[OutgoingRecord],
    records: list[OutgoingRecord],
    rate: float,
) -> tuple[dict[str, float], float, int]:
    """(latency percentiles in ms, achieved send rate, readable records) for one contender."""
    ingest_topics = workload_ingest_topics()
    ends = ctx.end_offsets(ingest_topics)
    child, group = start(IngestRange(ingest_topics, ends, ends, 0))
    sent_at: dict[str, float] = {}
    reader = ArrivalReader(ctx, topics, sent_at).start()

    def stamp(record: OutgoingRecord, now: float) -> None:
        sent_at[record.message_id] = now

    try:
        deadline = time.monotonic() + WARMUP_TIMEOUT_S
        for record in cycle(warmup, 10**9):
            if reader.latencies_ms or time.monotonic() > deadline or not child.alive():
                break
            stamp(record, time.time())
            send(record)
            poll()
            time.sleep(0.02)
        if not reader.latencies_ms:
            raise RuntimeError(f"{child.name}: nothing arrived during warm-up\n{child.log_tail()}")
        time.sleep(1.0)
        reader.latencies_ms.clear()
        achieved = paced(records, send, rate, on_send=stamp, poll=poll)
        reader.wait_quiet(len(records), timeout=60)
    finally:
        reader.stop()
        child.stop()
        ctx.delete_topics(contenders.worker_topics(group))
    return percentiles(reader.latencies_ms), achieved, len(reader.latencies_ms)


def run(ctx: BenchContext) -> BenchResult:
    rate = 10_000
    seconds = ctx.pick(3, 30)
    sdk = sdk_producer(ctx.bootstrap)
    settings = ProducerSettings(env="prod", source="telemetry", producer_id="bench")
    raw = confluent_kafka.Producer(producer_config(KafkaSettings(bootstrap_servers=ctx.bootstrap), settings))
    sink = ctx.name("latency-sink")
    try:
        records = prepare_unique(sdk, rate * seconds)
        warmup = prepare_unique(sdk, 500)
        topics = derived_topics(records)
        ctx.create_topics([*topics, sink], 12)

        def raw_send(r: OutgoingRecord) -> None:
            raw.produce(r.topic, r.value, r.key, headers=r.headers)

        base, base_rate, base_seen = measure(
            ctx,
            lambda ingest: contenders.start_passthrough(ctx, "latency-passthrough", ingest, sink),
            [sink],
            raw_send,
            lambda: raw.poll(0),
            warmup,
            records,
            rate,
        )
        value, value_rate, seen = measure(
            ctx,
            lambda ingest: contenders.start_worker(ctx, "latency-refinery", ingest),
            topics,
            sdk.submit,
            lambda: None,
            warmup,
            records,
            rate,
        )
    finally:
        sdk.close()
        raw.flush(10)
        ctx.delete_topics([sink])
    result = BenchResult(
        name="latency",
        title=__doc__.split("\n")[0],
        params={"rate": rate, "seconds": seconds, "records": rate * seconds, "derived_topics": len(topics)},
        baseline={
            "description": "raw Producer (SDK settings) -> raw pass-through process -> one sink topic",
            "latency_ms": base,
            "achieved_rate": round(base_rate),
            "records_seen": base_seen,
        },
        extra={"refinery": {"latency_ms": value, "achieved_rate": round(value_rate), "records_seen": seen}},
    )
    for point in ("p50", "p99", "p99.9"):
        goal = point == "p99"
        result.add(
            Row(
                case=f"latency {point}",
                value=value.get(point),
                unit="ms",
                baseline=base.get(point),
                higher_is_better=False,
                goal=f"< {GOAL_P99_MS:g} ms" if goal else "",
                goal_met=(value.get(point, 1e9) < GOAL_P99_MS) if goal else None,
            )
        )
    result.add(Row(case="achieved send rate", value=value_rate, unit="msg/s", baseline=base_rate))
    return result

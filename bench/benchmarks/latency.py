"""Benchmark 3: end-to-end latency, SDK send -> record readable in a derived topic, at a fixed rate
(10k msg/s), p50/p99/p99.9, vs a raw Producer -> raw pass-through -> sink topic at the same rate.
Goal: p99 < 50 ms.

Records are prepared by the SDK before the clock starts (unique message ids); the timed part is the
SDK's `submit` (queueing with its linger and delivery settings), the broker, the worker and the reader."""

from __future__ import annotations

import time
from collections.abc import Callable

import confluent_kafka

from bench import contenders, profiling
from bench.context import BenchContext
from bench.feed import ArrivalReader, paced
from bench.kafka_io import PROFILES, IngestRange
from bench.procs import Child
from bench.report import BenchResult, Row
from bench.stats import percentiles
from bench.workload import cycle, generate, prepare_records, sdk_producer, workload_ingest_topics
from common.config import KafkaSettings, ProducerSettings
from common.headers import headers_dict
from producers.kafka_config import producer_config
from producers.producer import OutgoingRecord, Producer
from refinery.router import compile_router
from refinery.rules import load_route_file

GOAL_P99_MS = 50.0
WARMUP_TIMEOUT_S = 90.0
# Worker settings for a latency-sensitive deployment: consume() waits its whole timeout unless the batch
# fills, so the default 200 ms batch timeout is a latency floor at 10k msg/s.
LATENCY_TUNED = {"batch_timeout_s": 0.005, "linger_ms": 5}


def prepare_unique(sdk: Producer, count: int) -> list[OutgoingRecord]:
    """`count` records with distinct message ids (the workload's messages cycled through `prepare`)."""
    messages = generate(min(count, 20_000), 1024, seed=3)
    return prepare_records(sdk, list(cycle(messages, count)))


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
    reader = ArrivalReader(ctx, topics)
    child, group = start(IngestRange(ingest_topics, ends, ends, 0))
    sent_at: dict[str, float] = {}

    def stamp(record: OutgoingRecord, now: float) -> None:
        sent_at[record.message_id] = now

    try:
        before = reader.output_total()
        deadline = time.monotonic() + WARMUP_TIMEOUT_S
        for i, record in enumerate(cycle(warmup, 10**9)):
            send(record)
            poll()
            time.sleep(0.02)
            if i % 10 == 9 and (reader.output_total() > before or time.monotonic() > deadline):
                break
            if not child.alive():
                break
        if reader.output_total() <= before:
            raise RuntimeError(f"{child.name}: nothing arrived during warm-up\n{child.log_tail()}")
        time.sleep(1.0)
        name = f"latency-{child.name}"
        spied = profiling.spy(child.pid, len(records) / rate, ctx.profile_path(name)) if ctx.profile else None
        achieved = paced(records, send, rate, on_send=stamp, poll=poll)
        profiling.finish(spied, ctx.profile_path(name))
        reader.wait_quiet(timeout=ctx.pick(60, 300))
    finally:
        reader.stop()
        child.stop()
        ctx.delete_topics(contenders.worker_topics(group))
    latencies = reader.latencies_ms(sent_at)
    return percentiles(latencies), achieved, len(latencies)


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
            lambda ingest: contenders.start_passthrough(ctx, "latency-passthrough", ingest, sink, "latency"),
            [sink],
            raw_send,
            lambda: raw.poll(0),
            warmup,
            records,
            rate,
        )
        workers = {}
        for label, worker_settings in (("tuned", LATENCY_TUNED), ("defaults", {})):
            workers[label] = measure(
                ctx,
                lambda ingest, s=worker_settings, n=label: contenders.start_worker(  # type: ignore[misc]
                    ctx, f"refinery-{n}", ingest, settings=s
                ),
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
        params={
            "rate": rate,
            "seconds": seconds,
            "records": rate * seconds,
            "derived_topics": len(topics),
            "worker_settings_tuned": LATENCY_TUNED,
        },
        baseline={
            "description": "raw Producer (SDK settings) -> raw pass-through process (latency profile) "
            "-> one sink topic",
            "settings": PROFILES["latency"].to_doc(),
            "latency_ms": base,
            "achieved_rate": round(base_rate),
            "records_seen": base_seen,
        },
    )
    for label, (value, value_rate, seen) in workers.items():
        result.extra[f"refinery_{label}"] = {
            "latency_ms": value,
            "achieved_rate": round(value_rate),
            "records_seen": seen,
        }
        for point in ("p50", "p99", "p99.9"):
            goal = point == "p99" and label == "tuned"
            result.add(
                Row(
                    case=f"latency {point} (worker {label})",
                    value=value.get(point),
                    unit="ms",
                    baseline=base.get(point),
                    higher_is_better=False,
                    goal=f"< {GOAL_P99_MS:g} ms" if goal else "",
                    goal_met=(value.get(point, 1e9) < GOAL_P99_MS) if goal else None,
                )
            )
        result.add(
            Row(
                case=f"achieved send rate (worker {label})",
                value=value_rate,
                unit="msg/s",
                baseline=base_rate,
            )
        )
    return result

"""Benchmark 3: end-to-end latency, SDK send -> record readable in a derived topic, at a fixed rate
(10k msg/s), p50/p99/p99.9, vs a raw Producer -> raw pass-through -> sink topic at the same rate.
Goal: p99 < 50 ms.

Records are prepared by the SDK before the clock starts (unique message ids); the timed part is the
SDK's `submit` (queueing with its linger and delivery settings), the broker, the worker and the reader."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import confluent_kafka

from bench import contenders, procs, profiling
from bench.context import BenchContext
from bench.feed import ArrivalReader, paced
from bench.kafka_io import PROFILES, IngestRange
from bench.procs import Child
from bench.report import BenchResult, Row
from bench.stats import percentiles, windowed_p99
from bench.workload import cycle, generate, prepare_records, sdk_producer, workload_ingest_topics
from common.config import KafkaSettings, ProducerSettings
from producers.kafka_config import producer_config
from producers.producer import OutgoingRecord, Producer

GOAL_P99_MS = 50.0
WARMUP_TIMEOUT_S = 90.0
WARMUP_AT_RATE_S = 3.0
# Worker settings for a latency-sensitive deployment: consume() waits its whole timeout unless the batch
# fills, so the default 200 ms batch timeout is a latency floor at 10k msg/s.
LATENCY_TUNED = {"batch_timeout_s": 0.005, "linger_ms": 5}


def prepare_unique(sdk: Producer, count: int) -> list[OutgoingRecord]:
    """`count` records with distinct message ids (the workload's messages cycled through `prepare`)."""
    messages = generate(min(count, 20_000), 1024, seed=3)
    return prepare_records(sdk, list(cycle(messages, count)))


def derived_topics(records: list[OutgoingRecord]) -> list[str]:
    return sorted({d.topic for dests in contenders.workload_destinations(records) for d in dests})


def measure(
    ctx: BenchContext,
    start: Callable[[IngestRange], tuple[Child, str]],
    topics: list[str],
    send: Callable[[OutgoingRecord], object],
    poll: Callable[[], object],
    warmup: list[OutgoingRecord],
    records: list[OutgoingRecord],
    rate: float,
) -> tuple[dict[str, float], float, int, list[float], dict[str, float]]:
    """(latency percentiles in ms, achieved send rate, readable records, p99 per second, CPU use while
    sending) for one contender."""
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
        # a few seconds at the full rate first: a fresh broker's JIT and first-use paths (new topics and
        # partitions, client metadata) otherwise show up as seconds of latency in the first measured ones
        paced(list(cycle(warmup, int(rate * WARMUP_AT_RATE_S))), send, rate, poll=poll)
        time.sleep(1.0)
        name = f"latency-{child.name}"
        spied = profiling.spy(child.pid, len(records) / rate, ctx.profile_path(name)) if ctx.profile else None
        machine, process = procs.MachineCpu(), procs.cpu_seconds(child.pid)
        began = time.monotonic()
        achieved = paced(records, send, rate, on_send=stamp, poll=poll)
        process_pct = (procs.cpu_seconds(child.pid) - process) / (time.monotonic() - began) * 100
        cpu = {"machine_busy_pct": round(machine.busy_pct(), 1), "contender_cpu_pct": round(process_pct, 1)}
        ctx.log(f"latency: {child.name} CPU while sending: {cpu}")
        profiling.finish(spied, ctx.profile_path(name))
        reader.wait_quiet(timeout=ctx.pick(60, 300))
    finally:
        reader.stop()
        child.stop()
        ctx.delete_topics(contenders.worker_topics(group))
    timed = reader.timed_latencies_ms(sent_at)
    timeline = windowed_p99(timed)
    ctx.log(f"latency: {child.name} p99 per second: {', '.join(f'{v:.0f}' for v in timeline)} ms")
    return percentiles([latency for _, latency in timed]), achieved, len(timed), timeline, cpu


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
        # Hundreds of thousands of prepared records (header tuples and all) would make every full GC pass
        # of this process pause the paced sender for ~0.1 s, and its catch-up bursts show up as latency.
        gc.collect()
        gc.freeze()

        def raw_send(r: OutgoingRecord) -> None:
            raw.produce(r.topic, r.value, r.key, headers=r.headers)

        base, base_rate, base_seen, base_timeline, base_cpu = measure(
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
            "p99_per_second_ms": base_timeline,
            "cpu_while_sending": base_cpu,
        },
    )
    for label, (value, value_rate, seen, timeline, cpu) in workers.items():
        result.extra[f"refinery_{label}"] = {
            "latency_ms": value,
            "achieved_rate": round(value_rate),
            "records_seen": seen,
            "p99_per_second_ms": timeline,
            "cpu_while_sending": cpu,
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

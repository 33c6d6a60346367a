"""Benchmark 2: Refinery routing throughput (workload route set, 1 KB) vs a tuned raw confluent-kafka
consume->produce pass-through of the same pre-filled records. Goal >= 0.8x and >= 100k msg/s.
Also: a Faust agent doing a bare pass-through, and Refinery with exactly-once on."""

from __future__ import annotations

import json

from bench import procs
from bench.context import BenchContext
from bench.kafka_io import (
    PASSTHROUGH_BATCH,
    PASSTHROUGH_CONSUMER,
    PASSTHROUGH_PRODUCER,
    IngestRange,
    passthrough,
    prefill,
)
from bench.procs import SinkProgress
from bench.report import BenchResult, Row

GOAL_RATIO = 0.8
GOAL_RATE = 100_000


def run(ctx: BenchContext) -> BenchResult:
    count = ctx.pick(40_000, 1_000_000)
    result = BenchResult(
        name="routing",
        title=__doc__.split("\n")[0],
        params={"records": count, "payload_bytes": 1024, "ingest_partitions": 12},
    )
    sink = ctx.name("passthrough")
    ctx.create_topics([sink], 12)
    try:
        ingest = prefill(ctx, count, size=1024)
        result.params["records"] = ingest.count
        base = passthrough(ctx, ingest, sink)
        result.baseline = {
            "description": "raw confluent-kafka consume(batch)->produce pass-through, no decisions",
            "msgs_per_s": round(base.rate),
            "seconds": round(base.seconds, 3),
            "batch": PASSTHROUGH_BATCH,
            "consumer": PASSTHROUGH_CONSUMER,
            "producer": PASSTHROUGH_PRODUCER,
        }
        ctx.log(f"routing: raw pass-through {base.rate:,.0f} msg/s over {base.records:,} records")
        result.add(
            Row(
                case="raw pass-through (baseline)",
                value=base.rate,
                unit="msg/s",
                baseline=base.rate,
                note="tuned settings in latest.json",
            )
        )
        plugged = add_products(ctx, ingest, base.rate, result)
        result.status = "ok" if plugged else "partial"
    finally:
        ctx.delete_topics([sink])
    return result


def add_products(ctx: BenchContext, ingest: IngestRange, base: float, result: BenchResult) -> bool:
    """Refinery (at-least-once, exactly-once) and Faust over the same records; False if any is missing."""
    for case in ("refinery", "refinery exactly-once"):
        result.add(Row(case=case, value=None, unit="msg/s", baseline=base, note="not plugged in"))
    faust_records = min(ingest.count, ctx.pick(6_000, 60_000))
    faust = faust_passthrough(ctx, ingest, faust_records)
    result.params["faust_records"] = faust_records
    result.add(Row(case="faust agent pass-through", value=faust.rate, unit="msg/s", baseline=base))
    return False


def faust_passthrough(ctx: BenchContext, ingest: IngestRange, records: int) -> SinkProgress:
    """A bare Faust agent (aiokafka transport) copying the pre-filled records to a sink topic."""
    app_id = ctx.name("faust")
    sink = ctx.name("faust-sink")
    ctx.create_topics([sink], 12)
    ctx.commit_offsets(app_id, ingest.start)
    env = {
        "REFINERY_KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap,
        "REFINERY_BENCH_FAUST_APP_ID": app_id,
        "REFINERY_BENCH_FAUST_SOURCES": json.dumps(ingest.topics),
        "REFINERY_BENCH_FAUST_SINK": sink,
    }
    child = procs.start("faust", ["-m", "bench.faust_passthrough", "worker", "-l", "warn"], env)
    try:
        progress = procs.watch_output(ctx, [sink], records, timeout=ctx.pick(90, 300), child=child)
        ctx.log(f"routing: faust pass-through {progress.rate:,.0f} msg/s")
        return progress
    finally:
        child.stop()
        ctx.delete_topics([sink])

"""Benchmark 2: Refinery routing throughput (workload route set, 1 KB) vs a tuned raw confluent-kafka
consume->produce pass-through of the same pre-filled records. Goal >= 0.8x and >= 100k msg/s.
Also: a Faust agent doing a bare pass-through, and Refinery with exactly-once on."""

from __future__ import annotations

from bench.context import BenchContext
from bench.kafka_io import (
    PASSTHROUGH_BATCH,
    PASSTHROUGH_CONSUMER,
    PASSTHROUGH_PRODUCER,
    IngestRange,
    passthrough,
    prefill,
)
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
    for case in ("refinery", "refinery exactly-once", "faust agent pass-through"):
        result.add(Row(case=case, value=None, unit="msg/s", baseline=base, note="not plugged in"))
    return False

"""The routing and latency benchmarks' hand-written router (`bench.handwritten_router_main`), against the
real broker: in both of its loops it writes every record to exactly the worker's destinations for the
workload's 8 routes and commits what it consumed (the throughput loop every 5 batches and on its way
out, the latency loop after every batch)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from bench import contenders
from bench.benchmarks.latency import wait_caught_up
from bench.context import BenchContext
from bench.kafka_io import IngestRange
from bench.workload import generate, prepare_records, sdk_producer, workload_ingest_topics

RECORDS = 400


def _grown(ctx: BenchContext, before: dict[tuple[str, int], int], topics: list[str]) -> Counter[str]:
    grown: Counter[str] = Counter()
    for (topic, partition), end in ctx.end_offsets(topics).items():
        grown[topic] += end - before.get((topic, partition), 0)
    return grown


@pytest.mark.parametrize("loop", ["throughput", "latency"])
def test_it_writes_the_workload_routes_outputs_and_commits_its_input(kafka_bootstrap: str, loop: str) -> None:
    ctx = BenchContext(bootstrap=kafka_bootstrap)
    sdk = sdk_producer(kafka_bootstrap)
    try:
        records = prepare_records(sdk, generate(RECORDS, 1024, seed=11))
        expected = Counter(d.topic for dests in contenders.workload_destinations(records) for d in dests)
        derived = sorted(expected)
        assert sum(expected.values()) > RECORDS  # the workload fans out (1.42 outputs per input)
        ingest_topics = workload_ingest_topics()
        ctx.create_topics(ingest_topics, 12)
        ctx.create_topics(derived, 1)
        start, derived_before = ctx.end_offsets(ingest_topics), ctx.end_offsets(derived)
        for record in records:
            sdk.submit(record)
        sdk.flush(30)
        end = ctx.end_offsets(ingest_topics)
        ingest = IngestRange(ingest_topics, start, end, RECORDS)
        child, group = contenders.start_handwritten_router(
            ctx, f"test-handwritten-{loop}", ingest, compression="lz4", loop=loop
        )
        try:
            deadline = time.monotonic() + 60
            while _grown(ctx, derived_before, derived) != expected and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)  # anything extra would land now
            assert _grown(ctx, derived_before, derived) == expected, child.log_tail()
            assert child.alive(), child.log_tail()
            if loop == "latency":  # commits after every batch, not only on the way out
                assert wait_caught_up(ctx, group, ingest_topics, timeout=30), child.log_tail()
        finally:
            child.stop()
        assert wait_caught_up(ctx, group, ingest_topics, timeout=30), child.log_tail()
    finally:
        sdk.close()
        ctx.close()


def test_an_unknown_loop_is_refused_with_the_ones_it_knows() -> None:
    args = ["127.0.0.1:1", "group", '["topic"]', "1", "none", "fast"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.handwritten_router_main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "LOOP must be one of throughput, latency, not 'fast'" in done.stderr

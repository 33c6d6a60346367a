"""Benchmark 6: memory of a worker process under load: peak RSS, and whether RSS stays flat over a
steady run (5 minutes in full mode), vs the raw pass-through process fed identically.

Feed per contender: a burst (backlog, processed at full speed: the peak) then a steady rate for the run.
Flat means the median RSS of the last quarter of the steady phase exceeds that of the second quarter by
less than 5% (and < 20 MB)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka

from bench import contenders, procs
from bench.context import BenchContext
from bench.feed import paced
from bench.kafka_io import IngestRange, flush, produce_all
from bench.procs import Child
from bench.report import BenchResult, Row
from bench.workload import cycle, generate, prepare_records, sdk_producer, workload_ingest_topics
from producers.producer import OutgoingRecord

MB = 1024 * 1024
FLAT_FRACTION = 0.05
FLAT_MB = 20.0


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, peak = procs.rss_bytes(self.pid)
            if rss:
                self.samples.append((time.monotonic() - self._began, rss))
                self.peak = max(self.peak, peak)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def mark(self) -> float:
        return time.monotonic() - self._began


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples) or 1e-9
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 60 / MB


def quarter_medians_mb(samples: list[tuple[float, int]]) -> list[float]:
    """Median RSS (MB) of each quarter of the samples."""
    if len(samples) < 4:
        return [samples[-1][1] / MB if samples else 0.0] * 4
    size = len(samples) // 4
    return [statistics.median(r for _, r in samples[i * size : (i + 1) * size]) / MB for i in range(4)]


def profile(
    ctx: BenchContext,
    start: Callable[[IngestRange], tuple[Child, str]],
    records: list[OutgoingRecord],
    burst: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    topics = workload_ingest_topics()
    ends = ctx.end_offsets(topics)
    ingest = IngestRange(topics, ends, ends, burst)
    child, group = start(ingest)
    producer = confluent_kafka.Producer({**ctx.client_config, "linger.ms": 20, "enable.idempotence": True})
    try:
        with RssSampler(child.pid) as sampler:
            produce_all(producer, cycle(records, burst))
            flush(producer)
            contenders.watch_committed(ctx, group, ingest, timeout=ctx.pick(120, 600), child=child)
            steady_from = sampler.mark()
            steady = list(cycle(records, int(rate * seconds)))
            paced(steady, lambda r: producer.produce(r.topic, r.value, r.key, headers=r.headers), rate,
                  poll=lambda: producer.poll(0))  # fmt: skip
            flush(producer)
            time.sleep(1.0)
        steady_samples = [s for s in sampler.samples if s[0] >= steady_from]
        quarters = quarter_medians_mb(steady_samples)
        growth = quarters[3] - quarters[1]  # medians: robust to the allocator's saw-tooth
        return {
            "peak_mb": sampler.peak / MB,
            "steady_quarter_medians_mb": [round(q, 1) for q in quarters],
            "second_half_growth_mb": growth,
            "steady_slope_mb_per_min": slope_mb_per_min(steady_samples),
            "flat": float(growth < min(quarters[3] * FLAT_FRACTION, FLAT_MB)),
            "samples": len(sampler.samples),
            "rss_mb_every_10s": [round(r / MB) for t, r in sampler.samples[:: max(1, int(10 / 0.5))]],
        }
    finally:
        child.stop()
        ctx.delete_topics(contenders.worker_topics(group))


def run(ctx: BenchContext) -> BenchResult:
    burst = ctx.pick(20_000, 300_000)
    rate = ctx.pick(5_000, 10_000)
    seconds = ctx.pick(8, 300)
    sdk = sdk_producer(ctx.bootstrap)
    try:
        records = prepare_records(sdk, generate(20_000, 1024, seed=9))
    finally:
        sdk.close()
    sink = ctx.name("memory-sink")
    ctx.create_topics([sink], 12)
    try:
        base = profile(
            ctx,
            lambda ingest: contenders.start_passthrough(ctx, "memory-passthrough", ingest, sink),
            records,
            burst,
            rate,
            seconds,
        )
        value = profile(
            ctx,
            lambda ingest: contenders.start_worker(ctx, "memory-refinery", ingest),
            records,
            burst,
            rate,
            seconds,
        )
    finally:
        ctx.delete_topics([sink])
    result = BenchResult(
        name="memory",
        title=__doc__.split("\n")[0],
        params={
            "burst_records": burst,
            "steady_rate": rate,
            "steady_seconds": seconds,
            "payload_bytes": 1024,
        },
        baseline={"description": "raw pass-through process, same feed", **_rounded(base)},
        extra={"refinery": _rounded(value)},
    )
    result.add(Row("peak RSS", value["peak_mb"], "MB", base["peak_mb"], higher_is_better=False))
    result.add(
        Row(
            "RSS growth, 2nd to 4th quarter of steady phase (medians)",
            value["second_half_growth_mb"],
            "MB",
            base["second_half_growth_mb"],
            higher_is_better=False,
            goal=f"flat (< {FLAT_FRACTION:.0%} and < {FLAT_MB:g} MB)",
            goal_met=bool(value["flat"]),
        )
    )
    return result


def _rounded(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in doc.items()}

"""Benchmark 7: dedup store rebuild after an at-least-once crash mid-batch (issue 20), vs reading the same
derived topics raw from the crash to their end (what settling used to read, at the least).

The derived topics of the reference workload (every route treated as a dedup route) are filled with its
records at the reference rate for `seconds` of record time (timestamps spaced as a live feed would stamp
them, written as fast as the broker takes them). A worker crashed `crash_at` seconds in, right after the
intent of a 2,000-record batch; the other workers' traffic went on after it. Cases:

- fully landed: every output of the batch was written before the crash (the common window: outputs
  acknowledged, ids not yet recorded), so the settle read stops once every id was found;
- half landed: the crash came mid-write, so the read covers the whole settle window;
- next restart: the same partitions restored again after the batch was settled (nothing to settle).

Every case is a fresh `DedupChangelog.restore` of the batch's 12 input partitions, each round on a fresh
changelog topic, alternating with the baseline; medians over the rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from bench import contenders
from bench.context import BenchContext
from bench.kafka_io import BIG_BATCHES, flush
from bench.report import BenchResult, Row
from bench.workload import cycle, generate, prepare_records, sdk_producer
from common.config import WorkerSettings
from producers.producer import OutgoingRecord
from refinery.dedup.records import Intent, PartitionKey, intent_record
from refinery.dedup.settle import SCAN_MARGIN_MS
from refinery.dedup.store import DedupChangelog, DedupStore, RestoreReport

RATE = 10_000  # ingest records per second: the latency benchmark's reference rate
BATCH = 2_000  # the worker's default batch size
INGEST = "prod.telemetry.ingest.all-v1"
PARTITIONS = 12


def routed(records: list[OutgoingRecord], prefix: str) -> list[tuple[OutgoingRecord, list[str]]]:
    """Each record with its derived topics under the workload's routes (run-unique names)."""
    dests = contenders.workload_destinations(records)
    return [(r, [f"{prefix}.{d.topic}" for d in ds]) for r, ds in zip(records, dests, strict=True)]


def fill(
    ctx: BenchContext,
    traffic: list[tuple[OutgoingRecord, list[str]]],
    batches: list[list[tuple[OutgoingRecord, list[str]]]],
    *,
    start_ms: int,
    seconds: float,
    crash_at: float,
) -> int:
    """Write `seconds` of traffic at RATE (record time), with `batches`' outputs at the crash; return the
    derived records written."""
    producer = Producer({**ctx.client_config, "enable.idempotence": True, "acks": "all", **BIG_BATCHES})
    crash_i = int(crash_at * RATE)
    written = 0

    def produce(record: OutgoingRecord, topics: list[str], ts: int) -> None:
        nonlocal written
        for topic in topics:
            while True:
                try:
                    producer.produce(topic, record.value, record.key, headers=record.headers, timestamp=ts)
                    break
                except BufferError:
                    producer.poll(0.05)
            written += 1

    for i, (record, topics) in enumerate(cycle(traffic, int(seconds * RATE))):
        if i == crash_i:
            for batch in batches:
                for item in batch:
                    produce(*item, start_ms + i * 1000 // RATE)
        produce(record, topics, start_ms + i * 1000 // RATE)
        if i % 1000 == 0:
            producer.poll(0)
    flush(producer, 300)
    return written


def batch_intent(batch: list[tuple[OutgoingRecord, list[str]]], at_ms: int) -> Intent:
    """The intent a worker writes for `batch`: inputs spread over the ingest partitions."""
    ids: dict[PartitionKey, list[bytes]] = {}
    for n, (record, _) in enumerate(batch):
        ids.setdefault((INGEST, n % PARTITIONS), []).append(record.message_id.encode())
    inputs = {tp: (0, len(v)) for tp, v in ids.items()}
    intent = Intent.for_batch(inputs, {t for _, topics in batch for t in topics}, ids)
    intent.timestamp_ms = at_ms
    return intent


def raw_read(ctx: BenchContext, topics: list[str], since_ms: int) -> tuple[float, int]:
    """(seconds, records) to read `topics` from `since_ms` to their current end with a plain consumer."""
    began = time.monotonic()
    consumer = Consumer(
        {
            **ctx.client_config,
            "group.id": ctx.name("dedup-raw"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_uncommitted",
        }
    )
    count = 0
    try:
        wanted = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            wanted += [TopicPartition(topic, p, since_ms) for p in meta.partitions]
        starts = [tp for tp in consumer.offsets_for_times(wanted, timeout=30) if tp.offset >= 0]
        left = {(tp.topic, tp.partition) for tp in starts}
        consumer.assign(starts)
        while left:
            for msg in consumer.consume(1000, 1.0):
                err = msg.error()
                if err is None:
                    count += 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard((msg.topic() or "", msg.partition() or 0))
    finally:
        consumer.close()
    return time.monotonic() - began, count


def restore_once(
    ctx: BenchContext, changelog: str, window_s: float, store: DedupStore | None = None
) -> RestoreReport:
    log = DedupChangelog(ctx.client_config, changelog, group_id=ctx.name("dedup"), settle_window_s=window_s)
    store = store or DedupStore(window_s=600, max_ids_per_partition=500_000)
    return log.restore(store, [(INGEST, p) for p in range(PARTITIONS)], timeout_s=120)


def announce(ctx: BenchContext, changelog: str, intent: Intent) -> None:
    ctx.create_topics([changelog], 1)
    record = intent_record(intent)
    producer = Producer(ctx.client_config)
    options: dict[str, Any] = {"headers": record.headers, "timestamp": intent.timestamp_ms}
    producer.produce(changelog, record.value, record.key, **options)
    flush(producer, 30)


def median_of(reports: list[RestoreReport], pick: Callable[[RestoreReport], float]) -> float:
    return statistics.median(pick(r) for r in reports)


def run(ctx: BenchContext) -> BenchResult:
    seconds = ctx.pick(10.0, 45.0)
    crash_at = ctx.pick(2.0, 5.0)
    window_s = ctx.pick(5.0, WorkerSettings().dedup_settle_window_s)
    rounds = ctx.pick(1, 3)
    prefix = ctx.name("dedup")
    sdk = sdk_producer(ctx.bootstrap)
    try:
        traffic = routed(prepare_records(sdk, generate(ctx.pick(5_000, 20_000), 1024, seed=7)), prefix)
        pool = [
            item
            for item in routed(prepare_records(sdk, generate(3 * BATCH, 1024, seed=8)), prefix)
            if item[1]
        ]
    finally:
        sdk.close()
    full_batch, half_batch = pool[:BATCH], pool[BATCH : 2 * BATCH]
    topics = sorted({t for _, ts in traffic + pool for t in ts})
    changelogs: list[str] = []
    start_ms = int((time.time() - seconds - 5) * 1000)
    crash_ms = start_ms + int(crash_at * 1000)
    try:
        ctx.create_topics(topics, PARTITIONS)
        began = time.monotonic()
        written = fill(
            ctx, traffic, [full_batch, half_batch[: BATCH // 2]], start_ms=start_ms, seconds=seconds,
            crash_at=crash_at,
        )  # fmt: skip
        took = time.monotonic() - began
        ctx.log(f"dedup_restore: {written:,} derived records in {len(topics)} topics in {took:.1f}s")
        full_intent, half_intent = batch_intent(full_batch, crash_ms), batch_intent(half_batch, crash_ms)
        raw: list[tuple[float, int]] = []
        reports: dict[str, list[RestoreReport]] = {"full": [], "half": [], "again": []}
        for n in range(rounds):
            raw.append(raw_read(ctx, full_intent.topics, crash_ms - SCAN_MARGIN_MS))
            for case, intent in (("full", full_intent), ("half", half_intent)):
                changelog = f"_{prefix}-{case}-{n}"
                changelogs.append(changelog)
                announce(ctx, changelog, intent)
                reports[case].append(restore_once(ctx, changelog, window_s))
            reports["again"].append(restore_once(ctx, changelogs[-2], window_s))
            ctx.log(f"dedup_restore: round {n + 1}: raw {raw[-1]}, " + ", ".join(
                f"{case} {r[-1].summary()}" for case, r in reports.items()
            ))  # fmt: skip
    finally:
        ctx.delete_topics(topics + changelogs)
    base_s = statistics.median(s for s, _ in raw)
    base_records = int(statistics.median(c for _, c in raw))
    result = BenchResult(
        name="dedup_restore",
        title=__doc__.split("\n")[0],
        params={
            "rate": RATE,
            "seconds": seconds,
            "crash_at_s": crash_at,
            "settle_window_s": window_s,
            "batch": BATCH,
            "payload_bytes": 1024,
            "derived_topics": len(topics),
            "derived_records_written": written,
            "input_partitions": PARTITIONS,
            "rounds": rounds,
        },
        baseline={
            "description": "plain consumer reading the batch's derived topics from the crash (less 1 s) to "
            "their end, no header work: a lower bound for the read settling did before issue 20",
            "seconds": round(base_s, 3),
            "records": base_records,
        },
    )
    labels = {
        "full": "restore, crashed batch fully landed (read stops once every id is found)",
        "half": f"restore, crashed batch half landed (reads the {window_s:g} s settle window)",
        "again": "restore at the next restart (batch already settled)",
    }
    for case, label in labels.items():
        rs = reports[case]
        result.extra[case] = [asdict(r) for r in rs]
        result.add(
            Row(case=label, value=median_of(rs, lambda r: r.seconds), unit="s", baseline=base_s,
                higher_is_better=False,
                note=f"{int(median_of(rs, lambda r: r.derived_records_read)):,} derived records read, "
                f"{int(median_of(rs, lambda r: r.ids_restored)):,} ids restored, "
                f"{int(median_of(rs, lambda r: r.batches_settled))} batch settled")
        )  # fmt: skip
    half_read = median_of(reports["half"], lambda r: r.derived_records_read)
    result.add(
        Row("derived records read, half landed", half_read, "records", base_records, higher_is_better=False)
    )
    expected = {"full": BATCH, "half": BATCH // 2}
    wrong = [
        c
        for c, n in expected.items()
        if any((r.ids_settled, r.batches_settled) != (n, 1) for r in reports[c])
    ]
    wrong += ["again"] * any(r.batches_settled or r.ids_restored != BATCH for r in reports["again"])
    if wrong:
        result.status = "error"
        result.error = f"not settled once with exactly the ids that landed: {sorted(set(wrong))}"
    return result

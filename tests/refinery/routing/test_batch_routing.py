"""Unit tests of the data plane's per-batch decisions (no broker: plain record objects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest

from common.headers import Headers
from refinery.dedup.store import DedupStore, changelog_key, parse_changelog_key
from refinery.routing.batch import route_batch
from refinery.routing.dlq import DlqReason, dlq_headers
from refinery.routing.guards import RecordGuard
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from refinery.worker.metrics import BatchCounts, WorkerMetrics
from tests.refinery.worker.worker_harness import record

ROUTES = load_route_set("""
envs: [prod, dev]
routes:
  - name: all-prod
    match: {env: prod}
    to: {template: "{env}.{source}.all.all-v1"}
  - name: once
    match: {category: once}
    to: {template: "{env}.{source}.{title}.once-v1"}
    dedup: true
  - name: by-team
    match: {category: team}
    to: {template: "{env}.{source}.{attribute.team}.team-v1"}
""")


@dataclass
class FakeRecord:
    topic_: str
    offset_: int
    value_: bytes | None
    headers_: Headers | None
    partition_: int = 0
    key_: bytes | None = b"k"

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Headers | None:
        return self.headers_

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def error(self) -> Any:
        return None


def _batch(
    *items: tuple[bytes | None, Headers | None], topic: str = "prod.src.ingest.all-v1"
) -> list[FakeRecord]:
    return [FakeRecord(topic, offset, value, headers) for offset, (value, headers) in enumerate(items)]


def _route(records: list[FakeRecord], store: DedupStore | None = None) -> Any:
    guard = RecordGuard(max_record_bytes=1000)
    store = store or DedupStore(window_s=60, max_ids_per_partition=100)
    return route_batch(records, compile_router(ROUTES), guard, store)


def test_fan_out_dedup_within_batch_and_offsets() -> None:
    once = record("prod", "src", "1234", "once")
    batch = _route(_batch(once, once, record("prod", "src", "1", "x")))
    assert [(o.topic, o.route) for o in batch.outputs] == [
        ("prod.src.all.all-v1", "all-prod"), ("prod.src.1234.once-v1", "once"),
        ("prod.src.all.all-v1", "all-prod"),  # the resent copy still reaches routes without dedup
        ("prod.src.all.all-v1", "all-prod"),
    ]  # fmt: skip
    assert batch.counts.deduplicated == {"once": 1}
    assert batch.first_offsets == {("prod.src.ingest.all-v1", 0): 0}
    assert batch.next_offsets == {("prod.src.ingest.all-v1", 0): 3}
    assert list(batch.dedup_ids[("prod.src.ingest.all-v1", 0)]) == [dict(once[1])["ce_id"]]


def test_ids_seen_in_an_earlier_batch_are_dropped() -> None:
    store = DedupStore(window_s=60, max_ids_per_partition=100)
    once = record("prod", "src", "1234", "once")
    store.add(("prod.src.ingest.all-v1", 0), [dict(once[1])["ce_id"]])
    batch = _route(_batch(once), store)
    assert [o.route for o in batch.outputs] == ["all-prod"] and batch.counts.deduplicated == {"once": 1}


def test_guards_and_template_failures_become_dead_letters() -> None:
    value, headers = record("prod", "src", "1", "x")
    dev = record("dev", "src", "1", "x")
    batch = _route(_batch(
        (b"x" * 2000, headers), (b"junk", None), (value, [*headers, ("ce_env", b"prod")]),
        (value, [(k, v) for k, v in headers if k != "ce_schemaid"]),
        (value, [(k, b"0" if k == "ce_version" else v) for k, v in headers]),
        dev, record("prod", "src", "1", "team"),
    ))  # fmt: skip
    assert [d.reason for d in batch.dead] == [
        DlqReason.VALUE_TOO_LARGE, DlqReason.MISSING_HEADER, DlqReason.DUPLICATE_HEADER,
        DlqReason.MISSING_HEADER, DlqReason.MALFORMED_HEADER, DlqReason.ENV_MISMATCH, DlqReason.ROUTE_ERROR,
    ]  # fmt: skip
    assert batch.dead[-1].route == "by-team"
    # the record whose by-team template failed still reached the route that resolved
    assert [o.route for o in batch.outputs] == ["all-prod"]


def test_dedup_store_is_bounded_and_changelog_keys_round_trip() -> None:
    store = DedupStore(window_s=60, max_ids_per_partition=3)
    store.add(("t", 1), [b"a", b"b", b"c", b"d"])
    assert not store.seen(("t", 1), b"a") and store.seen(("t", 1), b"d") and len(store) == 3
    store.add(("t", 2), [b"old"], at=0.0)  # older than the window
    assert not store.seen(("t", 2), b"old")
    store.retain([("t", 2)])
    assert len(store) == 0
    assert parse_changelog_key(changelog_key(("prod.a.ingest.all-v1", 7))) == ("prod.a.ingest.all-v1", 7)


def test_dlq_headers_keep_originals_first() -> None:
    out = dlq_headers([("a", b"1"), ("a", b"2")], reason=DlqReason.ROUTE_ERROR, message="m", topic="t",
                      partition=1, offset=2, timestamp_ms=3, worker="w", route="r")  # fmt: skip
    assert out[:2] == [("a", b"1"), ("a", b"2")]
    assert dict(out[2:])["__refinery.errors.reason"] == b"route_error"
    assert dict(out[2:])["__refinery.errors.route"] == b"r"


def test_metrics_are_applied_per_batch() -> None:
    metrics = WorkerMetrics()
    counts = BatchCounts()
    counts.records_in["t"] += 3
    counts.routed["r"] += 2
    counts.dlq["missing_header"] += 1
    counts.origin[(b"prod", b"1", b"x")] += 2
    metrics.apply(counts, 0.01, [0.001, 0.2, 100.0])
    text = generate_latest(metrics.registry).decode()
    assert 'refinery_records_routed_total{route="r"} 2.0' in text
    assert 'refinery_records_by_origin_total{category="x",env="prod",title="1"} 2.0' in text
    assert 'refinery_record_latency_seconds_bucket{le="0.005"} 1.0' in text
    assert 'refinery_record_latency_seconds_bucket{le="+Inf"} 3.0' in text
    metrics.route_rates.tick()
    assert metrics.route_rates.snapshot()["r"]["total"] == 2.0
    metrics.apply_librdkafka_stats(
        '{"topics": {"t": {"partitions": {"0": {"consumer_lag": 5, "fetch_state": "active"},'
        ' "-1": {"consumer_lag": -1}}}}}'
    )
    assert 'refinery_consumer_lag{partition="0",topic="t"} 5.0' in generate_latest(metrics.registry).decode()

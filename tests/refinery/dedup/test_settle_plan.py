"""Settling unfinished dedup batches, on plain data (no broker): what an intent lists, which input
partition a found id goes to, which batches a changelog leaves unfinished, and what settling writes."""

from __future__ import annotations

import time

from refinery.dedup.records import (
    DIGEST_BYTES,
    KIND_HEADER,
    PARTITIONS_HEADER,
    Intent,
    changelog_key,
    done_partitions,
    done_record,
    id_digest,
    intent_record,
)
from refinery.dedup.settle import OutputMatcher, Scan
from refinery.dedup.store import ChangelogReplay, DedupStore, RestoreReport, Settled

P0, P1, P2 = ("prod.s.ingest.all-v1", 0), ("prod.s.ingest.all-v1", 1), ("dev.s.ingest.all-v1", 0)


def intent_of(ids: dict[tuple[str, int], list[bytes]], ts: int = 1_000_000) -> Intent:
    intent = Intent.for_batch({tp: (0, len(v)) for tp, v in ids.items()}, ["prod.s.1.x-v1"], ids)
    intent.timestamp_ms = ts
    return intent


def test_an_intent_lists_a_short_digest_of_every_id_per_input_partition() -> None:
    before = int(time.time() * 1000)
    intent = Intent.for_batch(
        {P0: (10, 12), P1: (5, 6)}, ["b-v1", "a-v1", "a-v1"], {P0: {b"m1": None, b"m2": None}, P1: [b"m3"]}
    )
    assert intent.topics == ["a-v1", "b-v1"] and intent.inputs == {P0: (10, 12), P1: (5, 6)}
    assert intent.ids == {P0: [id_digest(b"m1"), id_digest(b"m2")], P1: [id_digest(b"m3")]}
    assert before <= intent.timestamp_ms <= int(time.time() * 1000)
    assert Intent.for_batch({}, [], {}).batch_id != intent.batch_id
    value = intent_record(intent).value
    assert Intent.decode(value, 42) == Intent(intent.batch_id, intent.inputs, intent.topics, 42, intent.ids)


def test_intents_stay_small_with_2000_long_ids() -> None:
    ids = [(b"%04d" % i) * 50 for i in range(2000)]  # 200 bytes each
    value = Intent.for_batch({P0: (0, 2000)}, ["prod.s.1.x-v1"], {P0: ids}).encode()
    assert len(value) < 2000 * DIGEST_BYTES * 4 / 3 + 200  # base64 of the digests, plus the envelope


def test_old_intents_without_ids_still_decode_and_construct_positionally() -> None:
    old = b'{"batch": "b1", "inputs": [["prod.s.ingest.all-v1", 0, 1, 2]], "topics": ["t-v1"]}'
    assert (
        Intent.decode(old, 7) == Intent("b1", {P0: (1, 2)}, ["t-v1"], 7) and Intent.decode(old, 7).ids == {}
    )
    assert b'"ids"' not in Intent("b1", {P0: (1, 2)}, ["t-v1"]).encode()


def test_found_ids_go_only_to_the_input_partition_that_listed_them() -> None:
    intent = intent_of({P0: [b"a1", b"a2"], P1: [b"b1"], P2: [b"c1"]})
    matcher = OutputMatcher(intent, [P0, P1, ("other", 0)])  # P2 is not being settled
    assert matcher.owners == [P0, P1] and matcher.expected == 3 and matcher.needs_reading
    for found in (b"a1", b"stranger", b"c1", b"b1", b"a1"):
        matcher.offer(found)
    assert matcher.found == {P0: {b"a1": None}, P1: {b"b1": None}} and not matcher.complete
    matcher.offer(b"a2")
    assert matcher.complete and matcher.ids_found == 3


def test_an_id_listed_by_two_partitions_goes_to_both() -> None:
    matcher = OutputMatcher(intent_of({P0: [b"x"], P1: [b"x", b"y"]}), [P0, P1])
    matcher.offer(b"x")
    assert matcher.found == {P0: {b"x": None}, P1: {b"x": None}} and matcher.expected == 2


def test_old_intents_give_every_id_found_to_every_settled_partition() -> None:
    matcher = OutputMatcher(Intent("b1", {P0: (0, 1), P1: (0, 1)}, ["t-v1"], 0), [P0, P1])
    matcher.offer(b"m")
    assert matcher.legacy and matcher.expected is None and not matcher.complete
    assert matcher.found == {P0: {b"m": None}, P1: {b"m": None}}


def test_nothing_to_read_for_partitions_the_batch_did_not_read() -> None:
    assert not OutputMatcher(intent_of({P0: [b"a"]}), [P1]).needs_reading


def replay_of(store: DedupStore, partitions: list[tuple[str, int]], records: list[tuple]) -> ChangelogReplay:
    replay = ChangelogReplay(store, partitions)
    for key, value, headers, ts in records:
        replay.apply(key, value, headers, ts)
    return replay


def test_replay_loads_ids_of_its_partitions_and_keeps_batches_without_done() -> None:
    now = int(time.time() * 1000)
    done, open_, elsewhere = (
        intent_of({P0: [b"a"]}, now),
        intent_of({P0: [b"b"], P1: [b"c"]}, now),
        intent_of({P2: [b"d"]}, now),
    )
    store = DedupStore(window_s=600, max_ids_per_partition=100)
    replay = replay_of(store, [P0, P1], [
        (*intent_record(done)[:3], now), (*intent_record(open_)[:3], now),
        (*intent_record(elsewhere)[:3], now),
        (changelog_key(P0), b"a\nz", None, now), (changelog_key(P2), b"d", None, now),
        (*done_record(done.batch_id)[:3], now),
    ])  # fmt: skip
    assert replay.unfinished() == [(open_, {P0, P1})]
    assert store.ids(P0) == [b"a", b"z"] and store.ids(P2) == [] and replay.ids_loaded == 2
    assert replay.records == 6


def test_a_done_for_some_partitions_leaves_the_others_to_settle() -> None:
    intent = intent_of({P0: [b"a"], P1: [b"b"]}, ts=0)
    store = DedupStore(window_s=600, max_ids_per_partition=100)
    partial = done_record(intent.batch_id, [P0])
    assert done_partitions(partial.headers) == {P0} and done_partitions(done_record("b").headers) is None
    replay = replay_of(store, [P0, P1], [(*intent_record(intent)[:3], 0), (*partial[:3], 0)])
    assert replay.unfinished() == [(intent, {P1})]
    replay.apply(*done_record(intent.batch_id, [P1])[:3], 0)
    assert replay.unfinished() == []


def test_settling_writes_the_found_ids_then_done_only_after_a_complete_read() -> None:
    intent = intent_of({P0: [b"a1", b"a2"], P1: [b"b1"]}, ts=123_000)
    matcher = OutputMatcher(intent, [P0, P1])
    matcher.offer(b"a1")
    records = Settled(intent, matcher, Scan(records_read=5)).changelog_records()
    assert [(r.key, r.value, r.timestamp_ms) for r in records[:-1]] == [(changelog_key(P0), b"a1", 123_000)]
    assert records[-1] == done_record(intent.batch_id)  # every input partition settled: the whole batch
    partial = OutputMatcher(intent, [P1])
    assert Settled(intent, partial, Scan()).changelog_records() == [done_record(intent.batch_id, [P1])]
    assert (
        dict(done_record(intent.batch_id, [P1]).headers or ())[PARTITIONS_HEADER]
        == b'[["prod.s.ingest.all-v1", 1]]'
    )
    unfinished = Settled(intent, matcher, Scan(finished=False)).changelog_records()
    assert all(KIND_HEADER not in dict(r.headers or ()) for r in unfinished) and len(unfinished) == 1


def test_the_restore_report_reads_as_one_log_line() -> None:
    text = RestoreReport(partitions=3, ids_restored=9, batches_settled=1, seconds=0.25).summary()
    assert "ids_restored=9 batches_settled=1" in text and text.endswith("seconds=0.25")


def test_each_restore_feeds_the_worker_metrics() -> None:
    from prometheus_client import generate_latest

    from refinery.worker.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    metrics.apply_restore(
        RestoreReport(ids_restored=9, batches_settled=1, derived_records_read=39, seconds=0.2)
    )
    text = generate_latest(metrics.registry).decode()
    for line in (
        "refinery_dedup_restored_ids_total 9.0", "refinery_dedup_batches_settled_total 1.0",
        "refinery_dedup_batches_unsettled_total 0.0", "refinery_dedup_settle_records_read_total 39.0",
        "refinery_dedup_restore_seconds_count 1.0",
    ):  # fmt: skip
        assert line in text

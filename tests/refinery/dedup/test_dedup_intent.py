"""The at-least-once intent records of the dedup changelog (no broker: plain data)."""

from __future__ import annotations

from refinery.dedup.records import BATCH_KEY, DONE, INTENT, KIND_HEADER, Intent, changelog_kind
from refinery.dedup.store import DedupChangelog, DedupStore
from refinery.routing.batch import route_batch
from refinery.routing.guards import RecordGuard
from refinery.routing.router import compile_router
from tests.refinery.routing.test_batch_routing import ROUTES, FakeRecord
from tests.refinery.worker.worker_harness import record


def test_intent_round_trips_and_records_say_their_kind() -> None:
    intent = Intent("b1", {("prod.s.ingest.all-v1", 2): (10, 42)}, ["prod.s.1.once-v1"], 0)
    key, value, headers = DedupChangelog.intent_record(intent)
    assert (
        key == BATCH_KEY
        and changelog_kind(headers) == INTENT
        and Intent.decode(value, 1234) == Intent("b1", intent.inputs, intent.topics, 1234)
    )
    key, value, headers = DedupChangelog.done_record("b1")
    assert key == BATCH_KEY
    assert (
        value,
        changelog_kind(headers),
        changelog_kind(None),
        changelog_kind([(KIND_HEADER, "done")]),
    ) == (b"b1", DONE, None, DONE)


def test_only_outputs_on_dedup_routes_name_their_topics() -> None:
    topic = "prod.s.ingest.all-v1"
    records = [FakeRecord(topic, 0, *record("prod", "s", "1", "once")),
               FakeRecord(topic, 1, *record("prod", "s", "1", "other"))]  # fmt: skip
    batch = route_batch(
        records, compile_router(ROUTES), RecordGuard(max_record_bytes=1000),
        DedupStore(window_s=60, max_ids_per_partition=100),
    )  # fmt: skip
    assert batch.dedup_topics == {"prod.s.1.once-v1"}
    assert {o.topic for o in batch.outputs} == {"prod.s.1.once-v1", "prod.s.all.all-v1"}
    assert batch.intent is None  # announced by the data plane, only when it writes the batch

"""The worker's per-header caches stay bounded under a steady feed of unique message ids.

Every record carries a fresh `ce_id`; the guard and the router must remember header *combinations*,
never per-record values, so 100k records leave their caches as small as the set of distinct
env/source/title/category/version/schema id values, and a flood of distinct values stays under the cap.
"""

from __future__ import annotations

import pytest

from common.headers import Headers
from refinery.dedup.store import DedupStore
from refinery.routing import guards
from refinery.routing.batch import route_batch
from refinery.routing.guards import RecordGuard
from refinery.routing.router import Router, compile_router
from tests.refinery.routing.test_batch_routing import ROUTES, FakeRecord
from tests.refinery.worker.worker_harness import record

TOPIC = "prod.src.ingest.all-v1"
RECORDS = 100_000
BATCH = 2_000


def _feed(guard: RecordGuard, router: Router, items: list[tuple[bytes, Headers]]) -> int:
    store = DedupStore(window_s=60, max_ids_per_partition=100)
    routed = 0
    for start in range(0, len(items), BATCH):
        chunk = [FakeRecord(TOPIC, start + i, v, h) for i, (v, h) in enumerate(items[start : start + BATCH])]
        batch = route_batch(chunk, router, guard, store)
        assert not batch.dead
        routed += len(batch.outputs)
    return routed


def test_unique_message_ids_leave_the_caches_at_the_number_of_header_combinations() -> None:
    titles, categories = ["1234", "2345", "3456"], ["kill", "purchase"]
    templates = [record("prod", "src", t, c) for t in titles for c in categories]
    items: list[tuple[bytes, Headers]] = []
    for n in range(RECORDS):
        value, headers = templates[n % len(templates)]
        message_id = f"0190c0de-0000-7000-8000-{n:012x}"
        # a fresh envelope is costly to build 100k times: give each record its own id in both places
        value = value.replace(_id_of(headers), message_id.encode())
        items.append((value, [(k, message_id.encode() if k == "ce_id" else v) for k, v in headers]))
    guard, router = RecordGuard(), compile_router(ROUTES)
    assert _feed(guard, router, items) == RECORDS  # every record is routed (all-prod), none rejected
    combos = len(titles) * len(categories)
    assert len(guard._valid_combos) == combos
    # env, source, titles, categories, version, schema id, format
    assert len(guard._valid) <= 2 + len(titles) + len(categories) + 3
    assert len(router._cache) <= combos


def test_distinct_header_values_beyond_the_cap_clear_the_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = 50
    monkeypatch.setattr(guards, "_VALID_CACHE_LIMIT", cap)
    items = [record("prod", "src", f"t{n}", "kill") for n in range(cap * 4)]
    guard, router = RecordGuard(), compile_router(ROUTES, cache_size=cap)
    assert _feed(guard, router, items) == len(items)
    assert len(guard._valid_combos) <= cap and len(guard._valid) <= cap
    assert len(router._cache) <= cap


def _id_of(headers: Headers) -> bytes:
    value = next(v for k, v in headers if k == "ce_id")
    assert isinstance(value, bytes)
    return value

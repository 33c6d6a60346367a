"""The compiled routing loop (`route_fast.c`, `refinery.routing.plan`) against the Python path, the
reference: for any batch, `route_batch` with plans must return exactly what it returns without them."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import contract
from common import headers as h
from common.limits import MAX_RECORD_BYTES
from refinery.dedup.store import DedupStore
from refinery.routing import plan as plan_module
from refinery.routing.batch import Output, RoutedBatch, route_batch
from refinery.routing.dlq import DlqReason
from refinery.routing.guards import HEADER_SLACK_BYTES, RecordGuard
from refinery.routing.plan import RoutePlans
from refinery.routing.router import Destination, compile_router
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import record

ROUTES = load_route_set("""
envs: [prod, dev]
routes:
  - name: prod-1234-by-category
    match: {env: prod, title: "1234"}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
  - name: dev-everything
    match: {env: dev}
    to: {topic: dev.all.all.all-v1}
  - name: pc-kills
    match: {env: prod, attribute.platform: pc, category: player_killed}
    to: {topic: prod.telemetry.all.pc_kills-v2}
  - name: once
    match: {category: once}
    to: {template: "{env}.{source}.{title}.once-v1"}
    dedup: true
  - name: by-team
    match: {category: team}
    to: {template: "{env}.{source}.{attribute.team}.team-v1"}
""")

TOPICS = {"prod": "prod.game-server.ingest.all-v1", "dev": "dev.game-server.ingest.all-v1"}


def _valid(env: str, title: str, category: str, **kw: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
    value, headers = record(env, "game-server", title, category, **kw)
    return value, list(headers)


def _replace(headers: list[tuple[str, bytes]], name: str, value: Any) -> list[tuple[str, Any]]:
    return [(n, value if n == name else v) for n, v in headers]


def _variants() -> list[tuple[str, bytes | None, Any]]:
    """(ingest env, value, headers): ordinary records of every route outcome, and every kind of record
    the compiled loop must leave to the reference."""
    base_value, base = _valid("prod", "1234", "match_started")
    other_value, _ = _valid("prod", "1234", "match_started")  # another message id
    pc_value, pc = _valid("prod", "9", "player_killed", attributes={"platform": "pc"})
    out: list[tuple[str, bytes | None, Any]] = [
        ("prod", base_value, base),
        ("prod", pc_value, pc),
        ("prod", *_valid("prod", "1234", "player_killed", version=2)),
        ("dev", *_valid("dev", "77", "crash_report")),
        ("prod", *_valid("prod", "5", "nothing_matches")),
        ("prod", *_valid("prod", "5", "once")),  # a dedup route
        ("prod", *_valid("prod", "5", "team", attributes={"team": "red"})),
        ("prod", *_valid("prod", "5", "team")),  # route error: no team attribute
        ("prod", *_valid("dev", "1234", "x")),  # env header differs from the ingest topic's
        ("prod", other_value, base),  # headers contradict the envelope (message id)
        ("prod", b"not an envelope", base),
        ("prod", None, base),
        ("prod", base_value, None),
        ("prod", base_value, []),
        ("prod", base_value, [*base, (h.ENV, b"prod")]),  # a duplicated header
        ("prod", base_value, [(n, v) for n, v in base if n != h.TITLE]),
        ("prod", base_value, _replace(base, h.MESSAGE_ID, b"")),
        ("prod", base_value, _replace(base, h.MESSAGE_ID, b"x" * (contract.MAX_MESSAGE_ID_BYTES + 1))),
        ("prod", base_value, _replace(base, h.VERSION, b"one")),
        ("prod", base_value, _replace(base, h.CATEGORY, None)),
        ("prod", base_value, [*base, ("trace", None)]),
        ("prod", base_value, [*base, ("list", [1])]),  # an unhashable value (not what Kafka gives)
    ]
    # record sizes at the edge of the exact-size check and past the limit (the default 1 MB limit)
    edge = MAX_RECORD_BYTES - HEADER_SLACK_BYTES
    for size in (edge - 64, edge + 1, MAX_RECORD_BYTES + 1):
        big_value, big = _valid("prod", "1234", "match_started", payload=b"p" * size)
        out.append(("prod", big_value, big))
    return out


VARIANTS = _variants()


def _message(
    env: str, value: bytes | None, headers: Any, offset: int, partition: int, key: bytes | None
) -> Any:
    return Message(
        topic=TOPICS[env], partition=partition, offset=offset, key=key, value=value, headers=headers
    )


def _shape(batch: RoutedBatch) -> dict[str, Any]:
    """Everything a batch says, with records by identity."""
    return {
        "records": [id(r) for r in batch.records],
        "outputs": [(o.topic, id(o.record), o.route) for o in batch.outputs],
        "dead": [(id(d.record), d.reason, d.message, d.route) for d in batch.dead],
        "counts": vars(batch.counts),
        "first": batch.first_offsets,
        "next": batch.next_offsets,
        "dedup_ids": batch.dedup_ids,
        "dedup_topics": batch.dedup_topics,
    }


def _both(
    records: list[Any], *, verify_envelope: bool = True, dlq_unmatched: bool = False
) -> tuple[Any, Any]:
    router = compile_router(ROUTES)
    guard = RecordGuard(verify_envelope=verify_envelope)
    plans = RoutePlans(router, guard, dlq_unmatched=dlq_unmatched)
    compiled = route_batch(
        records, router, guard, DedupStore(window_s=60, max_ids_per_partition=100),
        dlq_unmatched=dlq_unmatched, plans=plans,
    )  # fmt: skip
    reference = route_batch(
        records, compile_router(ROUTES), RecordGuard(verify_envelope=verify_envelope),
        DedupStore(window_s=60, max_ids_per_partition=100), dlq_unmatched=dlq_unmatched,
    )  # fmt: skip
    return compiled, reference


def test_it_is_built_where_ci_runs() -> None:
    # scripts/setup.sh installs the package, which compiles it; CI must measure what production runs
    assert plan_module.COMPILED_ROUTING


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(
        st.tuples(st.integers(0, len(VARIANTS) - 1), st.integers(0, 2), st.sampled_from([b"k", None, b""])),
        max_size=40,
    ),
    verify_envelope=st.booleans(),
    dlq_unmatched=st.booleans(),
    error_at=st.one_of(st.none(), st.integers(0, 40)),
)
def test_compiled_loop_decides_exactly_what_the_python_path_decides(
    picks: list[tuple[int, int, bytes | None]],
    verify_envelope: bool,
    dlq_unmatched: bool,
    error_at: int | None,
) -> None:
    records = [
        _message(*VARIANTS[index], offset=offset, partition=partition, key=key)
        for offset, (index, partition, key) in enumerate(picks)
    ]
    if error_at is not None and error_at <= len(records):  # e.g. a partition EOF event among the records
        records.insert(error_at, Message(error=KafkaError(KafkaError._PARTITION_EOF)))
    compiled, reference = _both(records, verify_envelope=verify_envelope, dlq_unmatched=dlq_unmatched)
    assert _shape(compiled) == _shape(reference)


def test_ordinary_records_are_routed_by_the_compiled_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ordinary records never reach the Python path (else the loop would only add work)."""
    ordinary = [_message(*VARIANTS[i], offset=i, partition=0, key=b"k") for i in range(5)]
    reached: list[Any] = []
    import refinery.routing.batch as batch_module

    original = batch_module._RecordRouter.__call__

    def spy(self: Any, record: Any, topic: str, tp: Any) -> None:
        reached.append(record)
        original(self, record, topic, tp)

    monkeypatch.setattr(batch_module._RecordRouter, "__call__", spy)
    router, guard = compile_router(ROUTES), RecordGuard()
    compiled = route_batch(ordinary, router, guard, DedupStore(window_s=60, max_ids_per_partition=10),
                           plans=RoutePlans(router, guard, dlq_unmatched=False))  # fmt: skip
    assert reached == []
    assert [type(o) for o in compiled.outputs] == [Output] * len(compiled.outputs)
    assert compiled.counts.unmatched == 1 and len(compiled.outputs) == 4
    # ... and the plans are bounded like the guard's caches
    assert plan_module.PLAN_CACHE_LIMIT == 100_000


def test_records_on_a_topic_outside_the_convention_are_dead_letters_in_both() -> None:
    """A wider ingest pattern: the plan is refused like the reference refuses the record (no crash)."""
    value, headers = _valid("prod", "1234", "match_started")
    records = [Message(topic="legacy-events", partition=0, offset=0, value=value, headers=headers)]
    compiled, reference = _both(records)
    assert _shape(compiled) == _shape(reference)
    assert [d.reason for d in compiled.dead] == [DlqReason.ENV_MISMATCH]


def test_a_plan_is_built_once_per_combination() -> None:
    router, guard = compile_router(ROUTES), RecordGuard()
    plans = RoutePlans(router, guard, dlq_unmatched=False)
    records = [_message(*_variants()[0], offset=i, partition=0, key=b"k") for i in range(3)]
    records += [_message("prod", *_valid("prod", "1234", "match_started"), offset=3, partition=0, key=b"k")]
    route_batch(records, router, guard, DedupStore(window_s=60, max_ids_per_partition=10), plans=plans)
    assert len(plans.plans) == 1  # four message ids, one combination


def test_plans_are_used_only_for_their_own_router_and_guard() -> None:
    router, guard = compile_router(ROUTES), RecordGuard()
    plans = RoutePlans(router, guard, dlq_unmatched=False)
    assert plans.fits(router, guard, False)
    assert not plans.fits(compile_router(ROUTES), guard, False)
    assert not plans.fits(router, RecordGuard(), False)
    assert not plans.fits(router, guard, True)


class _LeakyRouter:
    """A router that breaks the rules the route loader enforces (the guard's second line of defence):
    destinations in another env, and a name that is no convention topic."""

    key_headers = (h.ENV, h.CATEGORY)

    def route(self, headers: Any) -> list[Destination]:
        return {
            b"leak": [Destination("leak", "dev.leaked.all.all-v1", False)],
            b"bad": [Destination("bad", "Not A Topic", False), Destination("ok", "prod.a.b.c-v1", False)],
        }.get(headers[h.CATEGORY], [Destination("ok", "prod.a.b.c-v1", False)])


def test_destinations_the_guard_refuses_are_left_to_the_reference() -> None:
    items = [_valid("prod", "1", category) for category in ("leak", "bad", "fine")]
    records = [
        _message("prod", value, headers, offset=i, partition=0, key=b"k")
        for i, (value, headers) in enumerate(items)
    ]
    router, guard = _LeakyRouter(), RecordGuard()
    compiled = route_batch(records, router, guard, DedupStore(window_s=60, max_ids_per_partition=10),
                           plans=RoutePlans(router, guard, dlq_unmatched=False))  # fmt: skip
    reference = route_batch(
        records, _LeakyRouter(), RecordGuard(), DedupStore(window_s=60, max_ids_per_partition=10)
    )
    assert _shape(compiled) == _shape(reference)
    assert [d.reason.value for d in compiled.dead] == ["env_mismatch", "topic_rejected"]
    assert [o.route for o in compiled.outputs] == ["ok", "ok"]

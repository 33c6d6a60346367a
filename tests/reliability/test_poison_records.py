"""Poison records through a real worker with the DEFAULT limits (issue 13): records too large to forward
go to the DLQ once each and the rest of the batch is delivered once, with no retry loop; a record at
exactly the limit is forwarded and one byte more is not; a derived topic Kafka refuses to write sends
that route's outputs to the DLQ (`output_rejected`) while the other routes proceed.

The ingest topics accept records up to 8 MiB (topic config `max.message.bytes`) and a raw producer with
a raised `message.max.bytes` writes them, as a client outside our SDK could."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.limits import MAX_RECORD_BYTES, record_size
from refinery.control.route_store import publish_route_set
from refinery.reconcile.reconciler import read_topics
from refinery.routing import dlq
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, worker_env
from tests.reliability.dataplane_checks import (
    BIG_TOPIC_BYTES,
    HealthWatcher,
    Item,
    Sent,
    by_label,
    check_cut_value,
    create_topic,
    dead_letter_errors,
    metric,
    metrics,
    produce,
    read_back,
    sized_record,
    wait_ready,
)
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROUTES = """
routes:
  - name: everything
    match: {env: prod}
    to: {template: "{env}.{source}.all.everything-v1"}
  - name: by-title
    match: {title: {in: ["1234", "2345"]}}
    to: {template: "{env}.{source}.{title}.all-v1"}
"""
GOOD = 3000
POISON_VALUE_BYTES = (999_980, 1_000_179, 5_000_000)  # the three: under, just over and far over
TITLES = ("1234", "2345", "3456")


@pytest.fixture
def worker_setup(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str]]:
    """The worker's environment (default limits) with the route set published and an ingest topic that
    takes 8 MiB records; the worker itself is started by the test."""
    env = worker_env(kafka_bootstrap, unique_name, tmp_path)
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    ingest = f"prod.{unique_name}.ingest.all-v1"
    create_topic(kafka_bootstrap, ingest, config={"max.message.bytes": str(BIG_TOPIC_BYTES)})
    yield env, ingest


def good_item(ingest: str, name: str, i: int, payload: int = 1000) -> Item:
    # incompressible: the worker's outputs are lz4-compressed, and a narrow topic judges the stored size
    value, headers = record("prod", name, TITLES[i % 3], "kill", payload=random.Random(i).randbytes(payload))
    return (ingest, i % 3, f"k{i % 50}".encode(), value, headers)


def no_rewinds(worker: WorkerProcess) -> int:
    return sum("rewind" in line.lower() for line in worker.log_path.read_text(errors="replace").splitlines())


def test_poison_records_go_to_the_dlq_once_and_the_batch_is_delivered_once(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, worker_setup: tuple[dict[str, str], str]
) -> None:
    env, ingest = worker_setup
    name, conf = unique_name, {"bootstrap.servers": kafka_bootstrap}
    items = [good_item(ingest, name, i) for i in range(GOOD)]
    poison: dict[bytes, bytes] = {}  # key -> value
    for n, size in enumerate(POISON_VALUE_BYTES):  # one per partition, with good records before and after
        key = f"poison-{size}".encode()
        value, headers = sized_record("prod", name, "1234", value_bytes=size)
        poison[key] = value
        items.insert((n + 1) * len(items) // 4, (ingest, n, key, value, headers))
    sent = produce(kafka_bootstrap, items)  # all written before the worker starts: one deep backlog
    poison_sent = {s.key: s for s in sent if s.key in poison}
    assert len(sent) == GOOD + len(POISON_VALUE_BYTES) and len(poison_sent) == len(POISON_VALUE_BYTES)

    worker = WorkerProcess(env, tmp_path / "worker.log")
    started = time.monotonic()
    try:
        with HealthWatcher(worker.start()) as watcher:
            wait_caught_up(conf, name, [ingest], timeout=120)
            caught_up_s = time.monotonic() - started
            stats = wait_ready(worker, timeout=30)
            samples = metrics(worker)
        worker_alive = worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
    ledger = read_back(conf, name, ROUTES, sent, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"],
                       not_routed=lambda s: s.key in poison)  # fmt: skip
    rewinds = no_rewinds(worker)
    cut = {}
    for key, s in poison_sent.items():
        for dead in ledger.dead.get(s.coordinate, []):
            cut[key.decode()] = dead_letter_errors(dead).get(dlq.VALUE_TRUNCATED) == "true"
    retries = by_label(samples, "refinery_worker_retries_total", "reason")
    record_figures(
        "poison_records", good=GOOD, poison_value_bytes=list(POISON_VALUE_BYTES),
        poison_record_bytes={k.decode(): record_size(k, s.value, s.headers) for k, s in poison_sent.items()},
        **ledger.summary(), dead_letter_value_cut=cut, retries_by_reason=retries,
        pauses_by_reason=by_label(samples, "refinery_worker_pauses_total", "reason"),
        rewind_log_lines=rewinds, states_seen=dict(watcher.states), caught_up_s=round(caught_up_s, 1),
    )  # fmt: skip
    assert worker_alive and watcher.exited is None
    # every poison record is a dead letter exactly once, as value_too_large, and nothing else is
    for key, s in poison_sent.items():
        dead = ledger.dead.get(s.coordinate, [])
        assert len(dead) == 1, f"{key!r}: {len(dead)} dead letters"
        errors = dead_letter_errors(dead[0])
        assert errors[dlq.REASON] == dlq.DlqReason.VALUE_TOO_LARGE, errors
        assert dead[0].key() == key
        assert record_size(dead[0].key(), dead[0].value(), dead[0].headers()) <= MAX_RECORD_BYTES
        was_cut = check_cut_value(dead[0], poison[key])
        if len(poison[key]) >= MAX_RECORD_BYTES:
            assert was_cut, f"{key!r}: a {len(poison[key])}-byte value cannot be in a dead letter whole"
    assert set(ledger.dead) == {s.coordinate for s in poison_sent.values()} and ledger.dead_unknown == 0
    # every good record delivered exactly once, nothing misrouted (a poison record routed anywhere
    # in the test's namespace counts as misrouted)
    assert ledger.expected and ledger.lost == 0, ledger.summary()
    assert ledger.duplicated == 0 and ledger.misrouted == 0, ledger.summary()
    # no retry loop: nothing retried, no rewinds, never paused; ready at the end
    assert sum(retries.values()) == 0, retries
    assert rewinds == 0
    assert metric(samples, "refinery_records_dlq_total", reason="value_too_large") == len(poison)
    assert metric(samples, "refinery_records_dlq_total") == len(poison)
    assert metric(samples, "refinery_worker_pauses_total") == 0
    assert "paused" not in watcher.states and "retrying" not in watcher.states, watcher.states
    assert stats["state"] == "running" and stats["ready"] is True, stats
    # the project's reconciler agrees (it derives the same expectation from the route set and guard)
    report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"])
    assert report.clean and report.dlq_found == len(poison), report


def test_a_record_at_the_limit_is_forwarded_and_one_byte_more_is_not(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, worker_setup: tuple[dict[str, str], str]
) -> None:
    env, ingest = worker_setup
    name, conf = unique_name, {"bootstrap.servers": kafka_bootstrap}
    at_key, over_key = b"edge-at-limit", b"edge-over-limit"
    at_value, at_headers = sized_record("prod", name, "1234", key=at_key, record_bytes=MAX_RECORD_BYTES)
    over_value, over_headers = sized_record(
        "prod", name, "1234", key=over_key, record_bytes=MAX_RECORD_BYTES + 1
    )
    items = [good_item(ingest, name, i) for i in range(100)]
    items[50:50] = [
        (ingest, 0, at_key, at_value, at_headers),
        (ingest, 0, over_key, over_value, over_headers),
    ]
    sent = produce(kafka_bootstrap, items)
    by_key: dict[bytes | None, Sent] = {s.key: s for s in sent}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        wait_caught_up(conf, name, [ingest], timeout=90)
        stats = wait_ready(worker, timeout=30)
        ledger = read_back(conf, name, ROUTES, sent, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"],
                           not_routed=lambda s: s.key == over_key)  # fmt: skip
        forwarded = [
            m for m in read_topics(conf, [f"prod.{name}.all.everything-v1"])
            if dict(m.headers() or []).get("ce_id") == by_key[at_key].message_id
        ]  # fmt: skip
    finally:
        worker.stop()
    record_figures(
        "record_size_edge", limit=MAX_RECORD_BYTES, at_limit_value_bytes=len(at_value),
        over_limit_value_bytes=len(over_value), **ledger.summary(),
    )  # fmt: skip
    assert record_size(at_key, at_value, at_headers) == MAX_RECORD_BYTES
    assert record_size(over_key, over_value, over_headers) == MAX_RECORD_BYTES + 1
    # at the limit: forwarded once to each route, byte-identical; not a dead letter
    assert len(forwarded) == 1 and forwarded[0].value() == at_value and forwarded[0].key() == at_key
    assert by_key[at_key].coordinate not in ledger.dead
    # one byte more: a dead letter once, value_too_large, routed nowhere
    dead = ledger.dead.get(by_key[over_key].coordinate, [])
    assert len(dead) == 1 and dead_letter_errors(dead[0])[dlq.REASON] == dlq.DlqReason.VALUE_TOO_LARGE
    check_cut_value(dead[0], over_value)
    assert len(ledger.dead) == 1 and ledger.dead_unknown == 0
    assert ledger.lost == 0 and ledger.duplicated == 0 and ledger.misrouted == 0, ledger.summary()
    assert stats["state"] == "running"


NARROW_ROUTES = """
routes:
  - name: narrow
    match: {env: prod}
    to: {template: "{env}.{source}.narrow.all-v1"}
  - name: wide
    match: {env: prod}
    to: {template: "{env}.{source}.wide.all-v1"}
"""
NARROW_RECORDS = 300


def test_a_derived_topic_that_refuses_writes_dead_letters_its_outputs_and_other_routes_proceed(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """The `narrow` route's topic takes records of at most 2,000 bytes (topic config); every record is
    ~3 KB, so the broker refuses each `narrow` output for good (MSG_SIZE_TOO_LARGE) while `wide` takes it."""
    name, conf = unique_name, {"bootstrap.servers": kafka_bootstrap}
    env = worker_env(kafka_bootstrap, name, tmp_path)
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(NARROW_ROUTES))
    narrow, wide = f"prod.{name}.narrow.all-v1", f"prod.{name}.wide.all-v1"
    create_topic(kafka_bootstrap, narrow, config={"max.message.bytes": "2000"})
    ingest = f"prod.{name}.ingest.all-v1"
    create_topic(kafka_bootstrap, ingest)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    started = time.monotonic()
    try:
        with HealthWatcher(worker.start()) as watcher:
            sent = produce(
                kafka_bootstrap, [good_item(ingest, name, i, payload=3000) for i in range(NARROW_RECORDS)]
            )
            wait_caught_up(conf, name, [ingest], timeout=90)
            stats = wait_ready(worker, timeout=30)
            samples = metrics(worker)
    finally:
        worker.stop()
    ledger = read_back(conf, name, NARROW_ROUTES, sent, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"],
                       rejected_topics={narrow})  # fmt: skip
    routes_named = sorted(
        {dead_letter_errors(m).get(dlq.ROUTE, "") for ms in ledger.dead.values() for m in ms}
    )
    record_figures(
        "derived_topic_refuses_writes", records=NARROW_RECORDS,
        record_bytes=record_size(sent[0].key, sent[0].value, sent[0].headers),
        **ledger.summary(), dead_letter_routes=routes_named, states_seen=dict(watcher.states),
        retries_by_reason=by_label(samples, "refinery_worker_retries_total", "reason"),
        pauses_by_reason=by_label(samples, "refinery_worker_pauses_total", "reason"),
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert all(record_size(s.key, s.value, s.headers) > 2000 for s in sent)
    # the other route got every record exactly once; nothing reached the narrow topic or anywhere else
    assert {topic for _, topic in ledger.expected} == {wide}
    assert ledger.lost == 0 and ledger.duplicated == 0 and ledger.misrouted == 0, ledger.summary()
    # every narrow output is a dead letter exactly once, output_rejected, carrying the record as it was
    assert set(ledger.dead) == {s.coordinate for s in sent} and ledger.dead_unknown == 0
    for s in sent:
        (dead,) = ledger.dead[s.coordinate]
        assert dead_letter_errors(dead)[dlq.REASON] == dlq.DlqReason.OUTPUT_REJECTED
        assert dead.key() == s.key and dead.value() == s.value
    assert metric(samples, "refinery_records_dlq_total", reason="output_rejected") == NARROW_RECORDS
    # the worker never paused and is ready
    assert metric(samples, "refinery_worker_pauses_total") == 0
    assert "paused" not in watcher.states, watcher.states
    assert watcher.exited is None and stats["state"] == "running" and stats["ready"] is True, stats


def test_a_derived_topic_the_broker_refuses_to_create_dead_letters_its_outputs(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Kafka refuses to create a topic whose name collides with an existing one once `.` and `_` are
    equated (InvalidTopicException): the `narrow` route's topic cannot be created, so its outputs become
    `output_rejected` dead letters once each while `wide` gets every record, and the worker never pauses."""
    name, conf = unique_name, {"bootstrap.servers": kafka_bootstrap}
    env = worker_env(kafka_bootstrap, name, tmp_path)
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(NARROW_ROUTES))
    narrow, wide = f"prod.{name}.narrow.all-v1", f"prod.{name}.wide.all-v1"
    create_topic(kafka_bootstrap, narrow.replace(".", "_"))  # the collision that makes `narrow` illegal
    ingest = f"prod.{name}.ingest.all-v1"
    create_topic(kafka_bootstrap, ingest)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        with HealthWatcher(worker.start()) as watcher:
            sent = produce(kafka_bootstrap, [good_item(ingest, name, i) for i in range(100)])
            wait_caught_up(conf, name, [ingest], timeout=90)
            stats = wait_ready(worker, timeout=30)
            samples = metrics(worker)
    finally:
        worker.stop()
    ledger = read_back(conf, name, NARROW_ROUTES, sent, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"],
                       rejected_topics={narrow})  # fmt: skip
    assert {topic for _, topic in ledger.expected} == {wide}
    assert ledger.lost == 0 and ledger.duplicated == 0 and ledger.misrouted == 0, ledger.summary()
    assert set(ledger.dead) == {s.coordinate for s in sent} and ledger.dead_unknown == 0
    for s in sent:
        (dead,) = ledger.dead[s.coordinate]
        errors = dead_letter_errors(dead)
        assert errors[dlq.REASON] == dlq.DlqReason.OUTPUT_REJECTED and errors[dlq.ROUTE] == "narrow"
        assert "collides" in errors[dlq.MESSAGE] or "could not create topic" in errors[dlq.MESSAGE]
    assert metric(samples, "refinery_worker_pauses_total") == 0 and "paused" not in watcher.states
    assert watcher.exited is None and stats["ready"] is True, stats

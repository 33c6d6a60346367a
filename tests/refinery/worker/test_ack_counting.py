"""The producer's acknowledgement interceptor (`refinery/worker/write_fast.c`, `count_acks`), against the
real broker: with failure-only delivery reports, each record the broker acknowledged counts once in its
batch tracker's `acked` (written through the compiled loop on librdkafka's header lists, or through
confluent-kafka's `produce`), failures still reach the tracker as reports and are never counted, so a
batch completes as its records are acknowledged, without waiting for the producer to drain."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common.config import WorkerSettings
from refinery.routing.batch import Output
from refinery.worker import _write_fast, direct
from refinery.worker.clients import ProducerFactory, producer_factory
from refinery.worker.inflight import BatchTracker, _DeliveryCounter
from refinery.worker.retry import Backoff
from refinery.worker.writer import BatchWriter
from tests.refinery.worker.test_direct_headers import _consume
from tests.refinery.worker.worker_harness import send

SMALL_TOPIC_LIMIT = 1500  # bytes, the small topic's max.message.bytes


def _tracker() -> BatchTracker:
    return BatchTracker(cast(Any, None), 0.0, Backoff.from_settings(WorkerSettings()))


@pytest.fixture
def factory(kafka_bootstrap: str) -> ProducerFactory:
    # the worker's producer at its defaults: at-least-once, failure-only reports, counting on
    return producer_factory(WorkerSettings(), {"bootstrap.servers": kafka_bootstrap}, None)


@pytest.fixture
def counting(factory: ProducerFactory) -> Iterator[Producer]:
    producer = factory()
    assert factory.counts_acks
    assert direct.bind(producer) is None
    yield producer
    direct.unbind()
    producer.flush(10)


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> tuple[str, str]:
    """A topic that takes everything, and one whose broker-side record limit refuses the larger records."""
    ok, small = f"{unique_name}-ok", f"{unique_name}-small"
    _create(
        kafka_bootstrap,
        NewTopic(ok, 3, 1),
        NewTopic(small, 1, 1, config={"max.message.bytes": str(SMALL_TOPIC_LIMIT)}),
    )
    return ok, small


def _create(bootstrap: str, *topics: NewTopic) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until every future resolved
    for future in admin.create_topics(list(topics)).values():
        future.result(30)


def test_acknowledged_records_count_once_and_failures_are_reported_not_counted(
    kafka_bootstrap: str, unique_name: str, topics: tuple[str, str]
) -> None:
    ok, small = topics
    # one record per produce request, so that the broker's size check judges each record on its own
    settings = WorkerSettings(batch_num_messages=1)
    factory = producer_factory(settings, {"bootstrap.servers": kafka_bootstrap}, None)
    counting = factory()
    assert factory.counts_acks and direct.bind(counting) is None
    try:
        _write_and_check(kafka_bootstrap, unique_name, counting, ok, small)
    finally:
        direct.unbind()


def _write_and_check(kafka_bootstrap: str, unique_name: str, counting: Producer, ok: str, small: str) -> None:
    ingest = f"prod.telemetry.{unique_name.replace('_', '-')}.acks-v1"
    # consumed records still holding librdkafka's header lists: the compiled loop queues them directly
    items = [
        # incompressible values: the producer compresses (lz4), and the broker judges the stored size
        (f"k{i}".encode(), random.Random(i).randbytes(400 if i % 3 else 3000), [("h", b"v")])
        for i in range(30)
    ]
    send(kafka_bootstrap, ingest, items)
    records = _consume(kafka_bootstrap, [ingest], len(items))
    tracker = _tracker()
    outputs = [Output(ok, r, "all") for r in records] + [Output(small, r, "small") for r in records]
    routed: dict[str, int] = {}
    assert _write_fast.produce_outputs(counting.produce, outputs, 0, tracker, routed, counting) == (
        len(outputs),
        None,
    )
    tracker.left += len(outputs)
    # and through confluent-kafka's own produce: its per-message state carries the tracker the same way
    for i in range(20):
        counting.produce(ok, b"api-%d" % i, on_delivery=tracker)
    tracker.left += 20
    others: list[Any] = []  # a callback that is no tracker (e.g. the dedup changelog's) is not counted
    for _ in range(5):
        counting.produce(ok, b"other", on_delivery=lambda err, msg: others.append(err))
    assert counting.flush(30) == 0

    too_large = sum(1 for _, value, _ in items if len(value) > SMALL_TOPIC_LIMIT)
    assert too_large == 10
    assert all(err.code() == KafkaError.MSG_SIZE_TOO_LARGE for err, _ in tracker.failures)
    assert len(tracker.failures) == too_large  # reported, one by one
    assert tracker.acked == len(outputs) + 20 - too_large  # every success counted, exactly once
    assert tracker.left == len(outputs) + 20 - too_large  # failures counted down by their reports
    assert tracker.reported and not tracker.done  # complete once its failures are dealt with
    assert others == []  # failure-only reports: successes of other callbacks are neither counted nor reported


def test_a_batch_completes_as_its_records_are_acknowledged(
    counting: Producer, topics: tuple[str, str]
) -> None:
    ok, _ = topics
    first, second = _tracker(), _tracker()
    for i in range(200):
        counting.produce(ok, b"first-%d" % i, on_delivery=first)
    first.left += 200
    assert not first.done  # nothing acknowledged yet (linger)
    assert counting.flush(30) == 0
    for i in range(50):
        counting.produce(ok, b"second-%d" % i, on_delivery=second)
    second.left += 50
    # the first batch is done, without `settled()`, although the producer holds the second one's records
    assert first.done and first.acked == 200
    assert len(counting) > 0 and not second.done
    assert counting.flush(30) == 0
    assert second.done and second.acked == 50


def test_nothing_is_counted_while_unbound(counting: Producer, topics: tuple[str, str]) -> None:
    ok, _ = topics
    direct.unbind()  # the layout checks do not hold: the interceptor must not read per-message state
    tracker = _tracker()
    for i in range(100):
        counting.produce(ok, b"unbound-%d" % i, on_delivery=tracker)
    tracker.left += 100
    assert counting.flush(30) == 0
    assert tracker.acked == 0 and not tracker.done
    tracker.settled()  # the producer drained: how batches complete without counting
    assert tracker.done


def test_the_writer_counts_acks_only_while_bound(factory: ProducerFactory) -> None:
    writer = BatchWriter(WorkerSettings(), cast(Any, None), factory, "w1")
    try:
        assert factory.counts_acks and not writer.counts_acks  # the plugin, but the layout is unchecked
        assert direct.bind(writer.producer) is None
        assert writer.counts_acks
    finally:
        direct.unbind()
    assert not writer.counts_acks
    writer.producer.flush(10)


@pytest.mark.parametrize(
    ("settings", "transactional_id"),
    [
        ({"success_reports": True}, None),  # a report per record counts them already: never both
        ({"count_acks": False}, None),
        ({"direct_headers": False}, None),  # counting reads per-message state only once bound
        ({}, "refinery-eos-test"),  # exactly-once flushes each transaction
    ],
)
def test_counting_is_asked_for_only_at_least_once_with_failure_only_reports(
    settings: dict[str, Any], transactional_id: str | None
) -> None:
    factory = producer_factory(
        WorkerSettings(**settings), {"bootstrap.servers": "127.0.0.1:1"}, transactional_id
    )
    assert not factory.wants_ack_counting()
    assert "plugin.library.paths" not in factory.config()
    assert producer_factory(WorkerSettings(), {}, None).wants_ack_counting()


def test_a_plugin_librdkafka_refuses_leaves_a_producer_that_drains(
    factory: ProducerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(direct, "ack_plugin", lambda: "/nonexistent/refinery-acks.so")
    with caplog.at_level(logging.WARNING):
        producer = factory()
    assert isinstance(producer, Producer) and not factory.counts_acks
    assert "acknowledgements are not counted per record" in caplog.text
    assert "/nonexistent/refinery-acks.so" in caplog.text


def test_the_plugin_refuses_to_load_unprepared() -> None:
    """librdkafka loading the module as a plugin before `acks_prepare` found its functions: a clear error
    from Producer(), never an interceptor that calls nowhere (a fresh process: preparing is process-wide)."""
    code = (
        "import confluent_kafka\nfrom refinery.worker import _write_fast\n"
        "try:\n    confluent_kafka.Producer({'plugin.library.paths': _write_fast.__file__})\n"
        "except confluent_kafka.KafkaException as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "acknowledgement counting was not prepared" in out.stdout


def test_a_failed_prepare_keeps_the_functions_an_earlier_one_found() -> None:
    """`acks_prepare` on a library that lacks the interceptor functions (here libc, loaded but not
    librdkafka) after a successful one: the plugin keeps what it had and a new producer loads it, never
    calling a function it failed to find (a fresh process: a crash there must not take the suite down)."""
    code = (
        "import confluent_kafka\nfrom refinery.worker import _write_fast, direct\n"
        "assert _write_fast.acks_prepare(direct.loaded_librdkafka()) is None\n"
        "libc = next(line.split()[5] for line in open('/proc/self/maps') if '/libc.so' in line)\n"
        "print(_write_fast.acks_prepare(libc))\n"
        "producer = confluent_kafka.Producer({'plugin.library.paths': _write_fast.__file__})\n"
        "print('built', producer.flush(1))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "lacks rd_kafka_conf_interceptor_add_on_new" in out.stdout
    assert "built 0" in out.stdout


def test_the_python_reference_counts_nothing() -> None:
    counter = _DeliveryCounter()
    assert counter.acked == 0
    counter.left = 2
    counter(None, None)
    assert counter.left == 1 and counter.acked == 0

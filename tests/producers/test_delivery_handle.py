"""`DeliveryHandle`, the per-record result of `Producer.send`, resolved here the way librdkafka's poll
thread resolves it (a delivery report: KafkaError or None, and the Message), without a broker."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import wait

import pytest
from confluent_kafka import KafkaError, Message
from prometheus_client import CollectorRegistry

from common.client_errors import ClientErrors
from common.config import KafkaSettings
from producers.delivery import Delivered, DeliveryHandle, DeliveryReports, ProducerStats, settle_future
from producers.errors import DeliveryError
from producers.metrics import ProducerMetrics

LABELS = ("prod", "telemetry", "ping")
TOPIC = "prod.telemetry.ingest.all-v1"


@pytest.fixture
def reports() -> DeliveryReports:
    metrics = ProducerMetrics(CollectorRegistry())
    return DeliveryReports(ProducerStats(), metrics, ClientErrors(KafkaSettings()))


def delivered(handle: DeliveryHandle, offset: int = 7) -> None:
    handle(None, Message(topic=TOPIC, partition=2, offset=offset))


def failed(handle: DeliveryHandle) -> None:
    handle(KafkaError(KafkaError._MSG_TIMED_OUT), Message(topic=TOPIC, partition=-1))


def test_a_delivered_record_resolves_counts_and_calls_back(reports: DeliveryReports) -> None:
    calls: list[tuple[DeliveryError | None, Delivered | None]] = []
    handle = DeliveryHandle(reports, "id-1", LABELS, lambda e, d: calls.append((e, d)))
    hooked: list[DeliveryHandle] = []
    handle.add_done_callback(hooked.append)
    assert not handle.done() and hooked == []
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.01)

    delivered(handle)
    expected = Delivered("id-1", TOPIC, 2, 7)
    assert handle.done() and handle.result() == expected and handle.exception() is None
    assert calls == [(None, expected)] and hooked == [handle]
    assert reports.stats.delivered == 1 and reports.metrics.sent[LABELS] == 1
    late: list[DeliveryHandle] = []
    handle.add_done_callback(late.append)  # already resolved: called at once
    assert late == [handle]


def test_a_failed_record_reaches_handle_callback_metrics_and_log(
    reports: DeliveryReports, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[DeliveryError | None, Delivered | None]] = []
    handle = DeliveryHandle(reports, "id-2", LABELS, lambda e, d: calls.append((e, d)))
    with caplog.at_level(logging.ERROR, logger="producers.delivery"):
        failed(handle)
    error = handle.exception(timeout=0)
    assert isinstance(error, DeliveryError) and error.message_id == "id-2" and error.topic == TOPIC
    with pytest.raises(DeliveryError, match="id-2"):
        handle.result()
    assert calls == [(error, None)]
    assert reports.stats.failed == 1 and reports.metrics.delivery_errors["msg_timed_out"] == 1
    assert any(r.getMessage() == "delivery failed" for r in caplog.records)


def test_a_blocked_waiter_is_woken_by_the_poll_thread(reports: DeliveryReports) -> None:
    handles = [DeliveryHandle(reports, f"id-{n}", LABELS, None) for n in range(3)]
    results: list[Delivered] = []
    waiters = [threading.Thread(target=lambda h=h: results.append(h.result(timeout=10))) for h in handles]
    for t in waiters:
        t.start()
    poller = threading.Thread(target=lambda: [delivered(h, n) for n, h in enumerate(handles)])
    poller.start()
    for t in [poller, *waiters]:
        t.join(timeout=10)
    assert sorted(d.offset for d in results) == [0, 1, 2]


def test_raising_callbacks_are_logged_and_do_not_stop_the_others(
    reports: DeliveryReports, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("caller bug")

    handle = DeliveryHandle(reports, "id-3", LABELS, broken)
    hooked: list[DeliveryHandle] = []
    handle.add_done_callback(broken)
    handle.add_done_callback(hooked.append)
    with caplog.at_level(logging.ERROR, logger="producers.delivery"):
        delivered(handle)
    assert hooked == [handle] and handle.result().offset == 7
    assert [r.getMessage() for r in caplog.records] == [
        "on_delivery callback raised",
        "delivery done-callback raised",
    ]


def test_as_future_and_asyncio_settle_carry_the_outcome(reports: DeliveryReports) -> None:
    ok, bad = (DeliveryHandle(reports, f"id-{n}", LABELS, None) for n in (4, 5))
    futures = [ok.as_future(), bad.as_future()]
    delivered(ok)
    failed(bad)
    done, pending = wait(futures, timeout=5)
    assert len(done) == 2 and not pending
    assert futures[0].result() == Delivered("id-4", TOPIC, 2, 7)
    assert isinstance(futures[1].exception(), DeliveryError)

    async def settle() -> tuple[Delivered, BaseException]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        settle_future(first, ok)
        settle_future(second, bad)
        return await first, await asyncio.gather(second, return_exceptions=True)

    got, (error,) = asyncio.run(settle())
    assert got.offset == 7 and isinstance(error, DeliveryError)

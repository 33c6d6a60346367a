"""The watchdog over blocking Kafka calls, with a fake clock and a fake exit (no thread, no broker).
The real hang it exists for (librdkafka's send_offsets_to_transaction with the coordinator down) is met
by the cluster fault tests in tests/reliability/cluster/."""

from __future__ import annotations

import logging

import pytest

from refinery.worker.health import Health
from refinery.worker.metrics import WorkerMetrics
from refinery.worker.watchdog import WEDGED_EXIT_CODE, CallWatch
from tests.support import FakeClock


def watched(exit_after_s: float = 30.0) -> tuple[CallWatch, Health, WorkerMetrics, FakeClock, list[int]]:
    metrics = WorkerMetrics()
    health = Health(metrics, stall_after_s=30)
    health.started()
    health.progress()
    clock, exits = FakeClock(1000.0), []
    watch = CallWatch(
        health, metrics, grace_s=10, exit_after_s=exit_after_s, exit_process=exits.append, clock=clock
    )
    return watch, health, metrics, clock, exits


def gauge(metrics: WorkerMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_a_call_within_its_timeout_and_grace_is_left_alone() -> None:
    watch, health, metrics, clock, exits = watched()
    with watch.call("send_offsets_to_transaction", 30):
        clock.now += 39.9
        watch.check()
        assert health.readiness().ready and health.wedged_why is None
    assert exits == [] and gauge(metrics, "refinery_worker_wedged") == 0


def test_a_call_past_its_timeout_and_grace_is_reported_then_the_process_exits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, health, metrics, clock, exits = watched(exit_after_s=30)
    with caplog.at_level(logging.ERROR, logger="refinery.worker.watchdog"):
        with watch.call("send_offsets_to_transaction", 30):
            clock.now += 40
            watch.check()
            readiness = health.readiness()
            assert not readiness.ready
            assert readiness.why.startswith("wedged: the data plane has been inside send_offsets_to_tr")
            assert health.snapshot()["wedged"] == health.wedged_why
            assert gauge(metrics, "refinery_worker_wedged") == 1
            clock.now += 29
            watch.check()
            assert exits == []  # 29 s of the 30 s left
            clock.now += 1
            watch.check()
            assert exits == [WEDGED_EXIT_CODE]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("exiting in 30 s unless it returns" in m for m in messages) == 1  # reported once
    assert any(m.startswith("exiting: a Kafka call never returned") for m in messages)


def test_the_wedge_counter_names_the_call() -> None:
    watch, _, metrics, clock, _ = watched()
    with watch.call("commit_transaction", 30):
        clock.now += 45
        watch.check()
        watch.check()
    labels = {"call": "commit_transaction"}
    assert metrics.registry.get_sample_value("refinery_worker_wedges_total", labels) == 1


def test_a_wedged_call_that_returns_clears_the_report() -> None:
    watch, health, metrics, clock, exits = watched()
    with watch.call("flush", 30):
        clock.now += 41
        watch.check()
        assert not health.readiness().ready
    assert health.wedged_why is None and health.readiness().ready
    assert gauge(metrics, "refinery_worker_wedged") == 0 and exits == []


def test_exit_after_zero_only_reports() -> None:
    watch, health, _, clock, exits = watched(exit_after_s=0)
    with watch.call("flush", 30):
        clock.now += 3600
        watch.check()
        assert health.wedged_why is not None
    assert exits == []


def test_no_call_in_progress_is_never_wedged() -> None:
    watch, health, _, clock, exits = watched()
    clock.now += 3600
    watch.check()
    assert health.wedged_why is None and exits == []

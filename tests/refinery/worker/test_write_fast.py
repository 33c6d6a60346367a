"""The compiled produce loop (`refinery/worker/write_fast.c`) against the writer's Python loop, the
reference: for any batch and any sequence of produce failures, both produce the same records in the
same order, count the same routes and dead letters and raise the same errors."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import WorkerSettings
from refinery.routing.batch import Output, RoutedBatch
from refinery.routing.dlq import DlqReason
from refinery.worker import inflight
from refinery.worker import writer as writer_module
from refinery.worker.retry import Backoff
from refinery.worker.writer import BatchWriter
from tests.refinery.worker.test_committers import FakeRecord, FakeTopics

DLQ = "_test-dlq"
# what one produce call does: go through, or raise one of these
OUTCOMES = {
    "ok": None,
    "full": BufferError("Local: Queue full"),
    "too large": KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
    "transient": KafkaException(KafkaError(KafkaError._TRANSPORT)),
    "other": ValueError("not a producer error"),
}


class ScriptedProducer:
    """Each produce call takes the next outcome of its script (then goes through)."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.produced: list[tuple[Any, ...]] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
                on_delivery: Any = None) -> None:  # fmt: skip
        error = OUTCOMES[self.script.pop(0)] if self.script else None
        if error is not None:
            raise error
        self.produced.append((topic, value, key, headers, on_delivery))

    def poll(self, _timeout: float = 0) -> int:
        return 0


class _Record(FakeRecord):
    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)  # dead letters carry it: the same in both runs


def _batch(routes: list[int]) -> RoutedBatch:
    batch = RoutedBatch()
    for i, route in enumerate(routes):
        record = _Record(i, f"id{i}".encode())
        batch.records.append(record)
        batch.outputs.append(Output(f"prod.s.t{route}.c-v1", record, f"route-{route}"))
    return batch


def _write(script: list[str], routes: list[int], compiled: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    if not compiled:
        monkeypatch.setattr(writer_module, "produce_outputs", None)
    producer = ScriptedProducer(script)
    settings_ = WorkerSettings(dlq_topic=DLQ)
    writer = BatchWriter(settings_, FakeTopics(), lambda: producer, "w1")  # type: ignore[arg-type]
    batch = _batch(routes)

    def on_delivery(_err: Any, _msg: Any) -> None:
        pass

    try:
        sent: Any = writer.write(batch, on_delivery, dead_sent={})
    except (KafkaException, ValueError) as exc:  # the same exception, at the same point, from both
        sent = (type(exc), str(exc))
    finally:
        monkeypatch.undo()
    produced = [(t, v, k, h, cb is on_delivery) for t, v, k, h, cb in producer.produced]
    return sent, produced, dict(batch.counts.routed), dict(batch.counts.dlq), batch.rejected


def test_it_is_built_where_ci_runs() -> None:
    assert writer_module.COMPILED_WRITES


@settings(max_examples=200, deadline=None)
@given(
    routes=st.lists(st.integers(0, 3), max_size=25),
    script=st.lists(st.sampled_from(sorted(OUTCOMES)), max_size=30),
)
def test_compiled_loop_writes_exactly_what_the_python_loop_writes(
    routes: list[int], script: list[str]
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled = _write(script, routes, True, monkeypatch)
    with pytest.MonkeyPatch.context() as monkeypatch:
        reference = _write(script, routes, False, monkeypatch)
    assert compiled == reference


def test_a_refused_output_becomes_a_dead_letter_and_the_rest_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    sent, produced, routed, dlq, rejected = _write(["ok", "too large", "full"], [0, 1, 2], True, monkeypatch)
    assert sent == 3
    assert [t for t, *_ in produced] == ["prod.s.t0.c-v1", DLQ, "prod.s.t2.c-v1"]
    assert routed == {"route-0": 1, "route-2": 1}
    assert dlq == {DlqReason.OUTPUT_REJECTED.value: 1}
    assert list(rejected) == [1]


@settings(max_examples=100, deadline=None)
@given(reports=st.lists(st.booleans(), max_size=30), extra=st.integers(0, 5))
def test_the_compiled_delivery_counter_counts_like_the_python_one(reports: list[bool], extra: int) -> None:
    assert inflight.COMPILED_DELIVERY_COUNTER
    counters = [inflight.DeliveryCounter(), inflight._DeliveryCounter()]
    error = KafkaError(KafkaError._MSG_TIMED_OUT)
    for counter in counters:
        counter.left += len(reports) + extra  # as the committers add what they produced
        for i, failed in enumerate(reports):
            counter(error if failed else None, f"message {i}")
    compiled, reference = counters
    assert compiled.left == reference.left == extra
    assert compiled.failures == reference.failures
    assert [m for _, m in compiled.failures] == [f"message {i}" for i, failed in enumerate(reports) if failed]


def test_a_batch_tracker_is_its_records_delivery_callback() -> None:
    tracker = inflight.BatchTracker(RoutedBatch(), 0.0, Backoff(initial_s=0.1, max_s=1.0, max_attempts=3))
    assert tracker.on_delivery is tracker and isinstance(tracker, inflight.DeliveryCounter)
    tracker.left = 2
    tracker(None, "m1")
    tracker(KafkaError(KafkaError._MSG_TIMED_OUT), "m2")
    assert tracker.reported and not tracker.done and [m for _, m in tracker.failures] == ["m2"]
    tracker.failures = []
    assert tracker.done
    with pytest.raises(TypeError):
        tracker(None)  # a delivery report is (error, message)

"""Both committers in-process with fake clients: per-record outcomes, bounded retries, pauses.

The fake producer delivers on poll/flush and fails the records a test's policy picks, with real
`KafkaError`s; like the worker's producer (`delivery.report.only.error`) it reports failures only, and
`len()` counts what it has not delivered yet. The fake consumer records commits. Real-broker
behaviour is in tests/reliability/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from common.config import WorkerSettings
from common.limits import record_size
from refinery.dedup.store import DedupChangelog, DedupStore
from refinery.routing.batch import Output, RoutedBatch
from refinery.routing.dlq import REASON, VALUE_TRUNCATED, DlqReason
from refinery.worker.at_least_once import AtLeastOnceCommitter
from refinery.worker.committing import CommitterParts, Completion
from refinery.worker.health import Health
from refinery.worker.metrics import WorkerMetrics
from refinery.worker.progress import PROGRESS_TAG
from refinery.worker.transactional import TransactionalCommitter
from refinery.worker.watchdog import CallWatch
from refinery.worker.writer import BatchWriter

DLQ = "_test-dlq"
Policy = Callable[[str, bytes | None, int], KafkaError | None]  # (topic, key, attempt) -> error or None


class FakeMessage:
    def __init__(self, topic: str, key: Any, value: Any) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> Any:
        return self._key

    def value(self) -> Any:
        return self._value


class FakeRecord:
    """A consumed ingest record."""

    def __init__(self, offset: int, key: bytes, value: bytes = b"v" * 100) -> None:
        self._offset, self._key, self._value = offset, key, value

    def topic(self) -> str:
        return "prod.s.ingest.all-v1"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("ce_id", self._key)]

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))

    def error(self) -> None:
        return None


class FakeProducer:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.attempts: dict[tuple[str, Any], int] = {}
        self.written: list[tuple[str, Any, Any, Any]] = []  # acknowledged (topic, key, value, headers)
        self._queue: list[tuple[Any, FakeMessage, KafkaError | None, tuple[str, Any, Any, Any]]] = []
        self.transactions: list[str] = []  # "commit" / "abort"
        self._open: list[tuple[str, Any, Any, Any]] | None = None
        self.offsets: list[Any] = []
        self.stuck = False  # nothing is delivered (acknowledged or failed) while set
        self.held: set[Any] = set()  # keys of records not delivered while in it
        self.success_reports = False  # report acknowledged records too (WorkerSettings.success_reports)

    def __len__(self) -> int:
        return len(self._queue)

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
                on_delivery: Any = None) -> None:  # fmt: skip
        n = self.attempts[(topic, key)] = self.attempts.get((topic, key), 0) + 1
        error = self.policy(topic, key, n)
        self._queue.append((on_delivery, FakeMessage(topic, key, value), error, (topic, key, value, headers)))

    def poll(self, _timeout: float = 0) -> int:
        if self.stuck:
            return 0
        queue = [item for item in self._queue if item[1].key() not in self.held]
        self._queue = [item for item in self._queue if item[1].key() in self.held]
        for callback, msg, error, record in queue:
            if error is None:
                (self._open if self._open is not None else self.written).append(record)
            if callback is not None and (error is not None or self.success_reports):
                callback(error, msg)
        return len(queue)

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return len(self._queue)

    def purge(self, **_kwargs: Any) -> None:
        self._queue.clear()

    # transactions (a commit_errors entry fails the next commit_transaction; a retriable one leaves the
    # commit in progress, as librdkafka's timed-out commit goes on in the background)
    commit_errors: list[KafkaError]
    committing = False

    def begin_transaction(self) -> None:
        if self.committing:
            raise KafkaException(KafkaError(KafkaError._STATE, "commit in progress"))
        self._open = []

    def send_offsets_to_transaction(self, offsets: Any, _metadata: Any, _timeout: float = -1) -> None:
        self.offsets.append(offsets)

    def commit_transaction(self, _timeout: float = 0) -> None:
        assert self._open is not None
        errors = getattr(self, "commit_errors", [])
        if errors:
            error = errors.pop(0)
            self.committing = error.retriable()
            raise KafkaException(error)
        self.committing = False
        self.written += self._open
        self._open = None
        self.transactions.append("commit")

    def abort_transaction(self, _timeout: float = 0) -> None:
        if self._open is None or self.committing:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self._open = None
        self.transactions.append("abort")


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []
        self.refuse: set[int] = set()  # partitions whose offsets a synchronous commit fails for

    def commit(self, offsets: Any, asynchronous: bool = True) -> list[Any] | None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        if asynchronous:
            return None
        refused = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
        return [CommittedOffset(tp, refused if tp.partition in self.refuse else None) for tp in offsets]

    def consumer_group_metadata(self) -> object:
        return object()


class CommittedOffset:
    """What a synchronous commit returns per partition (confluent-kafka's TopicPartition with `error`)."""

    def __init__(self, tp: TopicPartition, error: KafkaError | None) -> None:
        self.topic, self.partition, self.offset, self.error = tp.topic, tp.partition, tp.offset, error

    def consumer_group_metadata(self) -> object:
        return object()


class FakeTopics:
    def create_missing(self, _topics: Any) -> dict[str, Exception]:
        return {}

    def forget(self, _topic: str) -> None:
        pass


def ok(_topic: str, _key: Any, _attempt: int) -> KafkaError | None:
    return None


def settings(**overrides: Any) -> WorkerSettings:
    base: dict[str, Any] = {
        "dlq_topic": DLQ, "retry_initial_backoff_s": 0.01, "retry_max_backoff_s": 0.02,
        "retry_max_attempts": 3, "pause_probe_interval_s": 0.05, "commit_interval_s": 0,
    }  # fmt: skip
    return WorkerSettings(**{**base, **overrides})


def batch(n: int = 3, value: bytes = b"v" * 100) -> RoutedBatch:
    b = RoutedBatch()
    for i in range(n):
        record = FakeRecord(i, f"id{i}".encode(), value)
        b.records.append(record)
        b.outputs.append(Output("prod.s.t.c-v1", record, "r"))
    b.first_offsets[("prod.s.ingest.all-v1", 0)] = 0
    b.next_offsets[("prod.s.ingest.all-v1", 0)] = n
    return b


def build(
    kind: type, policy: Policy, factory: Callable[[], FakeProducer] | None = None, **overrides: Any
) -> tuple[Any, FakeProducer, FakeConsumer, Health]:
    s = settings(**overrides)
    producer, consumer = FakeProducer(policy), FakeConsumer()
    metrics = WorkerMetrics()
    health = Health(metrics, stall_after_s=30)
    health.started()
    writer = BatchWriter(s, FakeTopics(), factory or (lambda: producer), "w1")  # type: ignore[arg-type]
    producer = writer.producer  # type: ignore[assignment]
    dedup = DedupStore(window_s=60, max_ids_per_partition=100)
    changelog = DedupChangelog({}, "_test-dedup", group_id="g")
    completion = Completion(dedup, metrics, health, None)
    watch = CallWatch(health, metrics, grace_s=s.watchdog_grace_s, exit_after_s=s.watchdog_exit_after_s)
    committer = kind(
        CommitterParts(s, writer, lambda: consumer, dedup, changelog, completion, health, metrics, watch)
    )
    return committer, producer, consumer, health


def run_until(committer: Any, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        committer.service()
        time.sleep(0.005)


PROGRESS = WorkerSettings().progress_log


def outputs_written(producer: FakeProducer) -> list[Any]:
    return sorted(k for t, k, _, _ in producer.written if t not in (DLQ, PROGRESS))


def progress_written(producer: FakeProducer) -> list[tuple[Any, Any]]:
    return [(k, v) for t, k, v, _ in producer.written if t == PROGRESS]


def dead_written(producer: FakeProducer) -> list[tuple[Any, bytes]]:
    return [(k, dict(h)[REASON]) for t, k, _, h in producer.written if t == DLQ]


# -- at-least-once -----------------------------------------------------------------------------------
def test_at_least_once_commits_after_every_record_is_acknowledged() -> None:
    committer, producer, consumer, health = build(AtLeastOnceCommitter, ok)
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert outputs_written(producer) == [b"id0", b"id1", b"id2"]
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]
    assert health.state == "running"


def test_at_least_once_commits_nothing_while_the_producer_has_records_outstanding() -> None:
    """No success reports: a batch is acknowledged only once the producer has nothing outstanding,
    also when a later batch was written meanwhile; then both complete, in consume order."""
    committer, producer, consumer, _health = build(AtLeastOnceCommitter, ok)
    producer.stuck = True
    first = batch()
    committer.submit(first, time.monotonic())
    second = batch()
    second.first_offsets = {("prod.s.ingest.all-v1", 0): 3}
    second.next_offsets = {("prod.s.ingest.all-v1", 0): 6}
    committer.submit(second, time.monotonic())
    for _ in range(5):
        committer.service()
    assert consumer.commits == [] and not committer.idle() and producer.written == []
    producer.stuck = False
    run_until(committer, committer.idle)
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 6}]
    assert len(producer.written) == 6


def test_at_least_once_in_flight_bounds_at_their_defaults() -> None:
    """Many small batches (a live feed) may be in flight, full ones only as many as before (4 x 2,000
    records); one batch always goes, whatever its size."""
    s = settings()
    assert (s.max_inflight_batches, s.inflight_records_limit) == (64, 4 * 2_000)
    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok)
    producer.stuck = True
    for i in range(63):
        committer.submit(batch_on(i, 0, 10), time.monotonic())
    assert committer.has_room()  # 63 batches, 630 records
    committer.submit(batch_on(63, 0, 10), time.monotonic())
    assert not committer.has_room()  # the 64th batch: the count is reached
    committer.abandon()

    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok)
    producer.stuck = True
    for i in range(3):
        committer.submit(batch_on(i, 0, 2_000), time.monotonic())
    committer.submit(batch_on(3, 0, 1_999), time.monotonic())
    assert committer.has_room()  # 7,999 records: one short of the bound
    committer.submit(batch_on(4, 0, 1), time.monotonic())
    assert not committer.has_room()  # 8,000
    producer.stuck = False
    run_until(committer, committer.idle)
    assert committer.has_room()

    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok, max_inflight_records=100)
    producer.stuck = True
    assert committer.has_room()  # nothing in flight: a batch larger than the bound goes alone
    committer.submit(batch_on(0, 0, 500), time.monotonic())
    assert not committer.has_room()


def test_records_of_dedup_batches_in_flight_count_as_seen_until_recorded() -> None:
    """The next batch is routed while earlier ones are in flight: a message id of a dedup batch not yet
    acknowledged is already a duplicate; the batches without dedup ids are not looked through."""
    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok)
    producer.stuck = True
    tp = ("prod.s.ingest.all-v1", 0)
    deduplicating = batch_on(0, 0, 3)
    deduplicating.dedup_ids = {tp: {b"id1": None}}
    committer.submit(deduplicating, time.monotonic())
    committer.submit(batch_on(1, 0, 3), time.monotonic())
    assert committer.seen.seen(tp, b"id1") and not committer.seen.seen(tp, b"id2")
    assert list(committer._inflight.deduplicating) == [next(iter(committer._inflight))]
    producer.stuck = False
    run_until(committer, committer.idle)
    assert not committer._inflight.deduplicating and committer._inflight.records == 0
    assert committer.seen.seen(tp, b"id1")  # now from the dedup store itself


@pytest.mark.parametrize("success_reports", [False, True])
def test_at_least_once_batch_completion_with_and_without_success_reports(success_reports: bool) -> None:
    """A later batch's record still outstanding: with success reports the first batch completes on its
    own acknowledgements (latency); without, it waits until nothing is outstanding (no report per record)."""
    committer, producer, consumer, _health = build(AtLeastOnceCommitter, ok)
    producer.success_reports = success_reports
    committer.submit(batch(), time.monotonic())
    second = RoutedBatch()
    record = FakeRecord(3, b"late")
    second.records.append(record)
    second.outputs.append(Output("prod.s.t.c-v1", record, "r"))
    second.first_offsets = {("prod.s.ingest.all-v1", 0): 3}
    second.next_offsets = {("prod.s.ingest.all-v1", 0): 4}
    producer.held = {b"late"}
    committer.submit(second, time.monotonic())
    for _ in range(5):
        committer.service()
    assert consumer.commits == ([{("prod.s.ingest.all-v1", 0): 3}] if success_reports else [])
    producer.held = set()
    run_until(committer, committer.idle)
    assert consumer.commits[-1] == {("prod.s.ingest.all-v1", 0): 4}
    assert outputs_written(producer) == [b"id0", b"id1", b"id2", b"late"]


@pytest.mark.parametrize("counting", [False, True])
def test_a_held_loop_waits_for_reports_and_leaves_the_linger_when_acknowledgements_are_counted(
    monkeypatch: pytest.MonkeyPatch, counting: bool
) -> None:
    """Counted acknowledgements complete batches one by one: a held loop waits for the next ones with
    poll(); without them only a drain completes a batch, and flush() sends everything at once for it."""
    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok)
    calls: list[str] = []
    monkeypatch.setattr(producer, "flush", lambda _t=0: calls.append("flush") or 0)
    monkeypatch.setattr(producer, "poll", lambda _t=0: calls.append("poll") or 0)
    monkeypatch.setattr(BatchWriter, "counts_acks", property(lambda _self: counting))
    committer.wait(0.005)
    assert calls == (["poll"] if counting else ["flush"])


@pytest.mark.parametrize(
    ("success_reports", "transactional_id", "only_error"),
    [(False, None, True), (True, None, False), (True, "tx", True)],  # exactly-once: failures only, always
)
def test_the_producer_reports_successes_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, success_reports: bool, transactional_id: str | None, only_error: bool
) -> None:
    from refinery.worker import clients

    built: list[dict[str, Any]] = []

    class Recording:
        def __init__(self, conf: dict[str, Any]) -> None:
            built.append(conf)

        def init_transactions(self, _timeout: float) -> None:
            pass

    monkeypatch.setattr(clients, "Producer", Recording)
    clients.producer_factory(WorkerSettings(success_reports=success_reports), {}, transactional_id)()
    assert built[0]["delivery.report.only.error"] is only_error


def test_at_least_once_waits_for_a_replaced_producer_that_still_holds_records() -> None:
    """After a fatal error the old producer's purge must report what it held; while it has not, no
    batch counts as acknowledged, even when the new producer has nothing outstanding."""
    committer, old, consumer, _health = build(AtLeastOnceCommitter, ok)
    writer = committer._writer
    committer.submit(batch(), time.monotonic())
    old.stuck = True
    old.purge = lambda **_kw: None  # type: ignore[method-assign]  # a purge that reports nothing
    new = FakeProducer(ok)
    writer._producer_factory = lambda: new
    writer.replace_producer()
    for _ in range(5):
        committer.service()
    assert consumer.commits == [] and not committer.idle()
    old.stuck = False
    run_until(committer, committer.idle)
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]


def test_at_least_once_dead_letters_a_record_kafka_refuses_and_writes_the_rest_once() -> None:
    def policy(topic: str, key: Any, _n: int) -> KafkaError | None:
        return (
            KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if (topic, key) == ("prod.s.t.c-v1", b"id1") else None
        )

    committer, producer, consumer, health = build(AtLeastOnceCommitter, policy)
    b = batch()
    committer.submit(b, time.monotonic())
    run_until(committer, committer.idle)
    assert outputs_written(producer) == [b"id0", b"id2"]
    assert dead_written(producer) == [(b"id1", DlqReason.OUTPUT_REJECTED.value.encode())]
    assert producer.attempts[("prod.s.t.c-v1", b"id0")] == 1  # nothing written twice
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]
    assert b.counts.routed["r"] == 2 and b.counts.dlq["output_rejected"] == 1
    assert health.state == "running"


def test_at_least_once_resends_only_the_record_that_failed_transiently() -> None:
    def policy(topic: str, key: Any, n: int) -> KafkaError | None:
        return KafkaError(KafkaError._MSG_TIMED_OUT) if key == b"id2" and n == 1 else None

    committer, producer, consumer, _health = build(AtLeastOnceCommitter, policy)
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert outputs_written(producer) == [b"id0", b"id1", b"id2"]
    assert [producer.attempts[("prod.s.t.c-v1", k)] for k in (b"id0", b"id1", b"id2")] == [1, 1, 2]
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]


def test_at_least_once_pauses_when_the_retry_budget_is_spent_and_resumes_when_it_clears() -> None:
    broken = {"on": True}

    def policy(_topic: str, key: Any, _n: int) -> KafkaError | None:
        return KafkaError(KafkaError._MSG_TIMED_OUT) if broken["on"] and key == b"id0" else None

    committer, producer, consumer, health = build(AtLeastOnceCommitter, policy)
    committer.submit(batch(), time.monotonic())
    run_until(committer, lambda: health.state == "paused")
    assert health.paused_reason == "retry_budget_spent" and not health.readiness().ready
    assert consumer.commits == []  # nothing committed while a record of the batch is missing
    tries = producer.attempts[("prod.s.t.c-v1", b"id0")]
    time.sleep(0.2)
    for _ in range(20):  # paused: probes at pause_probe_interval_s, not a spin
        committer.service()
        time.sleep(0.005)
    assert producer.attempts[("prod.s.t.c-v1", b"id0")] <= tries + 4
    broken["on"] = False
    run_until(committer, committer.idle)
    assert health.state == "running" and consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]
    assert outputs_written(producer) == [b"id0", b"id1", b"id2"]


def test_at_least_once_pauses_at_once_when_the_dlq_refuses_a_dead_letter() -> None:
    dlq_open = {"on": False}

    def policy(topic: str, key: Any, _n: int) -> KafkaError | None:
        if topic == DLQ and not dlq_open["on"]:
            return KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
        return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if key == b"id1" and topic != DLQ else None

    committer, producer, consumer, health = build(AtLeastOnceCommitter, policy)
    committer.submit(batch(), time.monotonic())
    run_until(committer, lambda: health.state == "paused")
    assert health.paused_reason == "dlq_unwritable" and "refused a dead letter" in (health.last_error or "")
    assert consumer.commits == []
    dlq_open["on"] = True
    run_until(committer, committer.idle)
    assert dead_written(producer) == [(b"id1", b"output_rejected")] and health.state == "running"
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}]


def test_a_dead_letter_of_a_record_too_large_to_forward_is_cut_to_fit() -> None:
    committer, producer, _consumer, _health = build(AtLeastOnceCommitter, ok)
    b = RoutedBatch()
    record = FakeRecord(0, b"big", b"x" * 5_000_000)
    b.records.append(record)
    b.first_offsets[("prod.s.ingest.all-v1", 0)], b.next_offsets[("prod.s.ingest.all-v1", 0)] = 0, 1
    from refinery.routing.batch import DeadLetter

    b.dead.append(DeadLetter(record, DlqReason.VALUE_TOO_LARGE, "too large"))
    committer.submit(b, time.monotonic())
    run_until(committer, committer.idle)
    [(_topic, key, value, headers)] = producer.written
    assert record_size(key, value, headers) <= WorkerSettings().max_record_bytes
    assert dict(headers)[VALUE_TRUNCATED] == b"true"


# -- exactly-once ------------------------------------------------------------------------------------
def test_transactional_writes_a_refused_output_as_a_dead_letter_in_the_next_transaction() -> None:
    def policy(topic: str, key: Any, _n: int) -> KafkaError | None:
        return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if topic != DLQ and key == b"id1" else None

    committer, producer, _consumer, health = build(TransactionalCommitter, policy, exactly_once=True)
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert producer.transactions == ["abort", "commit"]
    assert outputs_written(producer) == [b"id0", b"id2"]  # only the committed transaction is visible
    assert dead_written(producer) == [(b"id1", b"output_rejected")]
    assert len(producer.offsets) == 1 and health.state == "running"  # the aborted attempt got no further
    # where the input resumes travels in the same transaction, and the offsets it commits are tagged
    assert progress_written(producer) == [(b"prod.s.ingest.all-v1:0", b"3")]
    assert [(tp.offset, tp.metadata) for tp in producer.offsets[0]] == [(3, PROGRESS_TAG)]


def test_transactional_retries_a_transient_failure_then_pauses_when_the_budget_is_spent() -> None:
    def policy(topic: str, _key: Any, _n: int) -> KafkaError | None:
        return KafkaError(KafkaError.NOT_ENOUGH_REPLICAS) if topic != DLQ else None

    committer, producer, _consumer, health = build(TransactionalCommitter, policy, exactly_once=True)
    committer.submit(batch(), time.monotonic())
    run_until(committer, lambda: health.state == "paused")
    assert health.paused_reason == "retry_budget_spent"
    assert "commit" not in producer.transactions and producer.written == []
    aborts = producer.transactions.count("abort")
    assert aborts == 3  # retry_max_attempts
    producer.policy = ok
    run_until(committer, committer.idle)
    assert producer.transactions[-1] == "commit" and outputs_written(producer) == [b"id0", b"id1", b"id2"]
    assert health.state == "running"


def test_transactional_resumes_a_timed_out_commit_and_never_writes_the_batch_again() -> None:
    """A commit that timed out goes on in the background: aborting and writing the batch again would
    commit it twice once the first commit lands. The committer calls commit_transaction again."""
    committer, producer, _consumer, health = build(TransactionalCommitter, ok, exactly_once=True)
    timed_out = KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True)
    producer.commit_errors = [timed_out, timed_out]
    committer.submit(batch(), time.monotonic())
    run_until(committer, lambda: health.state == "retrying")  # once the records are delivered
    assert "committing again" in (health.last_error or "")
    run_until(committer, committer.idle)
    assert producer.transactions == ["commit"]  # no abort, one transaction
    assert outputs_written(producer) == [b"id0", b"id1", b"id2"]  # each once
    assert len(producer.offsets) == 1 and health.state == "running"


def test_transactional_aborts_and_writes_again_when_the_commit_requires_it() -> None:
    committer, producer, _consumer, health = build(TransactionalCommitter, ok, exactly_once=True)
    producer.commit_errors = [KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, "refused", txn_requires_abort=True)]
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert producer.transactions == ["abort", "commit"]
    assert outputs_written(producer) == [b"id0", b"id1", b"id2"] and health.state == "running"


def test_transactional_lets_the_next_batch_be_routed_while_its_records_are_delivered() -> None:
    """A first attempt produces its records and returns; the loop may route one more batch (`has_room`)
    but submits it only once the open transaction committed (`accepts`). The batch routed ahead sees
    the open batch's message ids as written (dedup)."""
    committer, producer, _consumer, _health = build(TransactionalCommitter, ok, exactly_once=True)
    first = batch()
    first.dedup_ids = {("prod.s.ingest.all-v1", 0): {b"id0": None}}
    producer.held = {b"id2"}  # not delivered yet
    committer.submit(first, time.monotonic())
    committer.service()
    assert producer.transactions == [] and not committer.idle()
    assert committer.has_room() and not committer.accepts(batch())
    assert committer.seen.seen(("prod.s.ingest.all-v1", 0), b"id0")
    producer.held = set()
    run_until(committer, committer.idle)
    assert producer.transactions == ["commit"] and committer.accepts(batch())
    assert sorted(k for t, k, _, _ in producer.written if t == "prod.s.t.c-v1") == [b"id0", b"id1", b"id2"]
    assert len(producer.offsets) == 1


def test_transactional_fails_an_attempt_whose_records_are_not_delivered_in_time() -> None:
    """The open transaction's records get `drain_timeout_s`; then the attempt is aborted and the batch
    written again, on a new producer (what the first one wrote may have landed)."""
    made: list[FakeProducer] = []

    def factory() -> FakeProducer:
        made.append(FakeProducer(ok))
        return made[-1]

    committer, producer, _consumer, health = build(
        TransactionalCommitter, ok, factory, exactly_once=True, drain_timeout_s=0.2
    )
    producer.held = {b"id1"}
    committer.submit(batch(), time.monotonic())
    run_until(committer, lambda: producer.transactions == ["abort"])
    assert health.state == "retrying" and "not acknowledged" in (health.last_error or "")
    run_until(committer, committer.idle)
    assert len(made) == 2 and made[1].transactions == ["commit"]
    assert outputs_written(made[1]) == [b"id0", b"id1", b"id2"]


def test_transactional_abandon_aborts_the_open_transaction() -> None:
    committer, producer, _consumer, _health = build(TransactionalCommitter, ok, exactly_once=True)
    producer.held = {b"id0"}
    committer.submit(batch(), time.monotonic())
    assert committer.abandon() == 1 and committer.idle()
    assert producer.transactions == ["abort"] and producer.offsets == []


@pytest.mark.parametrize("kind", [AtLeastOnceCommitter, TransactionalCommitter])
def test_abandon_drops_what_is_in_flight(kind: type) -> None:
    committer, _producer, consumer, _health = build(
        kind, lambda *_: KafkaError(KafkaError._MSG_TIMED_OUT), exactly_once=kind is TransactionalCommitter
    )
    committer.submit(batch(), time.monotonic())
    committer.service()
    assert not committer.idle()
    assert committer.abandon() == 1 and committer.idle()
    assert consumer.commits == []


# -- offsets of partitions moving between workers ------------------------------------------------------
def batch_on(partition: int, first: int, n: int) -> RoutedBatch:
    b = batch(n)
    b.first_offsets = {("prod.s.ingest.all-v1", partition): first}
    b.next_offsets = {("prod.s.ingest.all-v1", partition): first + n}
    return b


def test_a_released_partition_is_never_committed_again() -> None:
    """Any member may commit any partition: the offset of a partition we gave away, committed with a
    later revoke's synchronous commit, moved the new owner's offset back (cluster scale-out repeated
    hundreds of records that way)."""
    committer, _producer, consumer, _health = build(AtLeastOnceCommitter, ok, commit_interval_s=3600)
    committer.submit(batch_on(0, 0, 3), time.monotonic())
    committer.submit(batch_on(1, 0, 3), time.monotonic())
    assert committer.drain(1.0)  # the first revoke: both partitions committed
    assert consumer.commits[-1] == {("prod.s.ingest.all-v1", 0): 3, ("prod.s.ingest.all-v1", 1): 3}
    committer.release([TopicPartition("prod.s.ingest.all-v1", 1)])  # partition 1 went to another worker
    # an earlier asynchronous commit's failure, reported only now
    committer.recommit([TopicPartition("prod.s.ingest.all-v1", 1, 3)])
    before = len(consumer.commits)
    committer.submit(batch_on(0, 3, 3), time.monotonic())
    assert committer.drain(1.0)  # the next revoke commits partition 0 alone
    assert consumer.commits[before:] == [{("prod.s.ingest.all-v1", 0): 6}]


def test_a_failed_commit_of_an_older_offset_is_not_committed_after_a_newer_one() -> None:
    committer, _producer, consumer, _health = build(AtLeastOnceCommitter, ok)
    committer.submit(batch_on(0, 0, 3), time.monotonic())
    run_until(committer, committer.idle)
    committer.submit(batch_on(0, 3, 3), time.monotonic())
    run_until(committer, committer.idle)
    assert consumer.commits == [{("prod.s.ingest.all-v1", 0): 3}, {("prod.s.ingest.all-v1", 0): 6}]
    committer.recommit([TopicPartition("prod.s.ingest.all-v1", 0, 3)])  # the first one's callback: failed
    committer.recommit([TopicPartition("prod.s.ingest.all-v1", 1, 3)])  # and a partition not ours
    committer.service()
    assert len(consumer.commits) == 2, consumer.commits  # 3 after 6 would have moved the offset back
    committer.recommit([TopicPartition("prod.s.ingest.all-v1", 0, 6)])  # the newest failing is repeated
    committer.service()
    assert consumer.commits[2:] == [{("prod.s.ingest.all-v1", 0): 6}]


def test_a_synchronous_commit_failing_for_some_partitions_commits_them_again() -> None:
    committer, _producer, consumer, _health = build(AtLeastOnceCommitter, ok, commit_interval_s=3600)
    committer.submit(batch_on(0, 0, 3), time.monotonic())
    committer.submit(batch_on(1, 0, 3), time.monotonic())
    consumer.refuse = {1}
    assert not committer.drain(1.0)
    assert consumer.commits[-1] == {("prod.s.ingest.all-v1", 0): 3, ("prod.s.ingest.all-v1", 1): 3}
    consumer.refuse = set()
    before = len(consumer.commits)
    assert committer.drain(1.0)
    assert consumer.commits[before:] == [{("prod.s.ingest.all-v1", 1): 3}]  # partition 0's was confirmed


def test_transactional_writes_again_on_a_new_producer_after_unacknowledged_writes() -> None:
    """Writes that failed or timed out may have landed in the aborted transaction; written again on the
    same producer epoch their sequence numbers can be taken for duplicates (and the new copies dropped),
    so the next attempt runs on a new producer (a new epoch). A failure after every write was
    acknowledged (here: the group refusing the offsets) keeps the producer."""
    made: list[FakeProducer] = []
    timeouts = [KafkaError(KafkaError._MSG_TIMED_OUT)]  # the first write of id1 times out, once

    def first_id1_times_out(_topic: str, key: Any, _attempt: int) -> KafkaError | None:
        return timeouts.pop() if key == b"id1" and timeouts else None

    def factory() -> FakeProducer:
        made.append(FakeProducer(first_id1_times_out))
        return made[-1]

    committer, _producer, _consumer, health = build(TransactionalCommitter, ok, factory, exactly_once=True)
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert len(made) == 2 and made[0].transactions == ["abort"] and made[1].transactions == ["commit"]
    assert outputs_written(made[1]) == [b"id0", b"id1", b"id2"] and health.state == "running"

    made.clear()
    committer, producer, _consumer, _health = build(TransactionalCommitter, ok, factory, exactly_once=True)
    refused = KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID))
    calls = {"n": 0}

    def send_offsets(*_args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise refused

    producer.send_offsets_to_transaction = send_offsets  # type: ignore[method-assign]
    committer.submit(batch(), time.monotonic())
    run_until(committer, committer.idle)
    assert len(made) == 1 and producer.transactions == ["abort", "commit"]

"""`wait_writable` against a fake admin client: it looks again while partitions answer "not there yet",
gives up at its deadline with a transient TopicCreationError, and does not wait for a topic that answers
anything else. The real broker's side is in test_kafka_admin.py."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition

from common.kafka_admin import TopicCreationError, wait_writable


@dataclass
class _Partition:
    id: int


@dataclass
class _Description:
    partitions: list[_Partition]


def _answered(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _failed(code: int) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(KafkaException(KafkaError(code)))
    return future


class FakeAdmin:
    """Topics with 2 partitions each; a partition answers ListOffsets after `missing_for` looks."""

    def __init__(self, missing_for: int, error: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.missing_for = missing_for
        self.error = error
        self.looks: dict[tuple[str, int], int] = {}
        self.describes = 0

    def describe_topics(self, topics: TopicCollection, request_timeout: float) -> dict[str, Future[Any]]:
        self.describes += 1
        return {t: _answered(_Description([_Partition(0), _Partition(1)])) for t in topics.topic_names}

    def list_offsets(self, requests: dict[TopicPartition, Any], request_timeout: float) -> dict[Any, Any]:
        answers = {}
        for tp in requests:
            key = (tp.topic, tp.partition)
            self.looks[key] = self.looks.get(key, 0) + 1
            there = self.looks[key] > self.missing_for
            answers[tp] = _answered(object()) if there else _failed(self.error)
        return answers


def test_looks_again_until_every_partition_answers() -> None:
    admin = FakeAdmin(missing_for=2)
    failed = wait_writable(admin, ["prod.x.t.c-v1", "prod.x.u.c-v1"], time.monotonic() + 10, 10)  # type: ignore[arg-type]
    assert failed == {}
    assert admin.looks == {("prod.x.t.c-v1", 0): 3, ("prod.x.t.c-v1", 1): 3,
                           ("prod.x.u.c-v1", 0): 3, ("prod.x.u.c-v1", 1): 3}  # fmt: skip
    assert admin.describes == 1


def test_gives_up_at_the_deadline_with_a_transient_error() -> None:
    admin = FakeAdmin(missing_for=10**9)
    began = time.monotonic()
    failed = wait_writable(admin, ["prod.x.t.c-v1"], began + 0.3, 30)  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - began < 2
    error = failed["prod.x.t.c-v1"]
    assert isinstance(error, TopicCreationError) and error.error is None  # transient: the batch is retried
    assert "did not become writable within 30 s" in str(error) and "Not leader" in str(error)


def test_does_not_wait_for_a_topic_it_cannot_look_at() -> None:
    admin = FakeAdmin(missing_for=10**9, error=KafkaError.TOPIC_AUTHORIZATION_FAILED)
    began = time.monotonic()
    assert wait_writable(admin, ["prod.x.t.c-v1"], began + 10, 10) == {}  # type: ignore[arg-type]
    assert time.monotonic() - began < 1
    assert admin.looks == {("prod.x.t.c-v1", 0): 1, ("prod.x.t.c-v1", 1): 1}


def test_nothing_to_wait_for() -> None:
    admin = FakeAdmin(missing_for=0)
    assert wait_writable(admin, [], time.monotonic() + 10, 10) == {}  # type: ignore[arg-type]
    assert admin.describes == 0 and admin.looks == {}

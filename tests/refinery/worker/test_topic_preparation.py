"""Derived topics created on first use, all of a batch's new topics in one request, with each topic's
own outcome (`BatchWriter.prepare_topics`), against a fake ensurer. The real CreateTopics answers are
covered in tests/reliability/test_topic_creation_timeout.py and tests/common/test_kafka_admin.py."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from common.errors import RefineryError, TopicNameError
from common.kafka_admin import TopicCreationError
from refinery.routing.batch import Output, RoutedBatch
from refinery.routing.dlq import DlqReason
from refinery.worker.writer import BatchWriter, TransientWriteError
from tests.refinery.worker.test_committers import FakeRecord, settings


class ScriptedTopics:
    """Answers each create_missing call with the failures scripted for its topics; records the calls."""

    def __init__(self, failures: dict[str, RefineryError]) -> None:
        self.failures = failures
        self.calls: list[list[str]] = []

    def create_missing(self, topics: Any) -> dict[str, RefineryError]:
        asked = list(topics)
        self.calls.append(sorted(asked))
        return {t: self.failures[t] for t in asked if t in self.failures}

    def forget(self, _topic: str) -> None:
        pass


def batch_to(*topics: str) -> RoutedBatch:
    b = RoutedBatch()
    b.outputs = [Output(t, FakeRecord(i, f"k{i}".encode()), "r") for i, t in enumerate(topics)]
    return b


def writer(topics: ScriptedTopics) -> BatchWriter:
    return BatchWriter(settings(), topics, lambda: None, "w1")  # type: ignore[arg-type, return-value]


T1, T2, T3, T4 = (f"prod.s.t{i}.c-v1" for i in range(1, 5))


def test_new_topics_of_a_batch_are_created_in_one_request_and_once() -> None:
    topics = ScriptedTopics({})
    w = writer(topics)
    b = batch_to(T1, T2, T1, T3)
    w.prepare_topics(b)
    assert topics.calls == [[T1, T2, T3]] and b.counts.topics_created == 3
    w.prepare_topics(batch_to(T2, T3, T4))
    assert topics.calls[1:] == [[T4]]  # only the one not created yet
    w.prepare_topics(batch_to(T1, T4))
    assert len(topics.calls) == 2


def test_each_topic_gets_its_own_outcome() -> None:
    """A name we may not create and a broker refusal for good are remembered (their records become dead
    letters); a topic Kafka did not answer for makes the batch wait, and only it is asked for again."""
    refused = KafkaError(KafkaError.POLICY_VIOLATION, "not here")
    topics = ScriptedTopics({
        T1: TopicNameError("env 'prod' is not allowed"),
        T2: TopicCreationError("refused", refused),
        T3: TopicCreationError("Kafka did not answer within 30 s"),
    })  # fmt: skip
    w = writer(topics)
    with pytest.raises(TransientWriteError, match="did not answer"):
        w.prepare_topics(batch_to(T1, T2, T3, T4))
    assert w._refused[T1][0] is DlqReason.TOPIC_REJECTED
    assert w._refused[T2][0] is DlqReason.OUTPUT_REJECTED
    assert T3 not in w._refused
    del topics.failures[T3]  # Kafka answers again
    b = batch_to(T1, T2, T3, T4)
    w.prepare_topics(b)
    assert topics.calls[-1] == [T3] and b.counts.topics_created == 1

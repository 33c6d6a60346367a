"""Found by the cluster fault tests (tests/reliability/cluster): `TopicEnsurer` let a `TimeoutError`
escape when the broker did not answer a CreateTopics request in time, and a worker whose first write to
a derived topic fell in a broker outage stopped its data plane. A timeout is now a `TopicCreationError`
with no broker error, which the worker's writer retries as transient."""

from __future__ import annotations

import socket
import time

import pytest

from common.errors import TopicNameError
from common.kafka_admin import TopicCreationError, TopicEnsurer


def test_a_create_topics_timeout_is_a_topic_creation_error() -> None:
    with socket.socket() as silent:  # accepts connections, never answers: a stalled broker
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        ensurer = TopicEnsurer({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout_s=1.0)
        with pytest.raises(TopicCreationError, match="did not answer within 1 s") as caught:
            ensurer.ensure("prod.telemetry.1234.kill-v1")
        assert caught.value.error is None  # no broker refusal: the writer retries it


def test_many_topics_in_one_request_wait_for_the_answer_once() -> None:
    """Ten new topics go in one CreateTopics request: a broker that never answers costs the timeout
    once, not once per topic, and every topic reports it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        ensurer = TopicEnsurer({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout_s=1.0)
        topics = [f"prod.telemetry.t{i}.kill-v1" for i in range(10)]
        started = time.monotonic()
        failed = ensurer.create_missing([*topics, "not-a-convention-name"])
        waited = time.monotonic() - started
    assert set(failed) == {*topics, "not-a-convention-name"}
    assert isinstance(failed["not-a-convention-name"], TopicNameError)
    assert all(isinstance(failed[t], TopicCreationError) and failed[t].error is None for t in topics)
    assert waited < 5.0, f"waited {waited:.1f} s for ten topics with a 1 s timeout"

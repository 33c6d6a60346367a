"""Found by the cluster fault tests (tests/reliability/cluster): `TopicEnsurer` let a `TimeoutError`
escape when the broker did not answer a CreateTopics request in time, and a worker whose first write to
a derived topic fell in a broker outage stopped its data plane. A timeout is now a `TopicCreationError`
with no broker error, which the worker's writer retries as transient."""

from __future__ import annotations

import socket

import pytest

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

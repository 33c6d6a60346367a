"""Known gap found by the cluster fault tests (tests/reliability/cluster): `TopicEnsurer` lets a
`TimeoutError` escape when the broker does not answer a CreateTopics request in time, instead of its
own `TopicCreationError`. The worker's writer turns TopicCreationError and KafkaException into a
retried `TransientWriteError`, but not a TimeoutError: a worker whose first write to a derived topic
falls in a broker outage (CreateTopics sent to the dead broker) stops its data plane and exits
("data plane stopped on an error ... TimeoutError", SIGKILL of a broker on the 3-node cluster). The fix
belongs in `common.kafka_admin.TopicEnsurer.ensure_many` (a timeout is a TopicCreationError with no
broker error: transient)."""

from __future__ import annotations

import socket

import pytest

from common.kafka_admin import TopicCreationError, TopicEnsurer

GAP = "known gap: TopicEnsurer raises TimeoutError, not TopicCreationError"


@pytest.mark.xfail(strict=True, raises=TimeoutError, reason=GAP)
def test_a_create_topics_timeout_is_a_topic_creation_error() -> None:
    with socket.socket() as silent:  # accepts connections, never answers: a stalled broker
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        ensurer = TopicEnsurer({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout_s=1.0)
        with pytest.raises(TopicCreationError):
            ensurer.ensure("prod.telemetry.1234.kill-v1")

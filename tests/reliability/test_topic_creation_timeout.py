"""Found by the cluster fault tests (tests/reliability/cluster): `TopicEnsurer` let a `TimeoutError`
escape when the broker did not answer a CreateTopics request in time, and a worker whose first write to
a derived topic fell in a broker outage stopped its data plane. A timeout is now a `TopicCreationError`
with no broker error, which the worker's writer retries as transient, and the SDK reports as its
documented BrokerUnavailableError (it caught a `TimeoutError` that no longer came, and let the ensurer's
error through)."""

from __future__ import annotations

import socket
import time

import pytest

from common.config import KafkaSettings, ProducerSettings
from common.errors import TopicNameError
from common.kafka_admin import TopicCreationError, TopicEnsurer
from producers.errors import BrokerUnavailableError
from producers.producer import Producer
from tests.support import _BytesSchemaCatalog


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


def test_the_sdk_says_broker_unavailable_when_topic_creation_gets_no_answer() -> None:
    """The SDK's documented error for a Kafka that takes connections but does not answer in time
    (`ensure_topic`): BrokerUnavailableError naming the topic, not the ensurer's internal error."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        settings = ProducerSettings(env="dev", source="s", registry_timeout_s=0.5)  # the ensurer waits 3x
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
        with Producer(settings, kafka=kafka, catalog=_BytesSchemaCatalog()) as producer:  # type: ignore[arg-type]
            with pytest.raises(
                BrokerUnavailableError, match=r"did not confirm topic 'dev\.s\.ingest\.all-v1'"
            ):
                producer.ensure_topic()

import threading

import pytest
from confluent_kafka.admin import AdminClient

from common.errors import TopicNameError
from common.kafka_admin import TopicEnsurer, TopicNotAllowedError


def test_rejects_non_convention_names_without_a_broker() -> None:
    ensurer = TopicEnsurer({"bootstrap.servers": "127.0.0.1:1"})
    with pytest.raises(TopicNameError):
        ensurer.ensure("not-a-convention-name")


def test_allowlists() -> None:
    ensurer = TopicEnsurer({"bootstrap.servers": "127.0.0.1:1"}, allowed_envs={"prod"}, allowed_sources={"x"})
    with pytest.raises(TopicNotAllowedError) as info:
        ensurer.check_allowed("dev.x.t.c-v1")
    assert info.value.part == "env"
    with pytest.raises(TopicNotAllowedError) as info:
        ensurer.check_allowed("prod.y.t.c-v1")
    assert info.value.part == "source"
    ensurer.check_allowed("prod.x.t.c-v1")


@pytest.mark.integration
def test_concurrent_creation_is_race_safe(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"prod.telemetry.{unique_name}.race-v1"
    ensurers = [TopicEnsurer({"bootstrap.servers": kafka_bootstrap}, partitions=3) for _ in range(8)]
    errors: list[BaseException] = []

    def create(e: TopicEnsurer) -> None:
        try:
            e.ensure(topic)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(e,)) for e in ensurers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    meta = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert len(meta.topics[topic].partitions) == 3

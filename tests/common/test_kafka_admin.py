import threading

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

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


@pytest.mark.integration
def test_every_partition_answers_at_its_leader_once_creation_returns(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """CreateTopics answers before the partitions' leaders have created their logs (here ~40 ms against
    ~300 ms for 72 partitions on a busy box), and an idempotent producer writing in that window can lose
    records without an error (common.kafka_admin's docstring). So `ensure_many` returns only once every
    partition answers at its leader: for the ensurer that created the topics and for those that raced it
    and were told they already exist. Default partition count (12), six topics."""
    conf = {"bootstrap.servers": kafka_bootstrap}
    topics = [f"prod.{unique_name}.t{i}.writable-v1" for i in range(6)]
    admin = AdminClient(conf)
    not_writable: dict[str, str] = {}
    errors: list[BaseException] = []

    def create_then_probe(ensurer: TopicEnsurer) -> None:
        try:
            ensurer.ensure_many(topics)
            partitions = [TopicPartition(t, p) for t in topics for p in range(12)]
            probes = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=10)
            for tp, future in probes.items():
                try:
                    future.result()
                except KafkaException as exc:
                    not_writable[f"{tp.topic}[{tp.partition}]"] = str(exc)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create_then_probe, args=(TopicEnsurer(conf),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not_writable == {}, f"{len(not_writable)} not writable: {list(not_writable.items())[:3]}"


@pytest.mark.integration
def test_each_topic_gets_the_partition_count_asked_for_it(kafka_bootstrap: str, unique_name: str) -> None:
    """`partitions_for` decides per topic (the worker's `derived_partitions_by_topic`), in one request."""
    wide, narrow = f"prod.{unique_name}.hot.kill-v1", f"prod.{unique_name}.quiet.kill-v1"
    conf = {"bootstrap.servers": kafka_bootstrap}
    ensurer = TopicEnsurer(conf, partitions=1, partitions_for=lambda t: 4 if ".hot." in t else 1)
    ensurer.ensure_many([wide, narrow])
    meta = AdminClient(conf).list_topics(timeout=10).topics
    assert (len(meta[wide].partitions), len(meta[narrow].partitions)) == (4, 1)

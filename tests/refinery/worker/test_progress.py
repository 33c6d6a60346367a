"""Exactly-once resume points (refinery.worker.progress): where an assigned partition resumes, from the
group's committed offsets checked against the progress topic; and reading that topic with
read_committed on a real broker, waiting for a transaction still open."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import OFFSET_INVALID, Producer, TopicPartition

from refinery.worker.clients import InternalTopics
from refinery.worker.progress import (
    PROGRESS_TAG,
    Correction,
    ProgressLog,
    parse_record,
    progress_records,
    resume_points,
    tagged,
)

TOPIC = "prod.s.ingest.all-v1"


def committed(partition: int, offset: int, metadata: str | None = PROGRESS_TAG) -> TopicPartition:
    if metadata is None:  # what librdkafka hands back for an offset committed without metadata
        return TopicPartition(TOPIC, partition, offset)
    return TopicPartition(TOPIC, partition, offset, metadata=metadata)


def test_records_name_the_partition_and_its_next_offset_and_read_back() -> None:
    records = progress_records({(TOPIC, 0): 15, ("a:b.c", 11): 0})
    assert records == [(b"prod.s.ingest.all-v1:0", b"15"), (b"a:b.c:11", b"0")]
    assert [parse_record(k, v) for k, v in records] == [((TOPIC, 0), 15), (("a:b.c", 11), 0)]
    for key, value in [(None, b"1"), (b"t:0", None), (b"t", b"1"), (b"t:x", b"1"), (b":0", b"1"),
                       (b"t:0", b"-1"), (b"t:0", b"1.5")]:  # fmt: skip
        assert parse_record(key, value) is None


def test_our_commits_are_tagged_and_keep_their_offsets() -> None:
    out = tagged([TopicPartition(TOPIC, 2, 40)])
    assert [(tp.topic, tp.partition, tp.offset, tp.metadata) for tp in out] == [(TOPIC, 2, 40, PROGRESS_TAG)]


def test_a_tagged_offset_behind_the_last_transaction_resumes_after_it() -> None:
    points, corrections = resume_points([committed(0, 2507), committed(1, 2847)], {(TOPIC, 0): 2974})
    assert points == {(TOPIC, 0): 2974, (TOPIC, 1): 2847}
    assert corrections == {(TOPIC, 0): Correction(committed=2507, progress=2974)}


def test_an_offset_set_by_someone_else_is_followed_backwards_too() -> None:
    # kafka-consumer-groups --reset-offsets and the at-least-once mode commit without our tag
    for metadata in ("", None, "operator"):
        points, corrections = resume_points([committed(0, 100, metadata)], {(TOPIC, 0): 2974})
        assert points == {(TOPIC, 0): 100} and corrections == {}


def test_a_committed_offset_ahead_of_the_progress_topic_or_alone_is_kept() -> None:
    points, corrections = resume_points([committed(0, 3000), committed(1, 50)], {(TOPIC, 0): 2974})
    assert points == {(TOPIC, 0): 3000, (TOPIC, 1): 50} and corrections == {}


def test_a_partition_without_a_committed_offset_resumes_at_its_progress_record() -> None:
    none = [committed(0, OFFSET_INVALID, None), committed(1, OFFSET_INVALID, None)]
    points, corrections = resume_points(none, {(TOPIC, 0): 12})
    assert points == {(TOPIC, 0): 12, (TOPIC, 1): OFFSET_INVALID}
    assert corrections == {(TOPIC, 0): Correction(committed=OFFSET_INVALID, progress=12)}


# --- the progress topic on a real broker ------------------------------------------------------------
def _transactional(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"progress-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    return producer


def _write(producer: Producer, topic: str, offsets: dict[tuple[str, int], int], *, commit: bool) -> None:
    producer.begin_transaction()
    for key, value in progress_records(offsets):
        producer.produce(topic, value, key)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


@pytest.mark.integration
def test_the_read_takes_the_last_committed_record_and_waits_for_an_open_transaction(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"_{unique_name}-progress"
    InternalTopics({"bootstrap.servers": kafka_bootstrap}, partitions=1).ensure(topic)
    first, second = _transactional(kafka_bootstrap), _transactional(kafka_bootstrap)
    _write(first, topic, {(TOPIC, 0): 10, (TOPIC, 1): 20, ("other", 0): 5}, commit=True)
    _write(first, topic, {(TOPIC, 0): 15}, commit=True)
    _write(first, topic, {(TOPIC, 0): 99, (TOPIC, 1): 99}, commit=False)  # aborted: never a resume point
    second.begin_transaction()  # open when the read starts: its markers held back, say, by a stalled leader
    for key, value in progress_records({(TOPIC, 1): 30}):
        second.produce(topic, value, key)
    second.flush(30)
    log = ProgressLog({"bootstrap.servers": kafka_bootstrap}, topic, group_id=unique_name)

    timer = threading.Timer(1.5, lambda: second.commit_transaction(30))
    timer.start()
    began = time.monotonic()
    read = log.read([(TOPIC, 0), (TOPIC, 1)], timeout_s=30)
    timer.join()
    assert read.complete and read.positions == {(TOPIC, 0): 15, (TOPIC, 1): 30}
    assert time.monotonic() - began >= 1.4, "the read did not wait for the open transaction"
    assert read.records >= 4

    second.begin_transaction()  # open for longer than the read may wait: it ends with what it has
    for key, value in progress_records({(TOPIC, 0): 40}):
        second.produce(topic, value, key)
    second.flush(30)
    read = log.read([(TOPIC, 0), (TOPIC, 1)], timeout_s=1.0)
    assert not read.complete and read.positions == {(TOPIC, 0): 15, (TOPIC, 1): 30}
    second.abort_transaction(30)
    assert log.read([(TOPIC, 0)], timeout_s=30).positions == {(TOPIC, 0): 15}
    assert log.read([], timeout_s=30).positions == {}
    empty = f"_{unique_name}-progress-empty"
    InternalTopics({"bootstrap.servers": kafka_bootstrap}, partitions=1).ensure(empty)
    nothing = ProgressLog({"bootstrap.servers": kafka_bootstrap}, empty, group_id=unique_name).read(
        [(TOPIC, 0)], 30
    )
    assert nothing.complete and nothing.positions == {}

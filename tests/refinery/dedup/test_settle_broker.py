"""Settling unfinished dedup batches against the real broker: a batch that crashed after writing some
of its dedup-route outputs is settled once, with exactly the ids that landed, each under its own input
partition, and the read stays within the intent's topics and time span."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common.headers import MESSAGE_ID
from refinery.dedup.records import Intent, PartitionKey, intent_record
from refinery.dedup.store import DedupChangelog, DedupStore, RestoreReport

pytestmark = pytest.mark.integration

WINDOW_S = 10.0  # the settle window of these tests


def create_topics(conf: dict[str, str], topics: dict[str, int]) -> None:
    admin = AdminClient(conf)
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10).topics
        if all(t in meta and all(p.leader >= 0 for p in meta[t].partitions.values()) for t in topics):
            return
        time.sleep(0.2)


def write(conf: dict[str, str], rows: list[tuple[str, int, bytes, int]]) -> None:
    """Records (topic, partition, message id, timestamp ms) as a worker would forward them."""
    producer = Producer({**conf, "enable.idempotence": True})
    for topic, partition, message_id, ts in rows:
        producer.produce(
            topic, b"v", b"k", partition=partition, headers=[(MESSAGE_ID, message_id)], timestamp=ts
        )
    assert producer.flush(30) == 0


def announce(conf: dict[str, str], changelog: str, intent: Intent) -> None:
    """The intent record as the data plane writes it, stamped at the intent's time."""
    key, value, headers, _ = intent_record(intent)
    producer = Producer(conf)
    producer.produce(changelog, value, key, headers=headers, timestamp=intent.timestamp_ms)
    assert producer.flush(30) == 0


def ids(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


def restore(changelog: DedupChangelog, partitions: list[PartitionKey]) -> tuple[RestoreReport, DedupStore]:
    store = DedupStore(window_s=600, max_ids_per_partition=100_000)  # a fresh worker's store
    return changelog.restore(store, partitions), store


def test_a_crashed_batch_is_settled_once_with_the_ids_that_landed_in_their_own_partitions(
    kafka_bootstrap: str, unique_name: str
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    name = unique_name
    ingest, x, y, log_topic = (
        f"prod.{name}.ingest.all-v1",
        f"prod.{name}.1.x-v1",
        f"prod.{name}.2.x-v1",
        f"_{name}-dedup",
    )
    create_topics(conf, {x: 3, y: 3, log_topic: 1})
    p0, p1, p2 = (ingest, 0), (ingest, 1), (ingest, 2)
    a, b, c = ids("a", 10), ids("b", 10), ids("c", 5)
    intent = Intent.for_batch({p0: (0, 10), p1: (0, 10), p2: (0, 5)}, [x, y], {p0: a, p1: b, p2: c})
    t = intent.timestamp_ms = int(time.time() * 1000) - 120_000  # crashed two minutes ago
    announce(conf, log_topic, intent)
    write(conf, [(x, 0, i, t - 10_000) for i in ids("before", 5)])  # earlier traffic: not read
    landed = [(x, 1, i, t + 100) for i in a[:6]] + [(y, 2, i, t + 200) for i in b[:3]]  # then the crash
    landed += [(topic, 0, i, t + 300) for topic in (x, y) for i in c]  # p2's ids fan out to both topics
    unrelated = [(x, n % 3, i, t + 2_000) for n, i in enumerate(ids("u", 20))]  # same topics, same span
    later = [(topic, n % 3, i, t + 20_000) for topic in (x, y) for n, i in enumerate(ids("w", 50))]
    write(conf, landed + unrelated + later)
    changelog = DedupChangelog(conf, log_topic, group_id=name, settle_window_s=WINDOW_S)

    # this worker owns p0 and p1; p2 went to another worker
    first, store = restore(changelog, [p0, p1])
    assert (first.batches_settled, first.ids_settled, first.ids_restored) == (1, 9, 9), first
    assert set(store.ids(p0)) == set(a[:6]) and set(store.ids(p1)) == set(b[:3]), (
        "each id in its own partition"
    )
    assert first.derived_records_read == len(landed) + len(unrelated), "nothing before or after the span"

    second, store = restore(changelog, [p0, p1])  # a restart: the DONE for p0 and p1 is there
    assert (second.batches_settled, second.derived_records_read, second.ids_restored) == (0, 0, 9), second
    assert set(store.ids(p0)) == set(a[:6]) and set(store.ids(p1)) == set(b[:3])

    other, store = restore(changelog, [p2])  # the other worker settles its own partition, once
    assert (other.batches_settled, other.ids_settled) == (1, 5) and set(store.ids(p2)) == set(c), other
    assert other.derived_records_read <= len(c) * 2, "stops once every id of p2 was found"

    last, store = restore(changelog, [p0, p1, p2])
    assert (last.batches_settled, last.ids_restored, last.batches_unsettled) == (0, 14, 0), last


def test_an_intent_without_ids_is_settled_within_its_span_only(
    kafka_bootstrap: str, unique_name: str
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    name = unique_name
    ingest, x, log_topic = f"prod.{name}.ingest.all-v1", f"prod.{name}.1.x-v1", f"_{name}-dedup"
    create_topics(conf, {x: 1, log_topic: 1})
    t = int(time.time() * 1000) - 60_000
    intent = Intent("old", {(ingest, 0): (0, 3)}, [x], t)  # written before intents listed their ids
    announce(conf, log_topic, intent)
    write(conf, [(x, 0, i, t + 50) for i in ids("m", 3)] + [(x, 0, i, t + 30_000) for i in ids("w", 40)])
    changelog = DedupChangelog(conf, log_topic, group_id=name, settle_window_s=WINDOW_S)
    first, store = restore(changelog, [(ingest, 0)])
    assert store.ids((ingest, 0)) == ids("m", 3)
    assert (first.batches_settled, first.ids_settled, first.derived_records_read) == (1, 3, 3), first
    assert restore(changelog, [(ingest, 0)])[0].batches_settled == 0


def test_settle_after_a_failed_batch_records_done(kafka_bootstrap: str, unique_name: str) -> None:
    """The data plane's in-process recovery (`settle` with the intent's own inputs) closes the batch
    too: a later restore finds its ids and does not settle it again."""
    conf = {"bootstrap.servers": kafka_bootstrap}
    name = unique_name
    ingest, x, log_topic = f"prod.{name}.ingest.all-v1", f"prod.{name}.1.x-v1", f"_{name}-dedup"
    create_topics(conf, {x: 1, log_topic: 1})
    intent = Intent.for_batch({(ingest, 0): (0, 4)}, [x], {(ingest, 0): ids("m", 4)})
    announce(conf, log_topic, intent)
    write(conf, [(x, 0, i, intent.timestamp_ms + 10) for i in ids("m", 2)])
    changelog = DedupChangelog(conf, log_topic, group_id=name, settle_window_s=WINDOW_S)
    store = DedupStore(window_s=600, max_ids_per_partition=100)
    assert changelog.settle(store, intent, intent.inputs) == 2
    report, restored = restore(changelog, [(ingest, 0)])
    assert (report.batches_settled, report.ids_restored) == (0, 2) and restored.ids((ingest, 0)) == ids(
        "m", 2
    )


def test_a_batch_that_did_not_all_land_is_read_to_the_end_of_its_window(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """Busy partitions: the read goes stage by stage (first second, then the rest of the window), and a
    partition finished early in one stage is read again in the next."""
    conf = {"bootstrap.servers": kafka_bootstrap}
    name = unique_name
    ingest, x, log_topic = f"prod.{name}.ingest.all-v1", f"prod.{name}.1.x-v1", f"_{name}-dedup"
    create_topics(conf, {x: 2, log_topic: 1})
    batch = ids("m", 10)
    intent = Intent.for_batch({(ingest, 0): (0, 10)}, [x], {(ingest, 0): batch})
    t = intent.timestamp_ms = int(time.time() * 1000) - 60_000
    announce(conf, log_topic, intent)
    first = [(x, n % 2, i, t + 5) for n, i in enumerate(batch[:4] + ids("u", 3000))]  # 4 landed, then busy
    second = [(x, n % 2, i, t + 3_000) for n, i in enumerate(ids("v", 20))]  # after the first second
    write(conf, first + second + [(x, 0, i, t + 20_000) for i in ids("w", 10)])
    changelog = DedupChangelog(conf, log_topic, group_id=name, settle_window_s=WINDOW_S)
    report = changelog.restore(DedupStore(window_s=600, max_ids_per_partition=100_000), [(ingest, 0)], 20)
    assert (report.batches_settled, report.ids_settled) == (1, 4), report
    assert report.derived_records_read == len(first) + len(second), report

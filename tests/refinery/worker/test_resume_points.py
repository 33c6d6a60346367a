"""An exactly-once worker resumes after its last committed transaction even when the group's committed
offsets went back (as a stalled group coordinator made them in the cluster fault tests), and still
follows an offset reset made by someone else (refinery.worker.progress)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from refinery.worker.progress import PROGRESS_TAG
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

ROUTES = """
routes:
  - name: all
    match: {env: prod}
    to: {template: "{env}.{source}.all.everything-v1"}
"""
READ_COMMITTED = {"isolation.level": "read_committed"}


def _records(name: str, start: int, count: int) -> list[tuple[bytes, bytes, object]]:
    return [(f"k{i}".encode(), *record("prod", name, "1234", "x", message_id=f"{name}-{i}"))
            for i in range(start, start + count)]  # fmt: skip


def _group(bootstrap: str, name: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": name, "enable.auto.commit": False})


def _outputs(bootstrap: str, derived: str, expected: int) -> Counter[bytes]:
    consume_all(bootstrap, [derived], expected=expected, timeout=90, extra_config=READ_COMMITTED)
    out = consume_all(bootstrap, [derived], timeout=30, idle=2, extra_config=READ_COMMITTED)
    return Counter(dict(m.headers() or [])["ce_id"] for m in out)


def _metric(worker: WorkerProcess, name: str) -> float:
    for line in worker.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def test_offsets_that_went_back_are_not_repeated_and_a_reset_is_followed(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    name = unique_name
    env = worker_env(kafka_bootstrap, name, tmp_path, exactly_once=True, instance_id="w1")
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    ingest, derived = f"prod.{name}.ingest.all-v1", f"prod.{name}.all.everything-v1"
    send(kafka_bootstrap, ingest, _records(name, 0, 600))
    partitions = [TopicPartition(ingest, p) for p in range(3)]
    ends = {}

    worker = WorkerProcess(env, tmp_path / "first.log").start()
    try:
        assert sum(_outputs(kafka_bootstrap, derived, 600).values()) == 600
        group = _group(kafka_bootstrap, name)

        def all_committed() -> list[TopicPartition] | None:
            found = [tp for tp in group.committed(partitions, timeout=10) if tp.offset > 0]
            return found if sum(tp.offset for tp in found) == 600 else None

        try:  # the transactions committed every offset, tagged as ours
            found = wait_for(all_committed, what="all 600 offsets committed")
            assert {tp.metadata for tp in found} == {PROGRESS_TAG}
            ends = {tp.partition: tp.offset for tp in found}
        finally:
            group.close()
    finally:
        worker.stop()

    # the group's offsets go back to half way, still tagged as a transaction of ours committed them: what
    # the group coordinator served after a stall, though later transactions had committed past them
    group = _group(kafka_bootstrap, name)
    rewound = [TopicPartition(ingest, p, end // 2, metadata=PROGRESS_TAG) for p, end in ends.items()]
    group.commit(offsets=rewound, asynchronous=False)
    group.close()
    worker = WorkerProcess(env, tmp_path / "second.log").start()
    try:
        send(kafka_bootstrap, ingest, _records(name, 600, 150))
        counts = _outputs(kafka_bootstrap, derived, 750)
        assert len(counts) == 750 and max(counts.values()) == 1, (
            f"{sum(n - 1 for n in counts.values())} outputs written twice after the offsets went back"
        )
        assert _metric(worker, "refinery_resume_corrections_total") == len(ends)
        assert worker.stats()["totals"]["resume_corrections"] == len(ends)
        assert worker.stats()["totals"]["progress_reads_incomplete"] == 0
    finally:
        worker.stop()
    assert "committed offsets behind the last committed transactions" in (tmp_path / "second.log").read_text()

    # an operator's reset (kafka-consumer-groups --reset-offsets commits without our tag) is followed:
    # partition 0 is read again from its start
    group = _group(kafka_bootstrap, name)
    _low, high = group.get_watermark_offsets(TopicPartition(ingest, 0), timeout=10, cached=False)
    group.commit(offsets=[TopicPartition(ingest, 0, 0)], asynchronous=False)
    group.close()
    worker = WorkerProcess(env, tmp_path / "third.log").start()
    try:
        counts = _outputs(kafka_bootstrap, derived, 750 + high)
        assert len(counts) == 750 and sum(counts.values()) == 750 + high
        assert _metric(worker, "refinery_resume_corrections_total") == 0
    finally:
        worker.stop()

"""SIGKILL a refinery worker at random moments while 100k records flow, restart it each time, then
reconcile every derived topic with the ingest topic (`refinery.reconcile.reconciler`): nothing lost,
duplicates counted, none with exactly-once and none on a `dedup` route with at-least-once.
A second at-least-once test makes the worker SIGKILL itself inside the crash window that matters for
dedup (outputs flushed, ids and offsets not yet recorded: `REFINERY_WORKER_TEST_CRASH_AFTER_FLUSH`), so that
window is hit every run. REFINERY_SOAK=1 runs more records and more kills."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up
from tests.support import wait_for

pytestmark = pytest.mark.integration

SOAK = os.environ.get("REFINERY_SOAK") == "1"
TOTAL = 500_000 if SOAK else 100_000
# Each restart after SIGKILL waits ~60 s for the dead process's group sessions to expire, so CI kills
# twice with exactly-once and once with at-least-once; the soak run kills 8 times in each mode.
KILLS = {True: 8 if SOAK else 2, False: 8 if SOAK else 1}
CHUNK = 5000

ROUTES = """
routes:
  - name: everything
    match: {env: prod}
    to: {template: "{env}.{source}.all.everything-v1"}
  - name: by-title
    match: {title: {in: ["1234", "2345"]}}
    to: {template: "{env}.{source}.{title}.all-v1"}
    dedup: true
"""


def written(conf: dict[str, str], topic: str) -> int:
    """Records (and transaction markers) written to `topic` so far: a cheap progress gauge."""
    consumer = Consumer({**conf, "group.id": "progress"})
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in partitions)
    except KafkaException:
        return 0
    finally:
        consumer.close()


def _run(kafka_bootstrap: str, name: str, tmp_path: Path, *, exactly_once: bool) -> dict[str, object]:
    seed = int(os.environ.get("REFINERY_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    env = worker_env(kafka_bootstrap, name, tmp_path, exactly_once=exactly_once, instance_id="w1")
    conf = {"bootstrap.servers": kafka_bootstrap}
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    ingest = f"prod.{name}.ingest.all-v1"
    send(kafka_bootstrap, ingest, [])
    titles = ["1234", "2345", "3456"]
    chunks = [
        [(f"m{i % 97}".encode(), *record("prod", name, titles[i % 3], "x", payload=b"p" * 900))
         for i in range(start, min(start + CHUNK, TOTAL))]
        for start in range(0, TOTAL, CHUNK)
    ]  # fmt: skip
    feeder = threading.Thread(
        target=lambda: [send(kafka_bootstrap, ingest, c) or time.sleep(0.2) for c in chunks]
    )
    worker = WorkerProcess(env, tmp_path / "worker-0.log").start()
    started = time.monotonic()
    feeder.start()
    # random points in the stream (as a share of the records written to the derived topic), plus a random
    # sub-second jitter so the kill lands anywhere in a batch: routing, flushing, committing, in a transaction
    kill_at = sorted(rng.uniform(0.1, 0.9) for _ in range(KILLS[exactly_once]))
    derived = f"prod.{name}.all.everything-v1"
    try:
        for n, share in enumerate(kill_at):
            wait_for(lambda share=share: written(conf, derived) >= share * TOTAL, timeout=180, interval=0.05,
                     what=f"{share:.0%} of the stream routed")  # fmt: skip
            time.sleep(rng.uniform(0, 0.5))
            worker.kill()
            worker = WorkerProcess(env, tmp_path / f"worker-{n + 1}.log").start()
        feeder.join(300)
        wait_caught_up(conf, name, [ingest])
        report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"])
    finally:
        feeder.join(300)
        worker.stop()
    figures = {
        "sent": report.sent, "expected_deliveries": report.expected_deliveries, "delivered": report.delivered,
        "lost": report.lost, "duplicated": report.duplicated, "misrouted": report.misrouted,
        "duplicated_by_topic": report.duplicated_by_topic,
        "kills": KILLS[exactly_once], "kill_at_share": [round(k, 3) for k in kill_at], "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    record_figures(f"worker_sigkill[{'exactly_once' if exactly_once else 'at_least_once'}]", **figures)
    assert report.sent == TOTAL
    assert report.lost == 0 and report.misrouted == 0, report
    assert report.dlq_found == 0 and report.unmatched == 0, report
    return figures


def test_sigkill_at_random_points_exactly_once(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    figures = _run(kafka_bootstrap, unique_name, tmp_path, exactly_once=True)
    assert figures["duplicated"] == 0


def dedup_topics(name: str) -> list[str]:
    """The derived topics of the `by-title` route (dedup on)."""
    return [f"prod.{name}.{title}.all-v1" for title in ("1234", "2345")]


def test_sigkill_at_random_points_at_least_once(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Nothing lost; duplicates on the route without dedup are counted (figures), on the dedup route
    there are none: a batch announces its dedup outputs in the changelog before writing them."""
    figures = _run(kafka_bootstrap, unique_name, tmp_path, exactly_once=False)
    assert figures["lost"] == 0
    by_topic = figures["duplicated_by_topic"]
    assert isinstance(by_topic, dict)
    assert all(by_topic.get(topic, 0) == 0 for topic in dedup_topics(unique_name)), by_topic


def test_sigkill_between_flush_and_commit_repeats_nothing_on_the_dedup_route(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """The worker kills itself after its first batch with dedup outputs is acknowledged, before that
    batch's ids and offsets are recorded; its replacement replays the batch. The route without dedup
    gets it twice (proof the kill landed in the window), the dedup route once; nothing is lost."""
    name, total = unique_name, 20_000
    env = worker_env(kafka_bootstrap, name, tmp_path, instance_id="w1")
    conf = {"bootstrap.servers": kafka_bootstrap}
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    ingest = f"prod.{name}.ingest.all-v1"
    titles = ["1234", "2345", "3456"]
    send(kafka_bootstrap, ingest, [(f"m{i % 97}".encode(), *record("prod", name, titles[i % 3], "x"))
                                   for i in range(total)])  # fmt: skip
    crashing = WorkerProcess({**env, "REFINERY_WORKER_TEST_CRASH_AFTER_FLUSH": "true"}, tmp_path / "w-0.log")
    started = time.monotonic()
    try:
        crashing.start()
    except AssertionError as exc:  # it may die before its web server answers
        assert "worker exited" in str(exc)
    assert crashing.proc is not None and crashing.proc.wait(120) == -signal.SIGKILL
    assert "test hook: SIGKILL" in crashing.log_path.read_text()
    worker = WorkerProcess(env, tmp_path / "w-1.log").start()
    try:
        wait_caught_up(conf, name, [ingest])
        report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"])
    finally:
        worker.stop()
    record_figures(
        "worker_sigkill_between_flush_and_commit", sent=report.sent, delivered=report.delivered,
        lost=report.lost, duplicated_by_topic=report.duplicated_by_topic,
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert report.sent == total and report.lost == 0 and report.misrouted == 0, report
    assert report.duplicated_by_topic.get(f"prod.{name}.all.everything-v1", 0) > 0, report
    assert all(report.duplicated_by_topic.get(t, 0) == 0 for t in dedup_topics(name)), report

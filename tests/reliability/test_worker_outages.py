"""A running worker through outages it cannot fix itself (issue 13), with the default limits: its broker
SIGKILLed and restarted mid-stream (at-least-once: nothing lost, nothing duplicated, the worker never
exits), and a DLQ it cannot write (it pauses and says so on /ready and /stats within 10 s, commits
nothing past the record it could not dead-letter, and resumes by itself once the DLQ takes records)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from common.config import LocalKafkaSettings
from devstack.local_kafka import LocalKafka
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.reliability.dataplane_checks import (
    HealthWatcher,
    by_label,
    committed_offset,
    create_topic,
    metric,
    metrics,
    produce,
    ready,
    set_topic_config,
    wait_ready,
    worker_story,
)
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROUTES = """
routes:
  - name: everything
    match: {env: prod}
    to: {template: "{env}.{source}.all.everything-v1"}
  - name: by-title
    match: {title: {in: ["1234", "2345"]}}
    to: {template: "{env}.{source}.{title}.all-v1"}
"""
TITLES = ("1234", "2345", "3456")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(port=free_port(), home=tmp_path / "kafka",
                        settings=LocalKafkaSettings(controller_port=free_port(), heap="512m"))  # fmt: skip
    broker.start()
    yield broker
    broker.wipe()


class Feeder:
    """A raw idempotent producer writing a steady stream of good records (`rate` per second) to one
    ingest topic in a thread, keeping them queued through a broker outage (delivery timeout 120 s)."""

    def __init__(self, bootstrap: str, topic: str, name: str, rate: float = 200.0) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 20, "delivery.timeout.ms": 120_000})  # fmt: skip
        self.topic, self.name, self.rate = topic, name, rate
        self.produced = 0
        self.acked = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.acked += 1
        else:
            self.failed.append(str(err))

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.produced < due:
                i = self.produced
                value, headers = record("prod", self.name, TITLES[i % 3], "tick", payload=b"t" * 500)
                try:
                    self.producer.produce(self.topic, value, f"m{i % 97}".encode(), headers=headers,
                                          on_delivery=self._on_delivery)  # fmt: skip
                except BufferError:
                    break
                self.produced += 1
            self.producer.poll(0.02)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 150.0) -> int:
        """Stop producing; wait for every delivery report; return the records still queued (0)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        return int(self.producer.flush(flush_timeout))

    def close(self) -> None:
        self.stop(10)
        self.producer.close()


def test_broker_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(
    own_broker: LocalKafka, unique_name: str, tmp_path: Path
) -> None:
    name, bootstrap = unique_name, own_broker.bootstrap
    conf = {"bootstrap.servers": bootstrap}
    env = worker_env(bootstrap, name, tmp_path)  # at-least-once (the default)
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    ingest = f"prod.{name}.ingest.all-v1"
    send(bootstrap, ingest, [])
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    feeder = Feeder(bootstrap, ingest, name)
    try:
        wait_ready(worker, timeout=60)
        with HealthWatcher(worker) as watcher:
            started = time.monotonic()
            feeder.start()
            time.sleep(5)
            before_kill = feeder.produced
            killed_at = time.monotonic()
            own_broker.stop(kill=True)
            time.sleep(5)
            restart_begun = time.monotonic()
            own_broker.start()  # same data dir
            restarted_at = time.monotonic()
            time.sleep(5)
            left = feeder.stop()
            wait_caught_up(conf, name, [ingest], timeout=120)
            stats = wait_ready(worker, timeout=60)
            caught_up_s = time.monotonic() - restarted_at
            samples = metrics(worker)
        worker_alive = worker.proc is not None and worker.proc.poll() is None
        # the consumer group lost the worker during the outage (librdkafka gives up a session it could
        # not heartbeat for session.timeout.ms): its partitions were revoked and assigned again
        revoked = worker.log_path.read_text(errors="replace").count('"partitions revoked"')
    finally:
        feeder.close()  # before the broker fixture wipes the broker, or its client keeps reconnecting
        worker.stop()
    report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"])
    print(report, worker_story(worker.log_path), sep="\n")  # shown when a check below fails
    not_ready = [o for o in watcher.seen if o.ready not in (200, None)]
    record_figures(
        "worker_broker_restart[at_least_once]", produced=feeder.produced, produced_before_kill=before_kill,
        acknowledged=feeder.acked, failed_to_producer=len(feeder.failed), sent=report.sent,
        expected_deliveries=report.expected_deliveries, delivered=report.delivered, lost=report.lost,
        duplicated=report.duplicated, misrouted=report.misrouted, dlq=report.dlq_found,
        outage_s=round(restarted_at - killed_at, 1), broker_start_s=round(restarted_at - restart_begun, 1),
        caught_up_after_restart_s=round(caught_up_s, 1), states_seen=dict(watcher.states),
        not_ready_samples=len(not_ready), worker_exited=watcher.exited, revocations=revoked,
        retries_by_reason=by_label(samples, "refinery_worker_retries_total", "reason"),
        pauses_by_reason=by_label(samples, "refinery_worker_pauses_total", "reason"),
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert worker_alive and watcher.exited is None, "the worker process exited during the outage"
    assert left == 0 and feeder.failed == [], feeder.failed[:5]
    assert report.sent == feeder.acked == feeder.produced > before_kill > 0
    assert report.lost == 0 and report.misrouted == 0, report
    assert report.duplicated == 0, (
        f"{report.duplicated} duplicates {report.duplicated_by_topic}; partitions revoked {revoked} times"
    )
    assert report.dlq_found == 0 and report.unmatched == 0, report
    assert stats["state"] == "running" and stats["ready"] is True, stats


def test_unwritable_dlq_pauses_the_worker_until_it_can_be_written(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """The DLQ topic takes records of at most 100 bytes, so no dead letter fits; a record without headers
    (missing_header) must be dead-lettered. The worker pauses rather than skipping it or spinning, and
    resumes once the DLQ topic's limit is raised at runtime."""
    name, conf = unique_name, {"bootstrap.servers": kafka_bootstrap}
    env = worker_env(kafka_bootstrap, name, tmp_path)
    dlq_topic = env["REFINERY_WORKER_DLQ_TOPIC"]
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    create_topic(kafka_bootstrap, dlq_topic, config={"max.message.bytes": "100"})
    ingest = f"prod.{name}.ingest.all-v1"
    create_topic(kafka_bootstrap, ingest)

    def good(i: int) -> tuple[str, int, bytes, bytes, Any]:
        value, headers = record("prod", name, TITLES[i % 3], "kill", payload=b"g" * 300)
        return (ingest, i % 3, f"k{i}".encode(), value, headers)

    bad_value, _ = record("prod", name, "1234", "kill")
    items = [good(i) for i in range(30)]
    items += [(ingest, 0, b"bad-no-headers", bad_value, None)]  # a dead letter for sure: no headers at all
    items += [good(i) for i in range(30, 120)]  # behind it, on its partition and the others
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        with HealthWatcher(worker.start()) as watcher:
            wait_ready(worker, timeout=60)
            sent = produce(kafka_bootstrap, items)
            acked_at = time.monotonic()
            (bad,) = [s for s in sent if s.key == b"bad-no-headers"]
            _, bad_partition, bad_offset = bad.coordinate
            # within 10 s: not ready, paused, saying why
            _, body = wait_for(lambda: (r := ready(worker))[0] == 503 and r, timeout=10, interval=0.1,
                                  what="/ready to be 503 after the DLQ write failed")  # fmt: skip
            not_ready_s = time.monotonic() - acked_at
            paused = wait_for(lambda: (s := worker.stats())["state"] == "paused" and s, timeout=5,
                              what="/stats state paused")  # fmt: skip
            # while paused (a few seconds): it stays paused, and commits nothing past the bad record
            log_before = len(worker.log_path.read_text(errors="replace").splitlines())
            committed_while_paused = []
            for _ in range(6):
                time.sleep(1)
                committed_while_paused.append(committed_offset(conf, name, ingest, bad_partition))
                assert worker.stats()["state"] == "paused"
            log_lines_while_paused = (
                len(worker.log_path.read_text(errors="replace").splitlines()) - log_before
            )
            paused_samples = metrics(worker)
            # the cause goes away: the worker resumes by itself
            set_topic_config(kafka_bootstrap, dlq_topic, "max.message.bytes", "1048588")
            fixed_at = time.monotonic()
            wait_ready(worker, timeout=45)
            resumed_s = time.monotonic() - fixed_at
            wait_caught_up(conf, name, [ingest], timeout=60)
            stats = wait_ready(worker, timeout=30)
            samples = metrics(worker)
        worker_alive = worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
    report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=dlq_topic)
    record_figures(
        "worker_dlq_unwritable", sent=len(sent), not_ready_after_s=round(not_ready_s, 2),
        ready_body=body, paused_reason=paused.get("paused_reason"), last_error=paused.get("last_error"),
        committed_while_paused=committed_while_paused, bad_offset=bad_offset,
        log_lines_while_paused=log_lines_while_paused, resumed_after_s=round(resumed_s, 1),
        pauses_by_reason=by_label(samples, "refinery_worker_pauses_total", "reason"),
        retries_by_reason=by_label(samples, "refinery_worker_retries_total", "reason"),
        states_seen=dict(watcher.states), lost=report.lost, duplicated=report.duplicated,
        misrouted=report.misrouted, dlq_found=report.dlq_found, dlq_reasons=report.dlq_reasons,
    )  # fmt: skip
    assert worker_alive and watcher.exited is None
    # paused and saying why, within 10 s
    assert not_ready_s <= 10
    assert body.get("error_code") == 50301 and body.get("message"), body
    assert paused["ready"] is False and paused["paused_reason"] and paused["last_error"], paused
    assert metric(paused_samples, "refinery_worker_ready") == 0
    assert metric(paused_samples, "refinery_worker_state", state="paused") == 1
    assert metric(paused_samples, "refinery_worker_pauses_total") >= 1
    # nothing committed past the record that could not be dead-lettered (-1001: nothing committed yet)
    assert all(offset <= bad_offset for offset in committed_while_paused), committed_while_paused
    # it resumed by itself, the dead letter landed once, and everything reconciles
    assert resumed_s <= 45
    assert stats["state"] == "running" and stats["ready"] is True and stats["paused_reason"] is None, stats
    assert metric(samples, "refinery_worker_ready") == 1
    assert report.clean and report.dlq_found == 1 and report.dlq_reasons == {"missing_header": 1}, report
    assert report.sent == len(items) and report.unmatched == 0, report

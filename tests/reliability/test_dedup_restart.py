"""Issue 20 end to end: an at-least-once worker kills itself inside the dedup crash window (outputs of
its first dedup batch flushed, ids and offsets not recorded: `REFINERY_WORKER_TEST_CRASH_AFTER_FLUSH`),
then the worker is started twice. The first restart settles the unfinished batch once, restoring exactly
the ids its outputs carried; the second finds the batch's DONE and settles nothing; the dedup route holds
no duplicate and nothing is lost."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up
from tests.reliability.test_worker_sigkill import ROUTES, dedup_topics
from tests.support import consume_all

pytestmark = pytest.mark.integration


def restores(log_path: Path) -> list[dict[str, Any]]:
    """The figures of every dedup restore a worker logged (`DedupChangelog.restore`, JSON logs)."""
    found = []
    for line in log_path.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("dedup_restore"), dict):
            found.append(doc["dedup_restore"])
    return found


def test_a_crashed_dedup_batch_is_settled_once_over_two_restarts(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
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
    # what the crashed batch wrote to the dedup route: everything there so far (it was the first batch)
    landed = len(consume_all(kafka_bootstrap, dedup_topics(name), timeout=30, idle=3))
    first = WorkerProcess(env, tmp_path / "w-1.log").start()
    try:
        wait_caught_up(conf, name, [ingest])
    finally:
        first.stop()
    second = WorkerProcess(env, tmp_path / "w-2.log").start()
    try:
        wait_caught_up(conf, name, [ingest])
        report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"])
    finally:
        second.stop()
    after_crash, after_restart = restores(first.log_path), restores(second.log_path)
    record_figures(
        "dedup_settled_once_over_two_restarts", landed=landed, first_start=after_crash,
        second_start=after_restart, lost=report.lost, duplicated_by_topic=report.duplicated_by_topic,
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert 0 < landed < total
    assert after_crash and after_restart, "every start logs its dedup restore"
    assert sum(r["batches_settled"] for r in after_crash) == 1, after_crash
    assert sum(r["ids_settled"] for r in after_crash) == landed, after_crash  # exactly what landed
    assert sum(r["batches_settled"] + r["batches_unsettled"] for r in after_restart) == 0, after_restart
    assert "batches_settled=0" in (tmp_path / "w-2.log").read_text()
    assert report.sent == total and report.lost == 0 and report.misrouted == 0, report
    assert all(report.duplicated_by_topic.get(t, 0) == 0 for t in dedup_topics(name)), report

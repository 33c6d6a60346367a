"""Workers sharing a group: live route changes without restart, and SIGKILL mid-stream with 0 lost
(at-least-once: duplicates counted; exactly-once: none)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.reliability.pipeline import group_lag
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration


def _route_set(route: str, category: str) -> str:
    return f"""
routes:
  - name: {route}
    match: {{env: prod}}
    to: {{template: "{{env}}.{{source}}.all.{category}-v1"}}
"""


def test_live_route_change_reaches_two_running_workers(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    name = unique_name
    env = worker_env(kafka_bootstrap, name, tmp_path)
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(_route_set("first", "before")))  # fmt: skip
    ingest = f"prod.{name}.ingest.all-v1"
    send(kafka_bootstrap, ingest, [])  # create the ingest topic (3 partitions) before the workers join
    workers = [WorkerProcess(env, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        for w in workers:
            w.start()
        new_set = load_route_set(_route_set("second", "after"))
        # replacing the set's only route drops all of the live set, which the drop guard refuses unforced
        forced = workers[0].url + "/routes?force=true"
        response = httpx.post(forced, content=new_set.canonical_text, timeout=30)
        assert response.status_code == 200, response.text
        for w in workers:
            wait_for(lambda w=w: w.get("/routes").json()["version"] == new_set.version, what="new route set")
        items = [(f"k{i}".encode(), *record("prod", name, "1234", "x")) for i in range(300)]
        send(kafka_bootstrap, ingest, items)
        out = consume_all(kafka_bootstrap, [f"prod.{name}.all.after-v1"], expected=300, timeout=60)
        assert len({dict(m.headers() or [])["ce_id"] for m in out}) == 300
        # both workers own partitions and both routed with the new route, neither was restarted
        for w in workers:
            stats = wait_for(lambda w=w: w.stats()["routes"].get("second"), what="route 'second' rate")
            assert stats["total"] > 0
            assert "first" not in w.stats()["routes"]
    finally:
        for w in workers:
            w.stop()


def _kill_mid_stream(
    kafka_bootstrap: str, name: str, tmp_path: Path, *, exactly_once: bool, total: int
) -> Counter[bytes]:
    """Queue `total` ~1 KB records, SIGKILL the worker while it is busy routing them, restart it, and
    return how often each message id reached the derived topic (failing if any is missing)."""
    env = worker_env(kafka_bootstrap, name, tmp_path, exactly_once=exactly_once, instance_id="w1")
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(_route_set("all", "everything")))  # fmt: skip
    ingest = f"prod.{name}.ingest.all-v1"
    payload = b"p" * 900
    items = [
        (f"m{i % 97}".encode(), *record("prod", name, "1234", "x", payload=payload)) for i in range(total)
    ]
    send(kafka_bootstrap, ingest, items)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    reader = {"isolation.level": "read_committed"}
    derived = f"prod.{name}.all.everything-v1"
    try:
        wait_for(lambda: worker.stats()["totals"]["routed"] >= total // 5, timeout=60, interval=0.02,
                 what="worker well into the stream")  # fmt: skip
        worker.kill()
        worker = WorkerProcess(env, tmp_path / "worker-restarted.log").start()
        out = consume_all(kafka_bootstrap, [derived], expected=total, timeout=90, extra_config=reader)
        time.sleep(2)  # duplicates, if any, may still be on their way
        out = consume_all(kafka_bootstrap, [derived], timeout=30, idle=2, extra_config=reader)
    finally:
        worker.stop()
    counts = Counter(dict(m.headers() or [])["ce_id"] for m in out)
    sent = {dict(h)["ce_id"] for _, _, h in items}
    assert sent - set(counts) == set(), f"{len(sent - set(counts))} of {total} records lost"
    return counts


def test_sigkill_mid_stream_loses_nothing_at_least_once(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    counts = _kill_mid_stream(kafka_bootstrap, unique_name, tmp_path, exactly_once=False, total=50_000)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"at-least-once after SIGKILL: 0 lost, {duplicates} duplicates")  # reported with -s / -rP
    assert duplicates <= 50_000


def test_sigkill_mid_stream_exactly_once_has_no_duplicates(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    counts = _kill_mid_stream(kafka_bootstrap, unique_name, tmp_path, exactly_once=True, total=50_000)
    assert [i for i, n in counts.items() if n > 1] == []


def test_dedup_store_survives_a_killed_worker(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    name = unique_name
    env = worker_env(kafka_bootstrap, name, tmp_path, instance_id="w1")
    routes = (
        'routes:\n  - name: once\n    match: {env: prod}\n    to: {template: "{env}.{source}.all.once-v1"}\n'
    )
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(routes + "    dedup: true\n"))  # fmt: skip
    ingest = f"prod.{name}.ingest.all-v1"
    value, headers = record("prod", name, "1", "x")
    send(kafka_bootstrap, ingest, [(b"k", value, headers)])
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        # killed once its batch is acknowledged and committed (its id recorded): only the resend is read
        # again; a kill before the commit (the original read again too) is the settle tests' case
        # (tests/reliability/test_dedup_restart.py, tests/refinery/dedup/)
        wait_for(lambda: group_lag({"bootstrap.servers": kafka_bootstrap}, name, [ingest]) == 0,
                 what="the first worker to commit its batch")  # fmt: skip
        assert len(consume_all(kafka_bootstrap, [f"_{name}-dedup"], timeout=10, idle=1)) >= 2  # intent, id
        worker.kill()
        send(kafka_bootstrap, ingest, [(b"k", value, headers)])  # the producer resends the same record
        worker = WorkerProcess(env, tmp_path / "worker-restarted.log").start()
        wait_for(lambda: worker.stats()["totals"]["deduplicated"] == 1, what="resent record deduplicated")
    finally:
        worker.stop()
    out = consume_all(kafka_bootstrap, [f"prod.{name}.all.once-v1"], timeout=10, idle=2)
    assert len(out) == 1 and out[0].value() == value

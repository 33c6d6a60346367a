"""Workers joining and leaving under load on the 3-node cluster: the SDK sends the reference workload
while the consumer group grows from 1 to 3 workers and shrinks back to 1 (SIGTERM: a clean leave).
Nothing may be lost (`refinery.reconcile`), duplicates are counted (at-least-once) or must be 0
(exactly-once), and each rebalance's pause is measured on the derived records afterwards: latency from
the SDK's send (`ce_time`) to the worker's produce (the derived record's timestamp) p50/p99/max for the
records sent in each phase, the longest gap between consecutive routings, and duplicates per phase.
Derived topics are created by the workers here (no priming: no broker fault), so their replication (3)
and min.insync.replicas (2) are checked too.

CI runs at-least-once (the default guarantee); REFINERY_SOAK=1 adds exactly-once and longer phases."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from common.kafka_admin import TopicEnsurer
from devstack.local_cluster import LocalKafkaCluster
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import record, send
from tests.reliability.cluster.harness import (
    INGEST_PARTITIONS,
    MIN_ISR,
    REPLICAS,
    SOAK,
    Arrival,
    Namespace,
    Sampler,
    UncommittedInput,
    WorkerGroup,
    WorkloadFeeder,
    arrivals,
    memory_sample,
    peak_memory,
    percentile,
    prepare_namespace,
    reconcile,
    replication_of,
    rss_mb,
    settle,
)
from tests.reliability.dataplane_checks import wait_ready
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

RATE = 200.0
PHASE_S = 25.0 if SOAK else 8.0  # steady time after each change
SOAK_ONLY = pytest.mark.skipif(not SOAK, reason="soak variant (REFINERY_SOAK=1): CI runs at-least-once")


def reconcile_cli(cluster: LocalKafkaCluster, space: Namespace, tmp: Path) -> dict[str, Any]:
    """`refinery-reconcile --json` over the namespace, as an operator would run it: its report and exit."""
    routes = tmp / "routes.yaml"
    routes.write_text(space.routes)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINERY_")}
    env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"] = cluster.bootstrap
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "refinery-reconcile"), "--routes", str(routes), "--json",
         "--ingest-pattern", space.ingest_pattern, "--derived-pattern", space.derived_pattern,
         "--dlq-topic", space.dlq_topic],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return {**json.loads(proc.stdout), "exit": proc.returncode}


def phase_figures(routed: list[Arrival], start: float, end: float) -> dict[str, Any]:
    """Figures of the records the SDK sent between `start` and `end` (epoch s)."""
    inside = [a for a in routed if start <= a.sent_at < end]
    latencies = [a.latency for a in inside]
    times = sorted(a.routed_at for a in inside)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    copies = Counter((a.message_id, a.topic) for a in inside)
    return {
        "records": len(inside), "p50_ms": round(percentile(latencies, 0.5) * 1000),
        "p99_ms": round(percentile(latencies, 0.99) * 1000),
        "max_ms": round(max(latencies, default=0) * 1000),
        "longest_gap_ms": round(max(gaps, default=0) * 1000),
        "duplicates": sum(n - 1 for n in copies.values() if n > 1),
    }  # fmt: skip


@pytest.mark.parametrize("exactly_once", [False, pytest.param(True, marks=SOAK_ONLY)])
def test_workers_join_and_leave_under_load(
    cluster: LocalKafkaCluster, workload_registry_url: str, tmp_path: Path, exactly_once: bool
) -> None:
    conf = cluster.client_config
    mode = "exactly_once" if exactly_once else "at_least_once"
    space = Namespace.new(f"s{'e' if exactly_once else 'a'}")
    prepare_namespace(conf, space)
    group = WorkerGroup(cluster.bootstrap, space, tmp_path, exactly_once=exactly_once)
    feeder = WorkloadFeeder(cluster.bootstrap, workload_registry_url, space, rate=RATE, seed=7)
    uncommitted = Sampler(UncommittedInput(conf, space.group, space.ingest_topics), 0.25)
    memory = Sampler(lambda: memory_sample(cluster, [group]), 1.0)
    events: list[tuple[str, float, float]] = []  # (what, began, done), epoch s
    started = time.monotonic()
    try:
        group.add(1)
        wait_ready(group.workers[0], timeout=60)
        with memory, uncommitted:
            feeder.start()
            time.sleep(PHASE_S)
            began = time.time()
            group.add(2)  # 1 -> 3
            for worker in group.workers:
                wait_ready(worker, timeout=60)
            events.append(("join 1->3", began, time.time()))
            time.sleep(PHASE_S)
            began = time.time()
            group.remove()
            group.remove()  # 3 -> 1
            events.append(("leave 3->1", began, time.time()))
            time.sleep(PHASE_S)
            feeder.halt()
            fed_until = time.time()
            feeder.stop()
            wait_caught_up(conf, space.group, space.ingest_topics, timeout=120)
        alive = group.alive()
        revoked = group.log_count('"partitions revoked"')
    finally:
        feeder.halt()
        uncommitted.sample.close()
        group.stop()
    outcome = settle(conf, space, feeder, mode, uncommitted)
    routed = arrivals(conf, space)
    bounds = [min(a.sent_at for a in routed)] + [began for _, began, _ in events] + [fed_until]
    names = ["steady, 1 worker"] + [what for what, _, _ in events]
    phases = {name: phase_figures(routed, bounds[i], bounds[i + 1]) for i, name in enumerate(names)}
    replication = replication_of(conf, [*space.derived_topics(conf), space.dlq_topic])
    cli = reconcile_cli(cluster, space, tmp_path)
    record_figures(
        f"cluster_scaling[{mode}]", **outcome.figures(), rate_per_s=RATE, phase_s=PHASE_S,
        events={what: {"took_s": round(done - began, 1)} for what, began, done in events},
        latency_by_phase=phases, partitions_revoked=revoked, workers_alive=alive,
        derived_topics_created=len(replication), seconds=round(time.monotonic() - started, 1),
        peak_rss_mb=peak_memory(memory), reconcile_cli_exit=cli["exit"],
    )  # fmt: skip
    r = outcome.report
    kinds = ("sent", "expected_deliveries", "delivered", "lost", "duplicated", "misrouted")
    assert {k: cli[k] for k in kinds} == {k: getattr(r, k) for k in kinds}, (cli, r)
    assert cli["exit"] == (0 if r.clean else 1), cli
    assert alive, "a worker exited"
    assert outcome.pending == 0 and outcome.acked > 0 and outcome.acked_missing == 0, outcome.figures()
    assert r.lost == 0 and r.misrouted == 0 and r.dlq_found == 0, r
    if exactly_once:
        assert r.duplicated == 0, r.duplicated_by_topic
    else:
        assert r.duplicated <= outcome.max_fanout * outcome.max_uncommitted, outcome.figures()
    weak = {t: v for t, v in replication.items() if v != (REPLICAS, MIN_ISR)}
    assert weak == {}, f"topics the workers created without replication 3 / min.insync.replicas 2: {weak}"
    assert all(p["records"] > 0 for p in phases.values()), phases  # routing went on in every phase


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def many_routes(space: Namespace, count: int) -> str:
    """`count` routes, route i sending title t{i} to a topic of its own."""
    lines = ["routes:"]
    for i in range(count):
        lines += [f"  - name: r{i:04d}", f'    match: {{env: prod, title: "t{i:04d}"}}',
                  f"    to: {{topic: prod.{space.ns}t.t{i:04d}.all-v1}}"]  # fmt: skip
    return "\n".join(lines) + "\n"


@SOAK_ONLY
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("routes", [8, 1000])
def test_thousand_topics_and_routes(cluster: LocalKafkaCluster, tmp_path: Path, routes: int) -> None:
    """What 1,000 routes to 1,000 derived topics (1 partition, 3 replicas each) cost a worker and the
    cluster against 8 routes to 8 topics, same records: a cold pass (every derived topic created on its
    first use by the worker) and a warm pass, with worker and broker CPU per record."""
    space = Namespace.new(f"k{routes}x")
    conf = cluster.client_config
    text = many_routes(space, routes)
    (ns_ingest,) = [t for t in space.ingest_topics if t.startswith(f"prod.{space.ns}t.")]
    TopicEnsurer(conf, partitions=INGEST_PARTITIONS).ensure(ns_ingest)
    publish_route_set(conf, space.routes_topic, load_route_set(text))
    group = WorkerGroup(cluster.bootstrap, space, tmp_path, exactly_once=False)
    total = 20_000
    items = []
    for i in range(total):
        value, headers = record(
            "prod", space.sources["telemetry"], f"t{i % routes:04d}", "x", payload=b"p" * 200
        )
        items.append((f"m{i % 97}".encode(), value, headers))
    figures: dict[str, Any] = {"routes": routes, "derived_topics": routes, "records_per_pass": total}
    try:
        group.add(1)
        (worker,) = group.workers
        wait_ready(worker, timeout=60)
        pids = [n.pid() for n in cluster.nodes.values()]
        for name in ("cold", "warm"):
            brokers_before = sum(cpu_seconds(p) for p in pids)
            worker_before = cpu_seconds(worker.proc.pid if worker.proc else None)
            began = time.monotonic()
            send(cluster.bootstrap, ns_ingest, items)
            wait_caught_up(conf, space.group, [ns_ingest], timeout=900)
            seconds = time.monotonic() - began
            worker_cpu = cpu_seconds(worker.proc.pid if worker.proc else None) - worker_before
            broker_cpu = sum(cpu_seconds(p) for p in pids) - brokers_before
            figures[name] = {
                "seconds": round(seconds, 1), "records_per_s": round(total / seconds),
                "worker_cpu_us_per_record": round(worker_cpu / total * 1e6, 1),
                "brokers_cpu_us_per_record": round(broker_cpu / total * 1e6, 1),
            }  # fmt: skip
        figures["broker_rss_mb"] = cluster.rss_mb()
        figures["worker_rss_mb"] = round(rss_mb(worker.proc.pid if worker.proc else None))
    finally:
        group.stop()
    report = reconcile(conf, space, routes=text)
    figures.update(lost=report.lost, duplicated=report.duplicated, delivered=report.delivered)
    record_figures(f"cluster_routes_and_topics[{routes}]", **figures)
    assert report.lost == 0 and report.misrouted == 0 and report.sent == 2 * total, report

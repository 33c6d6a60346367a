"""Broker and controller faults on a 3-node KRaft cluster (replication 3, min.insync.replicas=2) while the
producer SDK sends the reference workload and refinery workers route it: two at-least-once workers and
two exactly-once workers (each pair a consumer group with a namespace of its own) run side by side
through the same fault. Afterwards every acknowledged send must be on its ingest topic and
`refinery.reconcile` must find nothing lost or misrouted; exactly-once must have no duplicate, and
at-least-once duplicates are counted and must stay within what was in flight: the most input records
the group had consumed-or-queued but not committed (sampled every 0.25 s) times the largest fan-out.

Faults: (1) SIGKILL of the broker leading the busiest ingest partitions, restarted after an outage;
(2) SIGKILL of the active KRaft controller (a combined node: it is a broker too), restarted; (3) a
rolling restart (SIGTERM, restart, wait until fully in sync, next); (4) SIGSTOP of the busiest leader
for 12 s (past the 9 s broker session timeout: it is fenced, then wakes up as a zombie), then SIGCONT;
REFINERY_SOAK=1 stalls it 30 s and sends for longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.local_cluster import LocalKafkaCluster
from devstack.processes import wait_until
from tests.reliability.cluster.harness import (
    MIN_ISR,
    REPLICAS,
    SOAK,
    Namespace,
    Outcome,
    Sampler,
    UncommittedInput,
    WorkerGroup,
    WorkloadFeeder,
    leader_by_load,
    memory_sample,
    namespace_offsets,
    peak_memory,
    prepare_namespace,
    prime,
    replication_of,
    settle,
    unstable_partitions,
)
from tests.reliability.dataplane_checks import wait_ready
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

RATE = 120.0  # records/s per guarantee (reference workload through the SDK)
WARMUP_S = 3.0  # routing before the fault
AFTER_S = 2.0 if not SOAK else 30.0  # sending after the faulty node serves again
OUTAGE_S = 0.0 if not SOAK else 20.0  # a killed node is started again after this long (then its JVM starts)
STALL_S = 30.0 if SOAK else 12.0
# An exactly-once attempt may legitimately take up to 3 x drain_timeout_s under a fault (flush,
# send_offsets_to_transaction and commit_transaction are each bounded by it) plus the retry backoff: a
# worker that has not come back by these bounds is stuck. A worker sitting in one call longer than
# drain_timeout_s is hung (librdkafka#5456: send_offsets_to_transaction ignores its timeout when the
# group coordinator is down), which two stack dumps show after CHECK_AFTER_S without progress.
CHECK_AFTER_S = 25.0
# The workers' drain_timeout_s (default 30 s), which bounds each transactional call: 10 s is plenty on a
# local cluster and finds a hung call sooner. Their watchdog (refinery.worker.watchdog) calls a call
# wedged 5 s past that and exits 5 s later (defaults 10 s and 30 s), so a wedged worker is gone and
# started again by the group's supervisor (`WorkerGroup.supervise`) well before CHECK_AFTER_S.
DRAIN_TIMEOUT_S = 10.0
WATCHDOG = {"watchdog_grace_s": 5.0, "watchdog_exit_after_s": 5.0}
STUCK_AFTER_S = 100.0  # a group that has not committed everything by then has a stuck worker
PROBE_S = 100.0  # every worker routes a record of the probe within this
OPEN_TXN_S = 45.0  # longer than the workers' transaction timeout (30 s): the coordinator aborts by then

Fault = Callable[[LocalKafkaCluster, list[str]], dict[str, Any]]
MODES = {"at_least_once": False, "exactly_once": True}


@dataclass
class Pipeline:
    """Per guarantee: a namespace and a group of two workers routing it, for the whole module (starting
    four workers costs ~15 s on two cores); each test reconciles only the records of its own run."""

    spaces: dict[str, Namespace]
    groups: dict[str, WorkerGroup]

    def ready(self) -> float:
        """Workers that died, or are stuck from an earlier test, are started again, and every one has
        written to each derived topic it may need (`prime`); all are ready and have committed everything."""
        started = time.monotonic()
        for group in self.groups.values():
            group.revive()
            if not wait_until(lambda group=group: group.all_ready(), 45.0, interval=0.5):
                group.restart_stuck()
            for worker in group.workers:
                wait_ready(worker, timeout=90)
        for space in self.spaces.values():
            prime(self.conf, space)
        for space in self.spaces.values():
            wait_caught_up(self.conf, space.group, space.ingest_topics, timeout=120)
        return time.monotonic() - started

    @property
    def conf(self) -> dict[str, Any]:
        return {"bootstrap.servers": next(iter(self.groups.values())).env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"]}


@pytest.fixture(scope="module")
def pipeline(
    kafka_cluster: LocalKafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("cluster-faults")
    spaces = {mode: Namespace.new(f"f{'e' if eos else 'a'}") for mode, eos in MODES.items()}
    groups = {mode: WorkerGroup(kafka_cluster.bootstrap, spaces[mode], tmp, exactly_once=eos,
                                drain_timeout_s=DRAIN_TIMEOUT_S, **WATCHDOG)
              for mode, eos in MODES.items()}  # fmt: skip
    for space in spaces.values():
        prepare_namespace(kafka_cluster.client_config, space)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda g: g.add(2), groups.values()))
        record_figures(
            "cluster_faults_workers_start", workers=4, seconds=round(time.monotonic() - started, 1)
        )
        yield Pipeline(spaces, groups)
    finally:
        for group in groups.values():
            group.kill()  # nothing is checked after the last test: no clean (30 s) shutdown needed


def run_through_fault(
    cluster: LocalKafkaCluster, pipeline: Pipeline, registry_url: str, kind: str, fault: Fault, seed: int
) -> dict[str, Outcome]:
    conf = cluster.client_config
    spaces, groups = pipeline.spaces, pipeline.groups
    started = time.monotonic()
    ready_s = pipeline.ready()
    starts = {mode: namespace_offsets(conf, space) for mode, space in spaces.items()}
    feeders = {mode: WorkloadFeeder(cluster.bootstrap, registry_url, spaces[mode], rate=RATE, seed=seed + i)
               for i, mode in enumerate(MODES)}  # fmt: skip
    uncommitted = {mode: Sampler(UncommittedInput(conf, spaces[mode].group, spaces[mode].ingest_topics), 0.25)
                   for mode in MODES}  # fmt: skip
    memory = Sampler(lambda: memory_sample(cluster, groups.values()), 1.0)
    under_replicated = Sampler(lambda: most_under_replicated(cluster), 1.0)
    supervisor = Sampler(lambda: [group.supervise() for group in groups.values()], 1.0)
    restarts_before = {mode: len(group.watchdog_restarts) for mode, group in groups.items()}
    ingest = [t for space in spaces.values() for t in space.ingest_topics]
    revoked_before = {mode: group.log_count('"partitions revoked"') for mode, group in groups.items()}
    try:
        with memory, under_replicated, supervisor, uncommitted["at_least_once"], uncommitted["exactly_once"]:
            for feeder in feeders.values():
                feeder.start()
            time.sleep(WARMUP_S)
            fault_started = time.monotonic()
            fault_figures = fault(cluster, ingest)
            fault_s = time.monotonic() - fault_started
            time.sleep(AFTER_S)
            for feeder in feeders.values():
                feeder.halt()
            flush_started = time.monotonic()
            for feeder in feeders.values():
                feeder.stop()
            flush_s = time.monotonic() - flush_started
            caught = {mode: catch_up(conf, groups[mode]) for mode in MODES}
            stuck = {mode: c[0] for mode, c in caught.items()}
            caught_up_s = time.monotonic() - flush_started
        for group in groups.values():
            group.supervise()
        alive = {mode: group.alive() for mode, group in groups.items()}
        watchdog = {mode: group.watchdog_restarts[restarts_before[mode] :] for mode, group in groups.items()}
        revoked = {mode: group.log_count('"partitions revoked"') - revoked_before[mode]
                   for mode, group in groups.items()}  # fmt: skip
    finally:
        for feeder in feeders.values():
            feeder.halt()
        for sampler in uncommitted.values():
            sampler.sample.close()
    outcomes = {mode: settle(conf, spaces[mode], feeders[mode], mode, uncommitted[mode], starts[mode])
                for mode in MODES}  # fmt: skip
    cluster.wait_healthy(timeout=120)
    fault_at = fault_started - under_replicated.started
    degraded = [(t, n) for t, n in under_replicated.values if t >= fault_at and n > 0]
    fault_figures["under_replicated_max"] = max((n for _, n in degraded), default=0)
    fault_figures["whole_again_after_s"] = round(
        max((t for t, _ in degraded), default=fault_at) - fault_at, 1
    )
    created = [t for space in spaces.values() for t in space.derived_topics(conf)]
    created += [t for space in spaces.values() for t in (space.dlq_topic, f"_{space.group}-dedup")]
    replication = replication_of(conf, [t for t in created if t in cluster_topics(cluster)])
    for mode, outcome in outcomes.items():
        outcome.extra.update(workers_alive=alive[mode], partitions_revoked=revoked[mode],
                             stuck_workers_restarted=stuck[mode], watchdog_exits=watchdog[mode],
                             every_worker_routing_after_s=caught[mode][1])  # fmt: skip
        record_figures(
            f"cluster_{kind}[{mode}]", **outcome.figures(), rate_per_s=RATE, fault=fault_figures,
            fault_s=round(fault_s, 1), ready_before_s=round(ready_s, 1), flush_s=round(flush_s, 1),
            caught_up_after_stop_s=round(caught_up_s, 1), seconds=round(time.monotonic() - started, 1),
            peak_rss_mb=peak_memory(memory),
        )  # fmt: skip
    weak = {t: r for t, r in replication.items() if r != (REPLICAS, MIN_ISR)}
    assert weak == {}, (
        f"topics created without replication {REPLICAS} / min.insync.replicas {MIN_ISR}: {weak}"
    )
    for mode, outcome in outcomes.items():
        check(outcome, exactly_once=mode == "exactly_once")
    if any(stuck.values()):  # nothing lost or duplicated, but a worker stopped making progress and its
        # own watchdog did not end it (a wedged call it watches exits by itself: `watchdog_exits`)
        pytest.xfail(f"known gap: a worker stopped making progress until the harness restarted it: {stuck}")
    return outcomes


def catch_up(conf: dict[str, Any], group: WorkerGroup) -> tuple[list[dict[str, Any]], float]:
    """Wait until the group has committed everything and no transaction is left open on its derived
    topics (a read_committed reader sees nothing past an open one). A group that makes no progress for
    STUCK_AFTER_S, or leaves a transaction open past the transaction timeout, has its non-ready workers
    restarted (and reported) so the run can still be reconciled. Returns them, and how long after the
    group caught up every worker routed a probe record."""
    space = group.space
    stuck: list[dict[str, Any]] = []
    bound = float(group.env.get("REFINERY_WORKER_DRAIN_TIMEOUT_S", DRAIN_TIMEOUT_S))

    def caught_up(timeout: float) -> bool:
        try:
            wait_caught_up(conf, space.group, space.ingest_topics, timeout=timeout)
            return True
        except AssertionError:
            return False

    if not caught_up(CHECK_AFTER_S):
        stuck += group.restart_hung(group.progressed_since(time.time() - CHECK_AFTER_S), bound_s=bound)
        if not caught_up(STUCK_AFTER_S):
            stuck += group.restart_stuck()
            if not caught_up(120):
                raise AssertionError(f"{group.mode} group never caught up; workers: {group.describe()}")
    # every worker must still make progress: a data plane stuck in a call (its partitions may have moved
    # to the other worker, so the group caught up without it) would not route this probe
    probe_at = time.time()
    prime(conf, space)
    if not wait_until(lambda: not group.progressed_since(probe_at), CHECK_AFTER_S, 0.5):
        stuck += group.restart_hung(group.progressed_since(probe_at), bound_s=bound)
        if not wait_until(lambda: not group.progressed_since(probe_at), PROBE_S, 0.5):
            stuck += group.restart_stuck(group.progressed_since(probe_at))
    probe_s = round(time.time() - probe_at, 1)
    wait_caught_up(conf, space.group, space.ingest_topics, timeout=120)
    open_transactions = unstable_partitions(conf, space)
    if open_transactions and not wait_until(lambda: not unstable_partitions(conf, space), OPEN_TXN_S, 1.0):
        restarted = group.restart_stuck()
        for entry in restarted:
            entry["open_transactions"] = open_transactions
        stuck += restarted
        assert wait_until(lambda: not unstable_partitions(conf, space), 60.0, 1.0), (
            f"transactions still open on {unstable_partitions(conf, space)}; workers: {group.describe()}"
        )
    return stuck, probe_s


def most_under_replicated(cluster: LocalKafkaCluster) -> int:
    """Under-replicated partitions as the node that sees most of them says (a stalled node says nothing)."""
    return max(cluster.under_replicated(timeout=1.0, via=i) for i in cluster.running())


def cluster_topics(cluster: LocalKafkaCluster) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient(cluster.client_config).list_topics(timeout=10).topics)


def check(outcome: Outcome, *, exactly_once: bool) -> None:
    r = outcome.report
    assert outcome.extra["workers_alive"], f"{outcome.mode}: a worker exited during the fault"
    assert outcome.pending == 0, f"{outcome.mode}: {outcome.pending} sends never resolved"
    assert outcome.acked > 0 and outcome.acked_missing == 0, (
        f"{outcome.mode}: {outcome.acked_missing} acknowledged sends are not on the ingest topics"
    )
    assert r.lost == 0 and r.misrouted == 0, f"{outcome.mode}: {r}"
    assert r.dlq_found == 0, f"{outcome.mode}: dead letters {r.dlq_reasons}"
    if exactly_once:
        assert r.duplicated == 0, f"exactly-once duplicated {r.duplicated}: {r.duplicated_by_topic}"
    else:
        assert r.duplicated <= outcome.max_fanout * outcome.max_uncommitted, (
            f"at-least-once: {r.duplicated} duplicates, more than the {outcome.max_uncommitted} records in "
            f"flight x fan-out {outcome.max_fanout}"
        )


# --- the faults ---------------------------------------------------------------------------------------
def kill_busiest_leader(cluster: LocalKafkaCluster, ingest: list[str]) -> dict[str, Any]:
    """A broker only: the busiest leader among the nodes that are not the active controller."""
    node = leader_by_load(cluster, ingest, exclude=cluster.active_controller())
    led = cluster.leader_counts(ingest)[node]
    killed_at = time.monotonic()
    cluster.kill(node)
    time.sleep(OUTAGE_S)
    cluster.start_node(node, in_sync=False)
    return {"node": node, "ingest_partitions_led": led, "down_s": round(time.monotonic() - killed_at, 1)}


def kill_active_controller(cluster: LocalKafkaCluster, ingest: list[str]) -> dict[str, Any]:
    node = cluster.active_controller()
    assert node is not None
    led = cluster.leader_counts(ingest)[node]
    killed_at = time.monotonic()
    cluster.kill(node)
    new = None
    while time.monotonic() - killed_at < 30 and (new := cluster.active_controller()) in (None, node):
        time.sleep(0.1)
    elected_s = time.monotonic() - killed_at
    time.sleep(max(OUTAGE_S - elected_s, 0))
    cluster.start_node(node, in_sync=False)
    return {"node": node, "ingest_partitions_led": led, "new_controller": new,
            "new_controller_after_s": round(elected_s, 1),
            "down_s": round(time.monotonic() - killed_at, 1)}  # fmt: skip


def rolling_restart(cluster: LocalKafkaCluster, _ingest: list[str]) -> dict[str, Any]:
    """Each node in turn: SIGTERM (controlled shutdown), start, and wait until no partition is
    under-replicated before the next (what an operator's rolling restart waits for)."""
    steps = {}
    for node in sorted(cluster.nodes):
        began = time.monotonic()
        cluster.stop_node(node)
        stopped_s = time.monotonic() - began
        rejoin_s = cluster.start_node(node, in_sync=True)
        steps[node] = {"controlled_shutdown_s": round(stopped_s, 1), "rejoin_in_sync_s": round(rejoin_s, 1)}
    return {"steps": steps}


def stall_busiest_leader(cluster: LocalKafkaCluster, ingest: list[str]) -> dict[str, Any]:
    node = leader_by_load(cluster, ingest)
    led = cluster.leader_counts(ingest)[node]
    was_controller = cluster.active_controller() == node
    cluster.pause(node)
    time.sleep(STALL_S)
    fenced = node not in cluster.brokers()
    cluster.resume(node)
    return {"node": node, "ingest_partitions_led": led, "was_controller": was_controller,
            "stalled_s": STALL_S, "fenced_while_stalled": fenced}  # fmt: skip


@pytest.mark.parametrize(
    "kind, fault",
    [
        ("leader_sigkill", kill_busiest_leader),
        ("controller_sigkill", kill_active_controller),
        ("rolling_restart", rolling_restart),
        ("leader_sigstop", stall_busiest_leader),
    ],
)
def test_no_acknowledged_record_lost_through_broker_faults(
    cluster: LocalKafkaCluster, pipeline: Pipeline, workload_registry_url: str, kind: str, fault: Fault
) -> None:
    run_through_fault(cluster, pipeline, workload_registry_url, kind, fault, seed=len(kind))

"""Three schema registry replicas on the 3-node cluster (their topics with replication 3 and
min.insync.replicas=2). Clients keep registering new schemas, each through the next replica in turn,
retrying on the next one after an error or a 5 s timeout (what a client behind a load balancer does).
The leader is SIGSTOPped (alive, holding its sockets and its place in the leader group, answering
nothing) for 12 s (30 s with REFINERY_SOAK=1), then SIGCONTed with the requests that queued up on it
during the stall.

Three clients write at once, each starting its round robin at a different replica, so writes can go
on through whichever path works. Claims: writes go on through a new leader within WRITE_GAP_BOUND_S
(twice the leader group's session timeout, 6 s, plus 6 s for the rebalance, the new leader reading the
topic to its end and a client timing out once); no schema id is ever given to two different schemas,
neither in the answers clients got nor in what every replica serves afterwards; all replicas agree on
every subject, version and id."""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.local_cluster import LocalKafkaCluster
from tests.reliability.cluster.harness import SOAK, create_replicated_topics
from tests.reliability.figures import record_figures
from tests.reliability.test_registry_failover import snapshot
from tests.schema_registry.processes import RegistryProcess
from tests.schema_registry.test_durability_and_replicas import avro, is_leader
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STALL_S = 30.0 if SOAK else 12.0
SESSION_TIMEOUT_S = 6.0  # RegistryProcess sets REFINERY_REGISTRY_LEADER_SESSION_TIMEOUT_MS=6000
WRITE_GAP_BOUND_S = 2 * SESSION_TIMEOUT_S + 6.0
CLIENT_TIMEOUT_S = 5.0
CLIENTS = 3


class Writers:
    """CLIENTS clients; client c registers schema n under subject c{c}-s{n}, n = 0, 1, ..., one after
    another, each through the next replica (round robin from replica c), retrying through the
    following ones until it is acknowledged."""

    def __init__(self, replicas: list[RegistryProcess]) -> None:
        self.replicas = replicas
        self.acked: dict[str, tuple[int, float, int]] = {}  # subject -> (id, acknowledged at, attempts)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in range(CLIENTS)]

    def _run(self, c: int) -> None:
        n, turn = 0, c
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            while not self._stop.is_set():
                subject = f"c{c}-s{n}"
                for attempt in range(1, 50):
                    replica = self.replicas[turn % len(self.replicas)]
                    turn += 1
                    try:
                        answer = client.post(f"{replica.url}/subjects/{subject}/versions",
                                             json={"schema": avro(f"R{c}x{n}", f"f{n}")})  # fmt: skip
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{type(exc).__name__} via {replica.url}")
                        continue
                    if answer.status_code == 200:
                        self.acked[subject] = (int(answer.json()["id"]), time.monotonic(), attempt)
                        break
                    self.errors.append(f"{answer.status_code} {answer.text[:100]} via {replica.url}")
                    time.sleep(0.1)
                n += 1
                time.sleep(0.3)

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def longest_gap(self, start: float, end: float) -> float:
        times = sorted([start, *(at for _, at, _ in self.acked.values() if start <= at <= end), end])
        return max(b - a for a, b in itertools.pairwise(times))


def test_stalled_registry_leader_is_replaced_and_no_id_is_reused(
    cluster: LocalKafkaCluster, tmp_path: Path
) -> None:
    topic = f"_schemas_r3_{uuid.uuid4().hex[:8]}"
    create_replicated_topics(cluster.client_config, [topic, f"{topic}_coordination"], compacted=True)
    replicas = [RegistryProcess(cluster.bootstrap, topic, log_path=tmp_path / f"registry-{i}.log")
                for i in range(3)]  # fmt: skip
    stalled: RegistryProcess | None = None
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda r: r.start(), replicas))
        leader = wait_for(
            lambda: next((r for r in replicas if is_leader(r)), None), timeout=30, what="a leader"
        )
        with Writers(replicas) as writers:
            time.sleep(3)
            before = len(writers.acked)
            assert leader.proc is not None
            stalled_at = time.monotonic()
            leader.proc.send_signal(signal.SIGSTOP)
            stalled = leader
            others = [r for r in replicas if r is not leader]
            wait_for(lambda: any(is_leader(r) for r in others), timeout=60, what="a new leader")
            new_leader_s = time.monotonic() - stalled_at
            time.sleep(max(STALL_S - (time.monotonic() - stalled_at), 0))
            during = len(writers.acked) - before
            leader.proc.send_signal(signal.SIGCONT)
            stalled, resumed_at = None, time.monotonic()
            time.sleep(6)  # the old leader answers what queued up on it, and finds out it no longer leads
        gap = writers.longest_gap(stalled_at, resumed_at)
        old_leader_still_leads = is_leader(leader)
        ids: dict[int, set[str]] = {}
        for subject, (schema_id, _, _) in writers.acked.items():
            ids.setdefault(schema_id, set()).add(subject)
        reused_in_answers = {i: sorted(ns) for i, ns in ids.items() if len(ns) > 1}
        served = [snapshot(r.url) for r in replicas]
        served_ids: dict[int, set[str]] = {}
        for subject, versions in served[0].items():
            for _version, schema_id in versions:
                served_ids.setdefault(schema_id, set()).add(subject)
        reused_served = {i: sorted(s) for i, s in served_ids.items() if len(s) > 1}
        figures: dict[str, Any] = {
            "stall_s": STALL_S, "acknowledged_before": before, "acknowledged_during_stall": during,
            "acknowledged_total": len(writers.acked), "new_leader_after_s": round(new_leader_s, 1),
            "longest_write_gap_s": round(gap, 1), "write_gap_bound_s": WRITE_GAP_BOUND_S,
            "client_errors": len(writers.errors),
            "retried_writes": sum(a > 1 for _, _, a in writers.acked.values()),
            "ids_reused_in_answers": len(reused_in_answers), "ids_reused_served": len(reused_served),
            "replicas_agree": all(s == served[0] for s in served),
            "old_leader_still_leads": old_leader_still_leads,
        }  # fmt: skip
        record_figures("cluster_registry_leader_sigstop", **figures)
        assert during > 0 and gap <= WRITE_GAP_BOUND_S, figures
        assert reused_in_answers == {} and reused_served == {}, (reused_in_answers, reused_served)
        assert figures["replicas_agree"], served
        assert len(served_ids) == len(served[0]) >= len(writers.acked), figures
        assert not old_leader_still_leads, "the stalled leader still thinks it leads after SIGCONT"
    finally:
        if stalled is not None and stalled.proc is not None:
            stalled.proc.send_signal(signal.SIGCONT)
        for replica in replicas:
            replica.stop()

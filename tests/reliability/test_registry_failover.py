"""Gaps left by tests/schema_registry/test_durability_and_replicas.py: 50 concurrent registrations of
*different* schemas through two replicas get 50 distinct ids; after kill -9 of the writer (while
registrations continue) the survivor takes over, no id is ever reused, and a restarted replica serves
every subject, version and id unchanged."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.reliability.figures import record_figures
from tests.schema_registry.processes import RegistryProcess
from tests.schema_registry.test_durability_and_replicas import avro, is_leader, register
from tests.support import wait_for

pytestmark = pytest.mark.integration


def snapshot(url: str) -> dict[str, list[tuple[int, int]]]:
    """subject -> [(version, id)] as the replica serves it."""
    out = {}
    for subject in httpx.get(f"{url}/subjects", timeout=30).json():
        versions = httpx.get(f"{url}/subjects/{subject}/versions", timeout=30).json()
        out[subject] = [(v, httpx.get(f"{url}/subjects/{subject}/versions/{v}", timeout=30).json()["id"])
                        for v in versions]  # fmt: skip
    return out


def test_distinct_ids_under_concurrency_and_failover(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"_schemas_failover_{uuid.uuid4().hex[:10]}"
    replicas = [RegistryProcess(kafka_bootstrap, topic, log_path=tmp_path / f"r{i}.log") for i in range(2)]
    for replica in replicas:
        replica.start()
    try:
        leader = wait_for(
            lambda: next((r for r in replicas if is_leader(r)), None), timeout=30, what="a leader"
        )
        survivor = replicas[1] if leader is replicas[0] else replicas[0]

        def attempt(i: int, via: list[RegistryProcess]) -> tuple[str, int]:
            subject = f"s{i}"
            response = register(via[i % len(via)].url, subject, avro(f"R{i}", f"f{i}"))
            assert response.status_code == 200, response.text
            return subject, int(response.json()["id"])

        with ThreadPoolExecutor(max_workers=25) as pool:
            before = dict(pool.map(lambda i: attempt(i, replicas), range(50)))
        assert len(set(before.values())) == 50  # different schemas, distinct ids

        leader.kill()  # kill -9 the writer, then keep registering through the survivor
        wait_for(lambda: is_leader(survivor), timeout=60, what="the survivor to take over writes")
        with ThreadPoolExecutor(max_workers=10) as pool:
            after = dict(pool.map(lambda i: attempt(i, [survivor]), range(50, 70)))
        assert len(set(after.values())) == 20 and not set(after.values()) & set(before.values())
        assert min(after.values()) > max(before.values())  # ids only grow: never reused

        restarted = RegistryProcess(kafka_bootstrap, topic, log_path=tmp_path / "restarted.log").start()
        replicas.append(restarted)
        expected = {s: [(1, i)] for s, i in {**before, **after}.items()}
        assert snapshot(restarted.url) == expected == snapshot(survivor.url)
        record_figures("registry_failover", concurrent_distinct=len(before), after_failover=len(after),
                       ids_reused=0, subjects_after_restart=len(expected))  # fmt: skip
    finally:
        for replica in replicas:
            replica.stop()

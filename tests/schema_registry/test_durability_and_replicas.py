"""Restart durability, adopting an existing `_schemas` topic, and several replicas with one writer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from schema_registry.kafka_log import ensure_topics
from tests.schema_registry.processes import RegistryProcess
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration


def avro(name: str, *fields: str) -> str:
    return json.dumps(
        {"type": "record", "name": name, "fields": [{"name": f, "type": "int"} for f in fields]}
    )


@pytest.fixture
def start(kafka_bootstrap: str, tmp_path: Path) -> Iterator:
    started: list[RegistryProcess] = []

    def start_registry(topic: str, env: dict[str, str] | None = None) -> RegistryProcess:
        log_path = tmp_path / f"registry-{len(started)}.log"
        registry = RegistryProcess(kafka_bootstrap, topic, log_path=log_path, env=env)
        started.append(registry)
        return registry.start()

    yield start_registry
    for registry in started:
        registry.stop()


def register(url: str, subject: str, schema: str) -> httpx.Response:
    return httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": schema}, timeout=60)


def is_leader(registry: RegistryProcess) -> bool:
    return "registry_is_leader 1.0" in httpx.get(f"{registry.url}/metrics", timeout=5).text


def test_kill_9_and_restart_keeps_everything(start, kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"_schemas_{unique_name}"
    first = start(topic)
    ids = [register(first.url, f"s{i}", avro(f"R{i}", "a")).json()["id"] for i in range(3)]
    httpx.put(f"{first.url}/config/s0", json={"compatibility": "NONE"})
    httpx.put(f"{first.url}/mode/s1", json={"mode": "READONLY"})
    httpx.delete(f"{first.url}/subjects/s2")
    httpx.delete(f"{first.url}/subjects/s2?permanent=true")  # the highest id is now gone from the store
    before = {path: httpx.get(first.url + path).json() for path in ("/subjects", "/subjects?deleted=true")}
    first.kill()

    second = start(topic)
    for path, expected in before.items():
        assert httpx.get(second.url + path).json() == expected
    assert httpx.get(f"{second.url}/subjects/s0/versions/1").json()["id"] == ids[0]
    assert httpx.get(f"{second.url}/config/s0").json() == {"compatibilityLevel": "NONE"}
    assert httpx.get(f"{second.url}/mode/s1").json() == {"mode": "READONLY"}
    assert httpx.get(f"{second.url}/schemas/ids/{ids[2]}").status_code == 404
    new_id = register(second.url, "s3", avro("R3", "b")).json()["id"]
    assert new_id > max(ids)

    # a hard delete in a named context remembers that context's highest id under its own key
    assert register(second.url, ":.k:gone", avro("K", "a")).json()["id"] == 1
    httpx.delete(f"{second.url}/subjects/:.k:gone")
    assert httpx.delete(f"{second.url}/subjects/:.k:gone?permanent=true").status_code == 200
    remembered = consume_all(kafka_bootstrap, [f"{topic}_coordination"], expected=2, timeout=20)
    assert (b"max-schema-id:.k", b"1") in [(m.key(), m.value()) for m in remembered]


def test_adopts_a_confluent_topic_and_never_reuses_compacted_ids(
    start, kafka_bootstrap: str, unique_name: str
) -> None:
    """Records written the way Confluent does, as if compaction had already removed a hard-deleted id 7."""
    topic = f"_schemas_{unique_name}"
    schema = avro("Legacy", "a")
    records: list[tuple[dict, dict | None]] = [
        ({"keytype": "NOOP", "magic": 0}, None),
        ({"keytype": "CONFIG", "subject": None, "magic": 0}, {"compatibilityLevel": "FULL"}),
        (
            {"keytype": "SCHEMA", "subject": "legacy-value", "version": 1, "magic": 1},
            {"subject": "legacy-value", "version": 1, "id": 3, "schema": schema, "deleted": False},
        ),
        (
            {"keytype": "SCHEMA", "subject": "gone-value", "version": 1, "magic": 1},
            {"subject": "gone-value", "version": 1, "id": 4, "schema": avro("Gone", "g"), "deleted": False},
        ),
        (
            {"keytype": "DELETE_SUBJECT", "subject": "gone-value", "magic": 0},
            {"subject": "gone-value", "version": 1},
        ),
        ({"keytype": "MODE", "subject": "legacy-value", "magic": 0}, {"mode": "READWRITE"}),
        # a schema context: its CONTEXT record and a subject in it with that context's own id 1
        (
            {"keytype": "CONTEXT", "tenant": "default", "context": ".ctx", "magic": 0},
            {"tenant": "default", "context": ".ctx"},
        ),
        (
            {"keytype": "SCHEMA", "subject": ":.ctx:legacy-value", "version": 1, "magic": 1},
            {"subject": ":.ctx:legacy-value", "version": 1, "id": 1, "schema": schema, "deleted": False},
        ),
    ]
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [topic, f"{topic}_coordination"])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, value in records:
        producer.produce(
            topic, key=json.dumps(key).encode(), value=None if value is None else json.dumps(value)
        )
    producer.produce(f"{topic}_coordination", key=b"max-schema-id", value=b"7")
    producer.produce(f"{topic}_coordination", key=b"max-schema-id:.ctx", value=b"5")
    assert producer.flush(30) == 0

    registry = start(topic)
    assert httpx.get(f"{registry.url}/subjects").json() == [":.ctx:legacy-value", "legacy-value"]
    assert httpx.get(f"{registry.url}/subjects?deleted=true&subjectPrefix=").json() == [
        "gone-value",
        "legacy-value",
    ]
    assert httpx.get(f"{registry.url}/config").json() == {"compatibilityLevel": "FULL"}
    assert httpx.get(f"{registry.url}/schemas/ids/3").json() == {"schema": schema}
    assert register(registry.url, "legacy-value", schema).json()["id"] == 3
    assert register(registry.url, "fresh-value", avro("Fresh", "f")).json()["id"] == 8
    assert httpx.get(f"{registry.url}/contexts").json() == [".", ".ctx"]
    assert httpx.get(f"{registry.url}/schemas/ids/1?subject=:.ctx:").json()["schema"] == schema
    assert register(registry.url, ":.ctx:fresh-value", avro("Fresh", "f")).json()["id"] == 6
    assert register(registry.url, ":.new:fresh-value", avro("Fresh", "f")).json()["id"] == 1

    # our own records use Confluent's key layout byte for byte
    keys = [m.key() for m in consume_all(kafka_bootstrap, [topic], expected=len(records) + 4, timeout=20)]
    assert b'{"keytype":"SCHEMA","subject":"fresh-value","version":1,"magic":1}' in keys
    assert b'{"keytype":"CONTEXT","tenant":"default","context":".new","magic":0}' in keys
    assert sum(b'"CONTEXT"' in key for key in keys) == 2  # .ctx (adopted) is not written again


def test_two_replicas_one_writer_and_failover(start, kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"_schemas_{unique_name}"
    a, b = start(topic), start(topic)
    leader = wait_for(lambda: next((r for r in (a, b) if is_leader(r)), None), timeout=30, what="a leader")
    follower = b if leader is a else a
    assert not is_leader(follower)

    # writes through either replica land once, and each replica reads its own writes at once
    via_follower = register(follower.url, "shared", avro("Shared", "a"))
    assert via_follower.status_code == 200, via_follower.text
    assert register(leader.url, "shared", avro("Shared", "a")).json()["id"] == via_follower.json()["id"]
    assert httpx.put(f"{follower.url}/config/shared", json={"compatibility": "NONE"}).status_code == 200
    for registry in (a, b):
        assert httpx.get(f"{registry.url}/subjects/shared/versions").json() == [1]
        assert httpx.get(f"{registry.url}/config/shared").json() == {"compatibilityLevel": "NONE"}
    schema_records = [
        m
        for m in consume_all(kafka_bootstrap, [topic], timeout=20, idle=2)
        if b'"keytype":"SCHEMA"' in m.key()
    ]
    assert len(schema_records) == 1

    # the /contexts/{ctx}/ URL prefix is forwarded as sent and read the same way by the leader
    in_context = register(f"{follower.url}/contexts/.f", "shared", avro("Shared", "a"))
    assert in_context.status_code == 200 and in_context.json()["id"] == 1, in_context.text
    for registry in (a, b):
        assert httpx.get(f"{registry.url}/subjects/:.f:shared/versions").json() == [1]
    assert httpx.delete(f"{follower.url}/contexts/.f").status_code == 422  # forwarded; not empty

    # 50 concurrent registrations of one new schema through both replicas get one id and one version
    def attempt(i: int) -> int:
        response = register((a, b)[i % 2].url, "race", avro("Race", "r"))
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    with ThreadPoolExecutor(max_workers=25) as pool:
        race_ids = set(pool.map(attempt, range(50)))
    assert len(race_ids) == 1
    assert httpx.get(f"{a.url}/subjects/race/versions").json() == [1]

    # kill -9 the writer: the survivor takes over writes once the group notices
    leader.kill()
    wait_for(lambda: is_leader(follower), timeout=40, what="the follower to take over")
    after = register(follower.url, "after-failover", avro("After", "z"))
    assert after.status_code == 200 and after.json()["id"] > max(race_ids)


def test_no_leader_means_a_clear_50004(start, unique_name: str) -> None:
    """A replica that may not lead, with nobody else running: reads work, writes say why they fail."""
    registry = start(
        f"_schemas_{unique_name}",
        env={
            "REFINERY_REGISTRY_LEADER_ELIGIBLE": "false",
            "REFINERY_REGISTRY_LEADER_SESSION_TIMEOUT_MS": "1000",
        },
    )
    assert httpx.get(f"{registry.url}/subjects").json() == []
    refused = register(registry.url, "nobody", avro("Nobody", "n"))
    assert refused.status_code == 500
    assert refused.json()["error_code"] == 50004 and "leader" in refused.json()["message"]

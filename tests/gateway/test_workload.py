"""Done-when test of issue 16: the reference workload's mix (/work/shared/workload.md) sent through the
gateway with one key per (env, title), in batches of JSON, NDJSON and protobuf (some gzip or zstd),
with a share of invalid events; a real `refinery worker` routes it with the workload route set, and the
reconciliation (`refinery.reconcile.reconciler`) finds every accepted event in its derived topics (0
lost, 0 duplicated, 0 misrouted) and no rejected one anywhere.

The test's topics are its own: the workload's sources telemetry and backend become `{name}t` and
`{name}b`, and the route set's fixed destinations are renamed the same way."""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uuid_utils
import zstandard
from google.protobuf import json_format

from common.config import REPO_ROOT, RegistrySettings
from common.envelope import decode_envelope
from producers.schemas import SchemaCatalog
from producers.workload import ENVS, TITLES, WorkloadGenerator, WorkloadMessage, register_workload
from proto.gateway_pb2 import Event as ProtoEvent
from proto.gateway_pb2 import EventBatch
from refinery.control.route_store import publish_route_set
from refinery.reconcile.reconciler import Reconciler, list_topics, read_topics, reconcile_cluster
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from tests.gateway.harness import GatewayProcess, gateway_env, unique
from tests.refinery.worker.worker_harness import WorkerProcess, worker_env
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import wait_caught_up

pytestmark = pytest.mark.integration

EVENTS = 4000
BATCH = 100
BAD_EVERY = 37  # ~2.7% of the events are invalid


@pytest.fixture(scope="module")
def name() -> str:
    return unique("t_gww")


def routes_for(name: str) -> str:
    text = (REPO_ROOT / "refinery" / "routes" / "workload.yaml").read_text()
    return (
        text.replace(".telemetry.", f".{name}t.")
        .replace(".backend.", f".{name}b.")
        .replace("dev.all.all.all-v1", f"dev.{name}.all.all-v1")
    )


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, registry_url: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, WorkerProcess]]:
    tmp = tmp_path_factory.mktemp("gateway-workload")
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=registry_url))
    try:
        register_workload(catalog)
    finally:
        catalog.close()
    env = worker_env(kafka_bootstrap, name, tmp)
    env["REFINERY_WORKER_INGEST_PATTERN"] = rf"^[a-z]+\.{name}[tb]\.ingest\.all-v1$"
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(routes_for(name)))  # fmt: skip
    worker = WorkerProcess(env, tmp / "worker.log").start()
    gateway = GatewayProcess(
        gateway_env(kafka_bootstrap, registry_url, f"_{name}-keys"), tmp / "gateway.log"
    ).start()
    yield gateway, worker
    gateway.stop()
    worker.stop()


def json_event(msg: WorkloadMessage, source: str, event_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"category": msg.category, "version": msg.version, "source": source,
                             "key": msg.key, "attributes": msg.attributes}  # fmt: skip
    if event_id:
        event["id"] = event_id
    if isinstance(msg.payload, bytes):
        event["payload_base64"] = base64.b64encode(msg.payload).decode()
    elif isinstance(msg.payload, dict):
        event["payload"] = msg.payload
    else:  # the purchase Protobuf message, as the JSON object the SDK's dict path parses
        event["payload"] = json_format.MessageToDict(msg.payload, preserving_proto_field_name=True)
    return event


def broken(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """An invalid variant: a payload that fails its schema, an unregistered version, or a bad id."""
    kind = rng.randrange(3)
    if kind == 0 and "payload" in event:
        return {**event, "payload": {**event["payload"], "no_such_field": 1}}
    if kind == 1:
        return {**event, "version": 99}
    return {**event, "id": "not-a-uuid"}


def encode(events: list[dict[str, Any]], style: int) -> tuple[bytes, str, dict[str, str]]:
    """One of five body styles: JSON, NDJSON, protobuf, gzip JSON, zstd NDJSON."""
    if style == 2:
        batch = EventBatch()
        for e in events:
            proto = ProtoEvent(category=e["category"], version=e["version"], source=e["source"], key=e["key"],
                               attributes=e["attributes"], id=e.get("id", ""))  # fmt: skip
            if "payload_base64" in e:
                proto.raw = base64.b64decode(e["payload_base64"])
            else:
                proto.json = json.dumps(e["payload"])
            batch.events.append(proto)
        return batch.SerializeToString(), "application/x-protobuf", {}
    ndjson = b"\n".join(json.dumps(e).encode() for e in events)
    if style == 1:
        return ndjson, "application/x-ndjson", {}
    if style == 4:
        return (
            zstandard.ZstdCompressor().compress(ndjson),
            "application/x-ndjson",
            {"Content-Encoding": "zstd"},
        )
    body = json.dumps(events).encode()
    if style == 3:
        return gzip.compress(body), "application/json", {"Content-Encoding": "gzip"}
    return body, "application/json", {}


def test_the_workload_through_the_gateway_reconciles(
    stack: tuple[GatewayProcess, WorkerProcess], kafka_bootstrap: str, name: str
) -> None:
    gateway, worker = stack
    sources = {"telemetry": f"{name}t", "backend": f"{name}b"}
    keys = {(env, title): gateway.make_key(env, title, tuple(sources.values()))
            for env, _ in ENVS for title, _ in TITLES}  # fmt: skip
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    pending: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
    bad_expected = 0
    for i, msg in enumerate(WorkloadGenerator(seed=seed, payload_size=1024).take(EVENTS)):
        event_id = str(uuid_utils.uuid7()) if i % 5 else None  # some without: the gateway makes one
        event = json_event(msg, sources[msg.source], event_id)
        if i % BAD_EVERY == 0:
            event = broken(event, rng)
            bad_expected += 1
        pending[(msg.env, msg.title)].append(event)
    requests = []
    for scope, events in pending.items():
        for start in range(0, len(events), BATCH):
            requests.append((keys[scope], events[start : start + BATCH], len(requests) % 5))

    def send(request: tuple[str, list[dict[str, Any]], int]) -> dict[str, Any]:
        token, events, style = request
        body, content_type, headers = encode(events, style)
        response = gateway.post(token, body, content_type, headers=headers)
        assert response.status_code in (200, 207, 422), response.text
        doc: dict[str, Any] = response.json()
        return doc

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, requests))
    accepted = {e["id"] for doc in answers for e in doc["events"] if e["status"] == "accepted"}
    rejected = [e for doc in answers for e in doc["events"] if e["status"] == "rejected"]
    assert not [e for doc in answers for e in doc["events"] if e["status"] == "failed"]
    assert len(rejected) == bad_expected and all(e["field"] for e in rejected)
    assert len(accepted) == EVENTS - bad_expected

    conf = {"bootstrap.servers": kafka_bootstrap}
    ingest = list_topics(conf, rf"^[a-z]+\.{name}[tb]\.ingest\.all-v1$")
    wait_caught_up(conf, name, ingest)
    ingested = [decode_envelope(m.value()).metadata.message_id for m in read_topics(conf, ingest)]
    assert sorted(ingested) == sorted(accepted)  # every accepted event once; nothing rejected
    rejected_ids = {e["id"] for e in rejected if e["id"]}
    assert not rejected_ids & set(ingested)

    reconciler = Reconciler(compile_router(load_route_set(routes_for(name))))
    report = reconcile_cluster(conf, reconciler, ingest_topics=ingest,
                               dlq_topic=worker.env["REFINERY_WORKER_DLQ_TOPIC"],
                               derived_pattern=rf"^[a-z]+\.{name}")  # fmt: skip
    record_figures(
        "gateway_workload", seed=seed, events=EVENTS, keys=len(keys), requests=len(requests),
        accepted=len(accepted), rejected=len(rejected), routed=report.delivered, unmatched=report.unmatched,
        lost=report.lost, duplicated=report.duplicated, misrouted=report.misrouted,
    )  # fmt: skip
    assert report.clean, report
    assert report.sent == len(accepted) and report.delivered == report.expected_deliveries > 0
    assert (report.lost, report.duplicated, report.misrouted, report.dlq_found) == (0, 0, 0, 0)


def test_routes_for_renames_every_fixed_destination(name: str) -> None:
    text = routes_for(name)
    destinations = [line for line in text.splitlines() if line.strip().startswith("to:")]
    assert len(destinations) == 8 and len(load_route_set(text).routes) == 8
    for line in destinations:
        assert "telemetry" not in line and "backend" not in line and "all.all.all" not in line, line

"""With `registry_check` on, records whose schema id the registry does not know go to the DLQ."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from refinery.control.route_store import publish_route_set
from refinery.routing import dlq
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.support import consume_all

pytestmark = pytest.mark.integration

ROUTES = 'routes:\n  - name: all\n    match: {env: prod}\n    to: {template: "{env}.{source}.all.all-v1"}\n'


def test_unknown_schema_id_is_dead_lettered(
    kafka_bootstrap: str, registry_url: str, unique_name: str, tmp_path: Path
) -> None:
    name = unique_name
    schema = {"type": "record", "name": "Checked", "fields": [{"name": "n", "type": "long"}]}
    registered = httpx.post(f"{registry_url}/subjects/{name}-value/versions",
                            json={"schema": json.dumps(schema)}, timeout=10)  # fmt: skip
    assert registered.status_code == 200, registered.text
    known_id = registered.json()["id"]
    env = worker_env(kafka_bootstrap, name, tmp_path, registry_check="true")
    env["REFINERY_REGISTRY_URL"] = registry_url
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    good = record("prod", name, "1", "x", schema_id=known_id)
    unknown = record("prod", name, "1", "x", schema_id=known_id + 100_000)
    send(kafka_bootstrap, f"prod.{name}.ingest.all-v1", [(b"good", *good), (b"unknown", *unknown)])
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        routed = consume_all(kafka_bootstrap, [f"prod.{name}.all.all-v1"], expected=1, timeout=30)
        dead = consume_all(kafka_bootstrap, [f"_{name}-dlq"], expected=1, timeout=30)
    finally:
        worker.stop()
    assert [m.key() for m in routed] == [b"good"]
    assert [m.key() for m in dead] == [b"unknown"]
    assert dict(dead[0].headers() or [])[dlq.REASON] == b"unknown_schema"

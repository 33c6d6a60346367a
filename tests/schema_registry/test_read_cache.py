"""Cached answers (schema by id, subject version, lookup) are the same bytes the app renders, and a change
to the store is visible at once. Pure in-process tests: records are applied to the store directly."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from schema_registry.app import create_app
from schema_registry.records import KeyType, RecordKey, SchemaValue

SCHEMA = json.dumps({"type": "record", "name": "Cached", "fields": [{"name": "a", "type": "string"}]})


def put(app: FastAPI, item: SchemaValue) -> None:
    key = RecordKey(KeyType.SCHEMA, item.subject, item.version)
    app.state.service.store.apply(key.encode(), item.encode())


def test_repeated_reads_answer_the_same_bytes_and_count_in_metrics() -> None:
    app = create_app()
    put(app, SchemaValue("cached-value", 1, 7, SCHEMA))
    client = TestClient(app)
    for path in ("/schemas/ids/7", "/subjects/cached-value/versions/latest"):
        first, second = client.get(path), client.get(path)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content and first.headers == second.headers
    lookups = [client.post("/subjects/cached-value", json={"schema": SCHEMA}) for _ in range(2)]
    assert [r.json()["id"] for r in lookups] == [7, 7] and lookups[0].content == lookups[1].content
    metrics = client.get("/metrics").text
    assert 'route="/schemas/ids/{schema_id}",status="200"} 2.0' in metrics
    assert 'route="/subjects/{subject}",status="200"} 2.0' in metrics


def test_a_store_change_is_seen_at_once() -> None:
    app = create_app()
    put(app, SchemaValue("cached-value", 1, 7, SCHEMA))
    client = TestClient(app)
    assert client.post("/subjects/cached-value", json={"schema": SCHEMA}).status_code == 200
    assert client.get("/schemas/ids/7").status_code == 200
    put(app, SchemaValue("cached-value", 1, 7, SCHEMA, deleted=True))  # soft delete
    assert client.post("/subjects/cached-value", json={"schema": SCHEMA}).status_code == 404
    assert client.post("/subjects/cached-value?deleted=true", json={"schema": SCHEMA}).status_code == 200
    assert client.get("/subjects/cached-value/versions/latest").status_code == 404
    app.state.service.store.apply(RecordKey(KeyType.SCHEMA, "cached-value", 1).encode(), None)  # hard delete
    assert client.get("/schemas/ids/7").json()["error_code"] == 40403


def test_an_id_registered_after_a_404_is_served() -> None:
    app = create_app()
    client = TestClient(app)
    assert client.get("/schemas/ids/8").status_code == 404
    put(app, SchemaValue("later", 1, 8, SCHEMA))
    assert client.get("/schemas/ids/8").json() == {"schema": SCHEMA}

"""The catalog's /health, /ready and metrics (a counter for what only grows, no `_created` series), and the
analyst views' answers when Kafka does not answer or a topic does not exist."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from common.config import CatalogSettings, KafkaSettings, RegistrySettings, WorkerSettings
from refinery.catalog.app import create_app


def test_health_and_ready_without_observing() -> None:
    app = create_app(CatalogSettings(), registry=RegistrySettings(), observe=False)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": True}
        assert client.get("/catalog").status_code == 200  # counts source errors (no worker, no registry)
        text = client.get("/metrics").text
    assert "# TYPE refinery_catalog_records_seen_total counter" in text
    assert "refinery_catalog_records_seen_total 0.0" in text
    assert "refinery_catalog_source_errors_total{" in text and "_created" not in text
    assert "process_resident_memory_bytes" in text and "process_cpu_seconds_total" in text


@pytest.mark.integration
def test_ready_once_observing_and_503_naming_why(kafka_bootstrap: str, unique_name: str) -> None:
    app = create_app(
        CatalogSettings(group_id=unique_name),
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        RegistrySettings(),
        WorkerSettings(routes_topic=unique_name),
    )
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while (answer := client.get("/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert answer.status_code == 200 and answer.json() == {"ready": True}
        app.state.observer.error = "KafkaError{code=_TRANSPORT}"
        answer = client.get("/ready")
        assert answer.status_code == 503
        assert answer.json() == {
            "error_code": 50301,
            "message": "ingest observer stopped: KafkaError{code=_TRANSPORT}",
        }
        assert client.get("/health").status_code == 200


def test_analyst_views_name_kafka_when_it_does_not_answer() -> None:
    app = create_app(
        CatalogSettings(timeout_s=1.0), KafkaSettings(bootstrap_servers="127.0.0.1:1"), RegistrySettings(),
        observe=False,
    )  # fmt: skip
    with TestClient(app) as client:
        for path in (
            "/catalog/topics",
            "/catalog/topics/prod.telemetry.all.pc_kills-v2",
            "/catalog/search?q=x",
        ):
            answer = client.get(path)
            assert answer.status_code == 503, path
            assert answer.json()["error_code"] == 50302 and "Kafka at 127.0.0.1:1" in answer.json()["message"]
        bad = client.get("/catalog/dlq?since=yesterday")
        assert (
            bad.status_code == 422 and "since 'yesterday' must be an ISO 8601 time" in bad.json()["message"]
        )
        assert client.get("/catalog/static/catalog.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/catalog/static/../app.py").status_code == 404
        for page in ("topic", "dlq", "lineage"):
            assert '<script src="/catalog/static/catalog.js">' in client.get(f"/catalog/ui/{page}").text


@pytest.mark.integration
def test_an_unknown_topic_is_a_404(kafka_bootstrap: str, unique_name: str) -> None:
    app = create_app(CatalogSettings(), KafkaSettings(bootstrap_servers=kafka_bootstrap), RegistrySettings(),
                     observe=False)  # fmt: skip
    with TestClient(app) as client:
        answer = client.get(f"/catalog/topics/{unique_name}")
    assert answer.status_code == 404
    assert answer.json() == {"error_code": 40401, "message": f"topic {unique_name!r} does not exist"}

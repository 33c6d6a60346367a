"""The registry's `GET /health`: open even with auth on, no Kafka needed to answer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from common.config import RegistrySettings
from schema_registry.app import create_app


def test_health_is_open_while_the_api_needs_credentials() -> None:
    client = TestClient(create_app(RegistrySettings(auth_users=["alice:pw:admin"])))  # no lifespan: no Kafka
    answer = client.get("/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert client.get("/subjects").status_code == 401

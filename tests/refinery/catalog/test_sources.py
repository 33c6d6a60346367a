"""The catalog's registry look-ups go through the shared client and its reading of the registry's answers
(a fake client: no services)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.common.schema_registry_client import SchemaVersion
from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import CatalogSettings, RegistrySettings
from refinery.catalog.app import CatalogMetrics, CatalogSources


class FakeRegistry:
    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def get_schema(self, schema_id: int) -> Schema:
        if self.failure is not None:
            raise self.failure
        if schema_id != 7:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return Schema('{"type": "string"}', "JSON")

    def get_schema_versions(self, schema_id: int) -> list[SchemaVersion]:
        return [SchemaVersion("1234.kill-value", 2), SchemaVersion("2345.kill-value", 1)]

    def close(self) -> None:
        pass


def _schemas(registry: FakeRegistry, ids: set[int]) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    sources = CatalogSources(
        CatalogSettings(), RegistrySettings(url="http://u:pw@registry.test:8081"), CatalogMetrics(),
        schema_client=registry,  # type: ignore[arg-type]
    )  # fmt: skip
    return asyncio.run(sources.schemas(ids))


def test_registered_and_unregistered_schemas() -> None:
    schemas, status = _schemas(FakeRegistry(), {7, 8})
    assert status == {"url": "http://registry.test:8081", "ok": True}  # no credentials shown
    assert set(schemas) == {7}  # 8 is not registered (yet): left out, asked again next time
    assert schemas[7]["format"] == "JSON" and schemas[7]["subject"] == "1234.kill-value"
    assert schemas[7]["subjects"] == [{"subject": "1234.kill-value", "version": 2},
                                      {"subject": "2345.kill-value", "version": 1}]  # fmt: skip


def test_a_refusal_or_an_outage_is_a_source_status() -> None:
    _, status = _schemas(FakeRegistry(SchemaRegistryError(401, 40101, "Unauthorized")), {7})
    assert status["ok"] is False and "access denied (HTTP 401)" in status["error"]
    assert "REFINERY_REGISTRY_USERNAME" in status["error"]
    _, status = _schemas(FakeRegistry(httpx.ConnectError("connection refused")), {7})
    assert status["ok"] is False and "ConnectError" in status["error"]

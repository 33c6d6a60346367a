"""Fixtures for producer SDK tests: settings pointing at the session's broker and registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from producers.producer import Producer
from producers.schemas import SchemaCatalog
from producers.workload import register_workload


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture
def registry(registry_url: str) -> RegistrySettings:
    return RegistrySettings(url=registry_url)


@pytest.fixture
def catalog(registry: RegistrySettings) -> Iterator[SchemaCatalog]:
    catalog = SchemaCatalog.from_settings(registry)
    yield catalog
    catalog.close()


@pytest.fixture
def title(unique_name: str) -> str:
    """A title of this test's own, with every workload schema registered for it."""
    return unique_name[-30:].lstrip("_")


@pytest.fixture
def workload_title(title: str, catalog: SchemaCatalog) -> str:
    register_workload(catalog, [title])
    return title


@pytest.fixture
def producer(kafka: KafkaSettings, registry: RegistrySettings, unique_name: str) -> Iterator[Producer]:
    """A producer writing to this test's own env (so its ingest topic is fresh)."""
    with Producer(
        ProducerSettings(env=unique_name, source="telemetry", partitions=3), kafka=kafka, registry=registry
    ) as producer:
        yield producer

"""A real gateway process per test module on the session's broker and registry, with small limits so the
bad-input tests stay fast, and a title of its own with every workload schema registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.config import RegistrySettings
from producers.schemas import SchemaCatalog
from producers.workload import register_workload
from tests.gateway.harness import GatewayProcess, gateway_env, unique

LIMITS = {
    "max_body_bytes": 200_000,
    "max_decompressed_bytes": 1_000_000,
    "max_events": 100,
    "max_inflight_events": 80,
    "body_timeout_s": 1.5,
    "delivery_timeout_ms": 5000,
    "kafka_check_interval_s": 0.5,
}


@pytest.fixture(scope="module")
def title(registry_url: str) -> str:
    """A title of this module's own with every workload schema registered for it."""
    name = unique("gw")
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=registry_url))
    try:
        register_workload(catalog, [name])
    finally:
        catalog.close()
    return name


@pytest.fixture(scope="module")
def gateway(
    kafka_bootstrap: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    env = gateway_env(kafka_bootstrap, registry_url, unique("_gw_keys_"), **LIMITS)
    proc = GatewayProcess(env, tmp_path_factory.mktemp("gateway") / "gateway.log").start()
    yield proc
    proc.stop()

"""Session fixtures shared by every test package.

Integration tests get the real broker from `kafka_bootstrap`: it reuses a broker already reachable at
REFINERY_KAFKA_BOOTSTRAP_SERVERS (e.g. one started by `refinery-kafka start`) or starts one from the
Maven jars and stops it at the end of the session. Each test uses its own topics and groups
(`unique_name`), so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from common.config import KafkaSettings
from devstack.local_kafka import LocalKafka
from tests.schema_registry.processes import RegistryProcess

# Collected last: on a fresh machine these wait for the compose plugin that scripts/test.sh builds in the
# background meanwhile (tests/deploy/compose_plugin.py).
RUN_LAST = ("tests/deploy/test_compose.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.startswith(RUN_LAST))  # stable: the rest keeps its order


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    return KafkaSettings()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: KafkaSettings) -> Iterator[str]:
    broker = LocalKafka.from_settings(kafka_settings)
    outcome = broker.start()
    yield broker.bootstrap
    if outcome == "started":
        broker.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, legal as a topic-name component."""
    base = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def registry_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real schema registry process (`python -m schema_registry`) on a free port, with its
    own fresh schemas topic; its log is in the session's temp dir. Stopped at the end of the session."""
    log_path = tmp_path_factory.mktemp("registry") / "registry.log"
    registry = RegistryProcess(kafka_bootstrap, f"_schemas_test_{uuid.uuid4().hex[:12]}", log_path=log_path)
    registry.start()
    yield registry.url
    registry.stop()

"""Clear errors at each edge, tested once each (the message is asserted): oversized messages and invalid
topic names at the SDK, a malformed schema and an invalid env at the CLI, and on-demand topic creation
limited to the naming convention and the configured allowlists. (Invalid route files at the CLI and HTTP
edges: tests/refinery/test_worker_pipeline.py; malformed schemas over HTTP: tests/schema_registry.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.errors import InvalidInputError
from common.kafka_admin import TopicNotAllowedError
from producers.producer import Producer
from producers.schemas import SchemaCatalog
from producers.workload import register_workload

pytestmark = pytest.mark.integration


@pytest.fixture
def title(unique_name: str, registry_url: str) -> Iterator[str]:
    title = unique_name[-30:].lstrip("_")
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=registry_url))
    register_workload(catalog, [title])
    catalog.close()
    yield title


def producer(kafka_bootstrap: str, registry_url: str, **settings: object) -> Producer:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings_ = ProducerSettings(partitions=1, **settings)  # type: ignore[arg-type]
    return Producer(settings_, kafka=kafka, registry=RegistrySettings(url=registry_url))


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def test_sdk_refuses_oversized_messages_and_bad_names(
    kafka_bootstrap: str, registry_url: str, title: str, unique_name: str
) -> None:
    with producer(kafka_bootstrap, registry_url, env=unique_name) as sdk:
        # over the contract's one record limit (common/limits.py): refused before it is queued, saying why
        with pytest.raises(InvalidInputError, match=r"record would be \d+ bytes .*limit is 1000000"):
            sdk.send(title, "crash_report", 1, b"x" * 2_000_000)
        with pytest.raises(InvalidInputError, match=r"env 'pr\.od'") as info:
            sdk.send(title, "crash_report", 1, b"x", env="pr.od")
        assert "'.'" in str(info.value)  # says what to fix
        assert sdk.send(title, "crash_report", 1, b"ok").result(timeout=30).topic.startswith(unique_name)


def test_topic_creation_is_limited_to_the_allowlists(
    kafka_bootstrap: str, registry_url: str, title: str, unique_name: str
) -> None:
    with producer(kafka_bootstrap, registry_url, env=unique_name, allowed_envs=["prod"],
                  allowed_sources=["telemetry"]) as sdk:  # fmt: skip
        with pytest.raises(TopicNotAllowedError, match=rf"env '{unique_name}' is not allowed") as info:
            sdk.send(title, "crash_report", 1, b"x")
        assert info.value.part == "env"
        with pytest.raises(TopicNotAllowedError, match="source 'backend' is not allowed"):
            sdk.send(title, "crash_report", 1, b"x", env="prod", source="backend")
    assert not topic_exists(kafka_bootstrap, f"{unique_name}.telemetry.ingest.all-v1")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "producers.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_cli_says_what_to_fix(kafka_bootstrap: str, registry_url: str, title: str, tmp_path: Path) -> None:
    conn = ("--bootstrap", kafka_bootstrap, "--registry-url", registry_url)
    bad_schema = tmp_path / "broken.avsc"
    bad_schema.write_text('{"type": "record", "name": "B", "fields": [{"name": "x"}]}')  # field without type
    registered = run_cli(*conn, "register", str(bad_schema), "--title", title, "--category", "broken")
    assert registered.returncode == 2 and "Traceback" not in registered.stderr
    assert "missing 'type' at /fields/0" in registered.stderr and "broken-value" in registered.stderr
    produced = run_cli(*conn, "produce", "--title", title, "--category", "crash_report", "--version", "1",
                       "--env", "pr.od", "--raw", stdin='"eA=="\n')  # fmt: skip
    assert produced.returncode == 2 and "Traceback" not in produced.stderr
    assert "env 'pr.od'" in produced.stderr

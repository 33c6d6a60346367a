"""Settings refuse what they do not know: a misspelt keyword argument or environment variable is an error
naming it (and, for variables, the closest known one), never a silent default."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import config
from common.config import (
    AT_LEAST_ONCE_BATCH_SIZE,
    EXACTLY_ONCE_BATCH_SIZE,
    REPO_ROOT,
    KafkaSettings,
    LocalKafkaSettings,
    ProducerSettings,
    RefinerySettings,
    WorkerSettings,
    unknown_environment,
)
from common.errors import ConfigError

# Every settings class of common/config.py (test modules may define more).
CLASSES = [c for c in config.settings_classes() if c.__module__ == config.__name__]
THIS_FILE = Path(__file__).resolve()  # full of misspelt names on purpose
# Where REFINERY_* variables are set for our processes.
SETTERS = "tests bench devstack scripts deploy .ci docker-compose.yml Dockerfile".split()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No REFINERY_* variable from the caller's environment."""
    for name in list(os.environ):
        if name.upper().startswith("REFINERY_"):
            monkeypatch.delenv(name)
    yield


def test_every_settings_class_refuses_unknown_keys() -> None:
    base = (BaseSettings, RefinerySettings)
    classes = [c for c in vars(config).values() if isinstance(c, type) and issubclass(c, BaseSettings)]
    classes = [c for c in classes if c not in base]
    assert len(classes) >= 9
    for cls in classes:
        assert issubclass(cls, RefinerySettings), f"{cls.__name__} must derive from RefinerySettings"
        assert cls.model_config.get("extra") == "forbid", cls.__name__
        assert cls.model_config.get("env_prefix"), cls.__name__
    assert set(classes) == set(CLASSES)


def test_misspelt_keyword_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"lingr_ms\n  Extra inputs are not permitted"):
        ProducerSettings(lingr_ms=5)  # type: ignore[call-arg]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_refuses_an_unknown_keyword(cls: type[RefinerySettings]) -> None:
    with pytest.raises(ValidationError, match="no_such_setting"):
        cls(no_such_setting=1)


def test_known_keywords_and_variables_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProducerSettings(linger_ms=5).linger_ms == 5
    monkeypatch.setenv("REFINERY_WORKER_BATCH_SIZE", "7")
    monkeypatch.setenv("REFINERY_WORKER_DERIVED_ALLOWED_ENVS", '["prod"]')
    monkeypatch.setenv("REFINERY_LOCAL_KAFKA_HEAP", "512m")
    monkeypatch.setenv("refinery_kafka_bootstrap_servers", "kafka:9092")  # matched ignoring case
    worker = WorkerSettings(group_id="g")
    assert (worker.batch_size, worker.derived_allowed_envs, worker.group_id) == (7, ["prod"], "g")
    assert LocalKafkaSettings().heap == "512m"
    assert KafkaSettings().bootstrap_servers == "kafka:9092"
    assert (worker.records_per_batch, WorkerSettings(exactly_once=True).records_per_batch) == (7, 7)


def test_the_batch_size_defaults_to_the_guarantees_own() -> None:
    # exactly once waits for each batch's transaction commit, so its batches are larger by default
    assert WorkerSettings().records_per_batch == AT_LEAST_ONCE_BATCH_SIZE == 2_000
    assert WorkerSettings(exactly_once=True).records_per_batch == EXACTLY_ONCE_BATCH_SIZE == 10_000
    with pytest.raises(ValidationError):
        WorkerSettings(batch_size=0)


def test_misspelt_variable_names_the_closest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINERY_WORKER_BACH_SIZE", "5000")
    with pytest.raises(ConfigError) as caught:
        WorkerSettings()
    message = str(caught.value)
    assert "REFINERY_WORKER_BACH_SIZE (did you mean REFINERY_WORKER_BATCH_SIZE?)" in message
    assert message.startswith("WorkerSettings: unknown environment variable under REFINERY_WORKER_*")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ConfigError):  # keyword arguments do not excuse the environment
        WorkerSettings(batch_size=5000)


def test_every_unknown_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINERY_PRODUCER_LINGR_MS", "5")
    monkeypatch.setenv("refinery_producer_compresion", "zstd")  # read ignoring case, so judged that way too
    monkeypatch.setenv("REFINERY_PRODUCER_QWERTY", "1")
    with pytest.raises(ConfigError) as caught:
        ProducerSettings()
    message = str(caught.value)
    assert "unknown environment variables" in message
    assert "REFINERY_PRODUCER_LINGR_MS (did you mean REFINERY_PRODUCER_LINGER_MS?)" in message
    assert "refinery_producer_compresion (did you mean REFINERY_PRODUCER_COMPRESSION?)" in message
    assert "REFINERY_PRODUCER_QWERTY (no such setting)" in message


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_judges_only_its_own_prefix(
    cls: type[RefinerySettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = cls.model_config["env_prefix"]
    monkeypatch.setenv(f"{prefix}NO_SUCH_SETTING", "1")
    with pytest.raises(ConfigError, match=f"{prefix}NO_SUCH_SETTING"):
        cls()
    for other in CLASSES:
        if other.model_config["env_prefix"] != prefix:
            other()  # not theirs to judge


def test_local_kafka_variables_are_not_kafka_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """REFINERY_LOCAL_KAFKA_ and REFINERY_KAFKA_ name different classes; neither judges the other's."""
    monkeypatch.setenv("REFINERY_LOCAL_KAFKA_HEAPP", "1g")
    KafkaSettings()
    with pytest.raises(
        ConfigError, match=r"REFINERY_LOCAL_KAFKA_HEAPP \(did you mean REFINERY_LOCAL_KAFKA_HEAP\?\)"
    ):
        LocalKafkaSettings()
    monkeypatch.delenv("REFINERY_LOCAL_KAFKA_HEAPP")
    monkeypatch.setenv("REFINERY_KAFKA_BOOTSTRAP_SERVER", "kafka:9092")
    LocalKafkaSettings()
    with pytest.raises(ConfigError, match=r"did you mean REFINERY_KAFKA_BOOTSTRAP_SERVERS\?"):
        KafkaSettings()


def test_a_longer_prefix_belongs_to_its_own_class(monkeypatch: pytest.MonkeyPatch) -> None:
    class WorkerExtraSettings(RefinerySettings):
        model_config = SettingsConfigDict(env_prefix="REFINERY_WORKER_EXTRA_", extra="forbid")
        knob: int = 0

    monkeypatch.setenv("REFINERY_WORKER_EXTRA_KNOB", "3")
    monkeypatch.setenv("REFINERY_WORKER_EXTRA_KNOBB", "3")
    assert unknown_environment(WorkerSettings, os.environ) == []
    assert unknown_environment(WorkerExtraSettings, os.environ) == [
        "REFINERY_WORKER_EXTRA_KNOBB (did you mean REFINERY_WORKER_EXTRA_KNOB?)"
    ]
    monkeypatch.delenv("REFINERY_WORKER_EXTRA_KNOBB")
    assert WorkerExtraSettings().knob == 3


def test_variables_under_no_settings_prefix_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REFINERY_SOAK", "REFINERY_KILL_SEED", "REFINERY_LOGGING", "REFINERY_", "KAFKA_HEAP_OPTS"):
        monkeypatch.setenv(name, "1")
    for cls in CLASSES:
        cls()


def test_every_variable_the_repo_sets_is_known_or_outside_the_prefixes() -> None:
    """The REFINERY_* names written in tests, bench, devstack, scripts, compose, deploy and CI are
    settings (or under no settings prefix, like REFINERY_SOAK): none of them would now stop a process."""
    found: set[str] = set()
    for where in SETTERS:
        path = REPO_ROOT / where
        files = (
            [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else []
        )
        for file in files:
            if "__pycache__" not in file.parts and file.suffix not in (".json", ".pyc") and file != THIS_FILE:
                found |= set(re.findall(r"\bREFINERY_[A-Z0-9_]*[A-Z0-9]\b", file.read_text(errors="replace")))
    assert "REFINERY_WORKER_DLQ_TOPIC" in found and "REFINERY_SOAK" in found
    environ = dict.fromkeys(found, "1")
    for cls in CLASSES:
        assert unknown_environment(cls, environ) == [], cls.__name__


def test_replication_defaults_to_the_brokers_own() -> None:
    """-1 asks the broker for default.replication.factor: 1 on a dev broker, 3 on a production cluster."""
    assert config.ProducerSettings().replication_factor == config.BROKER_DEFAULT_REPLICATION == -1
    worker = config.WorkerSettings()
    assert (worker.derived_replication, worker.internal_replication) == (-1, -1)
    assert config.GatewaySettings().keys_replication == -1


@pytest.mark.parametrize("value", [-1, 1, 3])
def test_replication_accepts_the_broker_default_or_a_count(value: int) -> None:
    assert config.WorkerSettings(derived_replication=value).derived_replication == value


@pytest.mark.parametrize("value", [0, -2])
def test_replication_refuses_other_values(value: int) -> None:
    with pytest.raises(ValidationError, match=r"broker's default\.replication\.factor"):
        config.ProducerSettings(replication_factor=value)


def test_derived_topics_get_one_partition_unless_a_pattern_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one partition by default, as the broker's num.partitions (NOTES §3, tenth round: 12 made a 10k msg/s
    # feed hundreds of one-partition produce requests)
    assert WorkerSettings().derived_partitions == 1
    assert WorkerSettings().partitions_of_derived("prod.telemetry.1234.purchase-v1") == 1
    monkeypatch.setenv(
        "REFINERY_WORKER_DERIVED_PARTITIONS_BY_TOPIC",
        '{"prod.telemetry.1234.*": 6, "prod.*": 3, "*.player_killed-v2": 24}',
    )
    worker = WorkerSettings(derived_partitions=2)
    assert worker.partitions_of_derived("prod.telemetry.1234.purchase-v1") == 6  # the first match wins
    assert worker.partitions_of_derived("prod.telemetry.all.player_killed-v2") == 3  # "prod.*" comes first
    assert worker.partitions_of_derived("dev.telemetry.all.player_killed-v2") == 24
    assert worker.partitions_of_derived("dev.all.all.all-v1") == 2  # no pattern: derived_partitions
    assert worker.partitions_of_derived("Prod.telemetry.1234.x-v1") == 2  # case-sensitive, as topic names


@pytest.mark.parametrize(
    ("overrides", "why"),
    [({"prod.*": 0}, "partitions must be at least 1, not 0"), ({"": 3}, "must not be empty")],
)
def test_derived_partition_overrides_are_checked(overrides: dict[str, int], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        WorkerSettings(derived_partitions_by_topic=overrides)
    with pytest.raises(ValidationError):
        WorkerSettings(derived_partitions=0)

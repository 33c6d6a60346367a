"""The Prometheus alert rules (deploy/prometheus/alerts.yml) are valid, pass their unit tests with synthetic
series (alerts_test.yml) and select only series our services export, and Prometheus' config loads them.

promtool comes from Debian's `prometheus` package, which scripts/setup.sh installs. Without it these
tests are skipped on a developer's machine and fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import promql_parser
import pytest
import yaml

from common.config import REPO_ROOT
from producers.metrics import ProducerMetrics
from refinery.catalog.app import CatalogMetrics
from refinery.worker.metrics import WorkerMetrics
from schema_registry.metrics import RegistryMetrics
from tests.deploy.test_dashboard import PROMETHEUS_SERIES, exported_names, selectors

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
# What the issue asks to be visible; more alerts may follow.
REQUIRED_ALERTS = {
    "RefineryWorkerNotReady", "RefineryWorkerNotProgressing", "RefineryDLQRateHigh",
    "RefineryConsumerLagGrowing", "RefineryRegistryDenied", "SchemaRegistryErrors",
    "RefineryWorkerRetrying", "RefineryWorkerPaused",
}  # fmt: skip


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("no promtool on PATH in CI: scripts/setup.sh installs it (Debian package prometheus)")
    pytest.skip("promtool not on PATH (bash scripts/setup.sh installs it, or: apt-get install prometheus)")


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS_DIR)


def rules() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_rules_are_valid(promtool: str) -> None:
    proc = run_promtool(promtool, "check", "rules", ALERTS.name)
    assert proc.returncode == 0, f"promtool check rules failed:\n{proc.stdout}\n{proc.stderr}"


def test_rule_unit_tests_pass(promtool: str) -> None:
    proc = run_promtool(promtool, "test", "rules", ALERTS_TEST.name)
    assert proc.returncode == 0, f"promtool test rules failed:\n{proc.stdout}\n{proc.stderr}"


def test_prometheus_config_loads_the_rules(promtool: str) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert ALERTS.name in config["rule_files"]
    proc = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert proc.returncode == 0, f"promtool check config failed:\n{proc.stdout}\n{proc.stderr}"
    assert "1 rule files found" in proc.stdout


def test_compose_mounts_the_rules_beside_the_config() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


def test_every_alert_is_tested_and_labelled() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert REQUIRED_ALERTS <= set(names)
    tested = {case["alertname"] for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}  # fmt: skip
    assert set(names) <= tested, f"alerts without a unit test: {set(names) - tested}"
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_rule_uses_series_we_export() -> None:
    known = set(PROMETHEUS_SERIES)
    for metrics in (WorkerMetrics(), RegistryMetrics(), CatalogMetrics(), ProducerMetrics()):
        known |= exported_names(metrics.registry)
    for rule in rules():
        names = [s.name for s in selectors(promql_parser.parse(rule["expr"]))]
        assert names, f"{rule['alert']} selects no metric"
        unknown = [n for n in names if n not in known]
        assert not unknown, f"{rule['alert']} uses {unknown}, which nothing exports"

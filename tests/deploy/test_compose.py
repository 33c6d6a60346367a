"""The compose stack is valid (`docker compose config`) and describes the same services, commands and
settings as the local stack (`devstack/stack.py`) and the configuration module (`common/config.py`)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from common import config
from common.config import REPO_ROOT
from devstack.stack import StackPlan
from tests.deploy.compose_plugin import ComposeUnavailableError, ensure_compose

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
OUR_SERVICES = {"registry", "routes", "worker-1", "worker-2", "catalog", "demo", "gateway"}
THIRD_PARTY = {"kafka", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose model after interpolation and merges, as `docker compose config` renders it."""
    try:
        ensure_compose()
    except ComposeUnavailableError as exc:
        if "no docker client" in str(exc):
            pytest.skip(f"docker compose config not run: {exc}")
        raise
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, f"docker compose config failed:\n{proc.stderr}"
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def settings_env_names() -> set[str]:
    """Every environment variable some settings class in common/config.py reads."""
    names = set()
    for obj in vars(config).values():
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
            prefix = obj.model_config.get("env_prefix", "")
            names |= {f"{prefix}{name}".upper() for name in obj.model_fields}
    return names


def console_scripts() -> set[str]:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"])


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == OUR_SERVICES | THIRD_PARTY
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    for name in OUR_SERVICES:
        assert compose["services"][name]["image"] == "refinery:local", name
        assert compose["services"][name]["build"]["context"] == str(REPO_ROOT), name


def test_every_refinery_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    used = {
        (service, var)
        for service, spec in compose["services"].items()
        for var in spec.get("environment") or {}
        if var.startswith("REFINERY_")
    }
    assert used, "compose sets no REFINERY_* variable at all"
    unknown = sorted(f"{service}: {var}" for service, var in used if var not in known)
    assert not unknown, f"compose sets variables no settings class reads: {unknown}"


def test_services_run_the_same_commands_as_the_local_stack(compose: dict[str, Any]) -> None:
    """Same console script and sub-command per service; options may differ (ports, paths, rate)."""
    local = {s.name: s.argv for s in StackPlan().services()}
    local_by_compose_name = {"registry": "registry", "routes": "routes", "worker-1": "worker-0",
                             "worker-2": "worker-1", "catalog": "catalog", "demo": "demo",
                             "gateway": "gateway"}  # fmt: skip
    scripts = console_scripts()
    for name, local_name in local_by_compose_name.items():
        command = compose["services"][name]["command"]
        assert command[0] in scripts, f"{name}: {command[0]} is not a console script in pyproject.toml"
        argv = local[local_name]
        if Path(argv[0]).name == "refinery-supervise":  # the local restart policy; compose has `restart:`
            assert argv[1] == "--" and compose["services"][name].get("restart") == "unless-stopped", name
            argv = argv[2:]
        assert Path(argv[0]).name == command[0], f"{name}: compose runs {command}, the local stack {argv}"
        assert _words(command[1:]) == _words(argv[1:]), f"{name}: {command} vs {argv}"


def test_workers_check_schema_ids_like_the_local_stack(compose: dict[str, Any]) -> None:
    local = {s.name: s.env for s in StackPlan().services()}
    for name, local_name in (("worker-1", "worker-0"), ("worker-2", "worker-1")):
        env = compose["services"][name]["environment"]
        check = "REFINERY_WORKER_REGISTRY_CHECK"
        assert env[check] == local[local_name][check] == "true", name
        assert env["REFINERY_REGISTRY_URL"].startswith("http://"), name
        # credentials come from the host's environment when set (null here: left unset in the container)
        assert {"REFINERY_REGISTRY_USERNAME", "REFINERY_REGISTRY_PASSWORD"} <= set(env), name


def _words(args: list[str]) -> list[str]:
    """The sub-command words of an argv: up to the first option, file names reduced to their base name."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(Path(arg).name)
    return words


def test_every_service_listens_where_prometheus_scrapes(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets
    for target in targets:
        host, _, port = target.partition(":")
        assert host in compose["services"], f"prometheus scrapes {target}: no such compose service"
        ports = _listening_ports(compose["services"][host])
        assert int(port) in ports, f"prometheus scrapes {target}, but {host} listens on {sorted(ports)}"
    scraped = {t.partition(":")[0] for t in targets}
    assert {"registry", "worker-1", "worker-2", "catalog", "demo", "gateway"} <= scraped


def _listening_ports(spec: dict[str, Any]) -> set[int]:
    env = spec.get("environment") or {}
    ports = {int(v) for k, v in env.items() if re.fullmatch(r"REFINERY_\w*PORT", k) and v}
    ports |= {int(p["target"]) for p in spec.get("ports") or []}
    return ports


def test_mounted_config_files_exist(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            assert Path(volume["source"]).exists(), f"{name} mounts {volume['source']}, which is missing"
    dashboards = list((REPO_ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no Grafana dashboard JSON to provision"


def test_dockerfile_installs_every_package() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), f"Dockerfile skips {package}/"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".run" in ignored and ".cache" in ignored


ONE_SHOT = {"routes"}  # runs once and exits: nothing to health-check


def test_every_service_has_a_health_check_and_limits(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits.get("cpus", 0)) > 0 and int(limits.get("memory", 0)) > 0, f"{name}: no limits"
        if name in ONE_SHOT:
            continue
        test = spec.get("healthcheck", {}).get("test")
        assert test and not spec["healthcheck"].get("disable"), f"{name}: no health check"
        if name in OUR_SERVICES:  # our HTTP services are checked on a port they listen on
            port = re.search(r"127\.0\.0\.1:(\d+)/", " ".join(test))
            assert port and int(port.group(1)) in _listening_ports(spec), f"{name}: {test}"
    worker = compose["services"]["worker-1"]["healthcheck"]["test"]
    assert "/health'" in " ".join(worker)  # liveness; /ready would report a paused worker as unhealthy

"""`refinery-stack up` brings the whole pipeline up on free ports with its own broker, records flow from
the demo producer into derived topics, the catalog page shows the real flows in headless Chromium, and
`refinery-stack down` stops everything."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from common.config import REPO_ROOT, RegistrySettings
from devstack.local_kafka import port_open
from devstack.stack import StackPlan
from refinery.routing import dlq
from tests.refinery.worker.worker_harness import record, send
from tests.support import consume_all, free_port, free_port_pair, wait_for

pytestmark = pytest.mark.integration
STACK = [str(Path(sys.executable).parent / "refinery-stack")]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--virtual-time-budget=5000"]  # fmt: skip


class LocalStack:
    def __init__(self, tmp: Path) -> None:
        # Kafka's controller and worker 1 listen on port + 1: both pairs below the ephemeral range
        self.kafka_port, self.worker_port = free_port_pair(), free_port_pair()
        while abs(self.kafka_port - self.worker_port) < 2:
            self.worker_port = free_port_pair()
        self.registry_port, self.catalog_port = free_port(), free_port()
        self.demo_metrics_port, self.gateway_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.run_dir = tmp / "run"
        self.env = {
            **os.environ,
            "REFINERY_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REFINERY_LOCAL_KAFKA_HOME": str(tmp / "kafka"),
            "REFINERY_LOCAL_KAFKA_HEAP": "512m",
            "REFINERY_REGISTRY_PORT": str(self.registry_port),
            "REFINERY_WORKER_WEB_PORT": str(self.worker_port),
            "REFINERY_CATALOG_PORT": str(self.catalog_port),
            "REFINERY_STACK_DEMO_METRICS_PORT": str(self.demo_metrics_port),
            "REFINERY_GATEWAY_PORT": str(self.gateway_port),
            "REFINERY_STACK_RUN_DIR": str(self.run_dir),
            "REFINERY_STACK_DEMO_RATE": "50",
            "REFINERY_STACK_START_TIMEOUT_S": "90",
            "REFINERY_LOG_FORMAT": "text",
        }

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*STACK, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        up = local.run("up")
        assert up.returncode == 0, f"refinery-stack up failed:\n{up.stdout}\n{up.stderr}"
        assert "catalog page" in up.stdout and "refinery-client tail" in up.stdout
        yield local
    finally:
        local.run("down")


def test_up_is_idempotent_and_every_service_answers(stack: LocalStack) -> None:
    again = stack.run("up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 6  # registry, 2 workers, catalog, demo, gateway
    status = stack.run("status")
    assert status.returncode == 0, status.stdout
    subjects = wait_for(lambda: httpx.get(stack.url(stack.registry_port, "/subjects")).json(),
                        what="the demo producer's schemas in the registry")  # fmt: skip
    assert "1234.player_killed-value" in subjects
    for port in (stack.worker_port, stack.worker_port + 1):
        routes = wait_for(lambda p=port: httpx.get(stack.url(p, "/routes")).json()["routes"],
                          what="the route set on a worker")  # fmt: skip
        assert len(routes) == 8
        assert httpx.get(stack.url(port, "/stats")).json()["running"] is True
        assert "refinery_records_routed" in httpx.get(stack.url(port, "/metrics")).text
    assert "registry_http_requests" in httpx.get(stack.url(stack.registry_port, "/metrics")).text
    demo_metrics = wait_for(lambda: "refinery_producer_records_sent_total{" in (
        text := httpx.get(stack.url(stack.demo_metrics_port, "/metrics")).text) and text,
        what="the demo producer's sent counter")  # fmt: skip
    assert 'category="player_killed"' in demo_metrics


def test_the_printed_gateway_curl_example_works(stack: LocalStack) -> None:
    """The curl command `refinery-stack up` prints (and the README shows) sends an event with the demo key."""
    up = stack.run("up")
    (command,) = [line.strip() for line in up.stdout.splitlines() if line.strip().startswith("curl ")]
    assert f":{stack.gateway_port}/v1/events" in command
    sent = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["accepted"] == 1 and answer["events"][0]["status"] == "accepted", answer
    (dead,) = wait_for(
        lambda: [m for m in consume_all(stack.bootstrap, ["dev.all.all.all-v1"], timeout=10, idle=2)
                 if dict(m.headers() or [])["ce_id"].decode() == answer["events"][0]["id"]],
        timeout=60, interval=1, what="the gateway's event in dev.all.all.all-v1",
    )  # fmt: skip
    assert dict(dead.headers() or [])["ce_producer"].decode().startswith("gateway:")


def test_records_flow_into_derived_topics(stack: LocalStack) -> None:
    records = consume_all(stack.bootstrap, ["prod.telemetry.all.player_killed-v2"], expected=5, timeout=60)
    assert len(records) >= 5
    assert all(dict(r.headers() or [])["ce_type"] == b"player_killed" for r in records)


def test_the_workers_dead_letter_an_unknown_schema_id(stack: LocalStack) -> None:
    value, headers = record("prod", "telemetry", "1234", "player_killed", version=2, schema_id=987_654)
    message_id = dict(headers)["ce_id"]
    send(stack.bootstrap, "prod.telemetry.ingest.all-v1", [(b"unknown-schema", value, headers)])

    def dead_letter() -> dict | None:
        for msg in consume_all(stack.bootstrap, ["_refinery_dlq"], timeout=10, idle=2):
            got = dict(msg.headers() or [])
            if got.get("ce_id") == message_id:
                return got
        return None

    got = wait_for(dead_letter, timeout=60, interval=1, what="the unknown schema id in the stack's DLQ")
    assert got[dlq.REASON] == b"unknown_schema", got
    assert b"987654" in got[dlq.MESSAGE]


def test_the_plan_turns_the_registry_check_on_with_the_registry_credentials() -> None:
    registry = RegistrySettings(username="stack-user", password=SecretStr("stack-pw"))
    services = {s.name: s for s in StackPlan(registry=registry).services()}
    for name in ("worker-0", "worker-1"):
        env = services[name].env
        assert env["REFINERY_WORKER_REGISTRY_CHECK"] == "true"
        assert env["REFINERY_REGISTRY_URL"].startswith("http://")
        assert env["REFINERY_REGISTRY_USERNAME"] == "stack-user"
        assert env["REFINERY_REGISTRY_PASSWORD"] == "stack-pw"
    assert (
        "REFINERY_REGISTRY_USERNAME"
        not in StackPlan(registry=RegistrySettings(username=None, password=None)).services()[0].env
    )


def test_catalog_shows_the_demo_flows(stack: LocalStack) -> None:
    def routed_flow() -> dict | None:
        doc = httpx.get(stack.url(stack.catalog_port, "/catalog"), timeout=10).json()
        wanted = ("prod", "1234", "player_killed")
        flows = [f for f in doc["flows"] if (f["env"], f["title"], f["category"]) == wanted]
        return next((f for f in flows if f["schemas"] and f["routes"]), None)

    flow = wait_for(routed_flow, timeout=60, interval=1, what="prod/1234/player_killed in the catalog")
    assert flow["schemas"][0]["subject"] == "1234.player_killed-value"
    assert flow["records"] > 0 and flow["last_seen"]
    topics = {r["route"]: r["topic"] for r in flow["routes"]}
    assert topics["prod-1234-by-category"] == "prod.telemetry.1234.player_killed-v2"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium. CI (root, CI=true) installs it with apt-get; elsewhere a missing one skips."""
    found = shutil.which("chromium")
    if found is None and os.environ.get("CI") == "true" and os.geteuid() == 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       check=True, capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the page test needs a browser")
    return found


def test_catalog_page_renders_the_real_flows(stack: LocalStack, chromium: str, tmp_path: Path) -> None:
    test_catalog_shows_the_demo_flows(stack)  # the page is only interesting once flows exist
    page = stack.url(stack.catalog_port, "/catalog/ui")
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", page],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert 'data-loaded="true"' in dom, dom[-2000:]
    nodes = ["ingest:prod.telemetry.ingest.all-v1", "route:prod-1234-by-category",
             "derived:prod.telemetry.1234.player_killed-v2"]  # fmt: skip
    for node in nodes:
        assert f'data-id="{node}"' in dom
    assert 'data-kind="producer"' in dom
    assert 'data-flow="prod.telemetry.1234.player_killed.v2"' in dom
    assert "1234.player_killed-value" in dom
    shot = tmp_path / "catalog.png"
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}", "--window-size=1300,1000",
         f"--screenshot={shot}", page],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 20_000  # a blank page compresses to a few KB
    assert distinct_byte_values(shot) > 100, "the screenshot is (nearly) blank: nothing rendered"


def distinct_byte_values(png: Path) -> int:
    """How many distinct byte values the PNG's decompressed pixel rows hold: a handful for a blank page,
    well over a hundred once text and colours are drawn (no imaging library needed)."""
    data, pos, idat = png.read_bytes(), 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


def test_down_stops_everything(stack: LocalStack) -> None:
    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    assert "kafka      stopped" in down.stdout
    assert not list(stack.run_dir.glob("*.pid"))
    for port in (stack.registry_port, stack.worker_port, stack.worker_port + 1, stack.catalog_port,
                 stack.demo_metrics_port):  # fmt: skip
        assert not port_open("127.0.0.1", port)
    assert stack.run("status").returncode == 1


def test_run_and_stop_scripts_use_the_stack() -> None:
    assert "refinery-stack up" in (REPO_ROOT / "scripts" / "run.sh").read_text()
    assert "refinery-stack down" in (REPO_ROOT / "scripts" / "stop.sh").read_text()

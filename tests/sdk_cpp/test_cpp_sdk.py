"""The C++ SDK (sdk/cpp) in CI: build it with CMake, run its ctest suite against this session's broker and
schema registry (the fixtures `kafka_bootstrap` and `registry_url`, passed in the environment), then judge
what its broker test sent with the contract checker (`refinery-client verify`, registry rules included)
and check that a real worker routed every record to the right derived topics.

Needs cmake, a C++17 compiler, pkg-config, protoc and Debian's librdkafka-dev, libprotobuf-dev and
libcurl4-openssl-dev (`scripts/setup.sh` installs them as root): skipped without them on a developer's
machine, failed in CI (CI=true)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from common.config import REPO_ROOT
from common.topics import ingest_topic
from producers import cli
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, worker_env
from tests.support import consume_all

pytestmark = pytest.mark.integration

SOURCE_DIR = REPO_ROOT / "sdk" / "cpp"
BUILD_DIR = SOURCE_DIR / "build"
TEST_TARGETS = ("contract_vectors", "producer_offline", "producer_broker", "quickstart")
PKG_CONFIG_MODULES = ("rdkafka++", "protobuf", "libcurl")
ROUTES = """
routes:
  - name: by_category
    match: {env: prod}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
  - name: pc_players
    match: {env: prod, attribute.platform: pc}
    to: {template: "{env}.{source}.{title}.pc-v1"}
"""


def _missing_toolchain() -> list[str]:
    missing = [
        tool for tool in ("cmake", "ctest", "c++", "pkg-config", "protoc") if shutil.which(tool) is None
    ]
    if shutil.which("pkg-config") is not None:
        missing += [m for m in PKG_CONFIG_MODULES if subprocess.run(["pkg-config", "--exists", m]).returncode]
    return missing


def _run(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def cpp_build() -> Path:
    """The SDK and its tests built in sdk/cpp/build (incrementally when it exists)."""
    missing = _missing_toolchain()
    if missing:
        hint = "bash scripts/setup.sh installs them as root (see its C++ section)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"C++ toolchain missing in CI: {', '.join(missing)}; {hint}")
        pytest.skip(f"C++ toolchain missing: {', '.join(missing)}; {hint}")
    began = time.monotonic()
    configure = _run(
        ["cmake", "-S", str(SOURCE_DIR), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release"], 300
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    build = _run(["cmake", "--build", str(BUILD_DIR), "-j", "2", "--target", *TEST_TARGETS], 1800)
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    print(f"C++ SDK configured and built in {time.monotonic() - began:.1f}s")
    return BUILD_DIR


def test_cpp_sdk_ctest_then_contract_checker_and_worker_routing(
    cpp_build: Path, kafka_bootstrap: str, registry_url: str, unique_name: str, tmp_path: Path
) -> None:
    source, title = unique_name, f"cpp{uuid.uuid4().hex[:8]}"
    env = worker_env(kafka_bootstrap, source, tmp_path)
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        report = tmp_path / "sent.jsonl"
        began = time.monotonic()
        ctest = _run(
            ["ctest", "--test-dir", str(cpp_build), "--output-on-failure", "--no-tests=error"],
            600,
            env={
                **os.environ,
                "REFINERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "REFINERY_REGISTRY_URL": registry_url,
                "REFINERY_TEST_ENV": "prod",
                "REFINERY_TEST_SOURCE": source,
                "REFINERY_TEST_TITLE": title,
                "REFINERY_TEST_REPORT": str(report),
            },
        )
        print(f"ctest ran in {time.monotonic() - began:.1f}s")
        output = ctest.stdout + ctest.stderr
        assert ctest.returncode == 0, output[-8000:]
        assert "100% tests passed" in output and "Skipped" not in output, output[-3000:]
        sent = [json.loads(line) for line in report.read_text().splitlines()]
        assert len(sent) >= 30

        # every record the C++ SDK wrote passes the contract checker, schema rules included
        out = io.StringIO()
        topic = ingest_topic("prod", source)
        code = cli.main(["--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--timeout", "30",
                         "verify", topic], stdout=out)  # fmt: skip
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert code == cli.EXIT_OK, lines[:20]
        assert lines == [{"summary": {"records": len(sent), "records_with_violations": 0, "violations": 0,
                                      "must_violations": 0, "by_rule": {}}}]  # fmt: skip

        # a real worker routed each record by its headers: by category, and the pc players' once more
        expected: dict[str, set[bytes]] = {}
        for record in sent:
            by_category = f"prod.{source}.{title}.{record['category']}-v{record['version']}"
            expected.setdefault(by_category, set()).add(record["message_id"].encode())
            if record["platform"] == "pc":
                expected.setdefault(f"prod.{source}.{title}.pc-v1", set()).add(record["message_id"].encode())
        for derived, ids in expected.items():
            routed = consume_all(kafka_bootstrap, [derived], expected=len(ids), timeout=90)
            assert {dict(m.headers() or [])["ce_id"] for m in routed} == ids, derived
            assert len(routed) == len(ids), derived
        assert worker.stats()["running"]
    finally:
        worker.stop()

"""refinery-client and refinery-demo against the real broker and registry."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time

import pytest

from common.topics import ingest_topic
from producers import cli, demo
from producers.reader import jsonable
from producers.workload import SCHEMAS, WorkloadGenerator
from tests.support import free_port

pytestmark = pytest.mark.integration


def run_cli(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), stdout=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def test_register_produce_and_tail_every_format(
    kafka_bootstrap: str, registry_url: str, title: str, unique_name: str
) -> None:
    conn = ("--bootstrap", kafka_bootstrap, "--registry-url", registry_url)
    for spec in SCHEMAS:
        code, out = run_cli(
            *conn, "register", str(spec.path), "--title", title, "--category", spec.category,
            "--version", str(spec.version),
        )  # fmt: skip
        assert code == 0, out
        assert json.loads(out)["version"] == spec.version
        assert json.loads(out)["subject"] == f"{title}.{spec.category}-value"

    samples = {m.category: m for m in WorkloadGenerator(seed=11).take(200)}
    lines = {
        "match_started": json.dumps(samples["match_started"].payload),
        "purchase": json.dumps(jsonable(samples["purchase"].payload)),
        "session_heartbeat": json.dumps(samples["session_heartbeat"].payload),
        "crash_report": json.dumps(base64.b64encode(samples["crash_report"].payload).decode()),
    }
    for category, line in lines.items():
        extra = ["--raw", "--key", "m-1"] if category == "crash_report" else []
        code, out = run_cli(
            *conn, "produce", "--title", title, "--category", category, "--version", "1",
            "--env", unique_name, "--allow-env", "--attr", "platform=ps", *extra, stdin=line + "\n",
        )  # fmt: skip
        assert code == 0 and json.loads(out)["sent"] == 1, out

    topic = ingest_topic(unique_name, "telemetry")
    code, out = run_cli(*conn, "tail", topic, "--from-beginning", "--max", "4", "--idle-timeout", "20")
    assert code == 0
    records = {r["metadata"]["category"]: r for r in map(json.loads, out.splitlines())}
    assert {r["metadata"]["format"] for r in records.values()} == {"avro", "protobuf", "json", "raw"}
    assert records["match_started"]["payload"] == samples["match_started"].payload
    assert records["purchase"]["payload"] == jsonable(samples["purchase"].payload)
    assert records["session_heartbeat"]["payload"] == samples["session_heartbeat"].payload
    assert base64.b64decode(records["crash_report"]["payload"]) == samples["crash_report"].payload
    assert all(r["metadata"]["attributes"] == {"platform": "ps"} for r in records.values())

    code, out = run_cli(
        *conn, "tail", topic, "--from-beginning", "--where", "category=purchase",
        "--where", f"env={unique_name}", "--idle-timeout", "3",
    )  # fmt: skip
    assert code == 0 and [json.loads(line)["metadata"]["category"] for line in out.splitlines()] == [
        "purchase"
    ]


def test_produce_refuses_bad_lines(
    kafka_bootstrap: str,
    registry_url: str,
    workload_title: str,
    unique_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = ("--bootstrap", kafka_bootstrap, "--registry-url", registry_url)
    args = (*conn, "produce", "--title", workload_title, "--category", "session_heartbeat", "--version", "1",
            "--env", unique_name, "--allow-env")  # fmt: skip
    good = json.dumps({"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 2})
    code, _ = run_cli(*args, stdin=f"{good}\n{{not json\n")
    assert code == 2 and "line 2: not valid JSON" in capsys.readouterr().err
    code, _ = run_cli(*args, stdin=json.dumps({"session_id": "s"}) + "\n")
    assert code == 2 and "player_id" in capsys.readouterr().err
    code, _ = run_cli(*args[:-5], "--version", "9", "--env", unique_name, "--allow-env", stdin=good)
    assert code == 2 and "no schema registered" in capsys.readouterr().err


def test_clear_errors_without_hanging(kafka_bootstrap: str, registry_url: str, unique_name: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    cases = [
        (["--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "tail", f"{unique_name}.x.y.z-v1"],
         2, "does not exist"),
        (["--bootstrap", dead, "--registry-url", registry_url, "--timeout", "2", "tail", "a.b.c.d-v1"],
         1, "is unreachable: connection refused"),
        (["--bootstrap", kafka_bootstrap, "--registry-url", f"http://{dead}", "--timeout", "2",
          "tail", "a.b.c.d-v1"],
         1, "registry unreachable"),
    ]  # fmt: skip
    for argv, expected_code, message in cases:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "producers.cli", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == expected_code, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert time.monotonic() - started < 30


def test_demo_sends_the_workload(
    kafka_bootstrap: str, registry_url: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.main(
        ["--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--register", "--count", "300",
         "--rate", "0", "--env-prefix", f"{unique_name}_", "--seed", "3"]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["sent"] == summary["delivered"] == 300 and summary["failed"] == 0
    assert set(summary["by_ingest"]) <= {
        f"{unique_name}_{env}.{source}" for env in ("prod", "dev") for source in ("telemetry", "backend")
    }

"""`refinery routes validate | diff | apply | history` as operators run them (subprocesses, real broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from refinery.control.route_records import os_user
from refinery.control.route_store import publish_route_set, read_route_log
from refinery.routing.rules import load_route_file, load_route_set

pytestmark = pytest.mark.integration

REFINERY = Path(sys.executable).parent / "refinery"
WORKLOAD_FILE = Path(__file__).resolve().parents[3] / "refinery" / "routes" / "workload.yaml"
SMALL = "routes:\n  - {name: dev-all, match: {env: dev}, to: {topic: dev.all.all.all-v1}}\n"


def cli(
    tmp_path: Path, bootstrap: str, topic: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REFINERY_WORKER_")}
    environ |= {
        "REFINERY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REFINERY_WORKER_ROUTES_TOPIC": topic,
        "REFINERY_WORKER_DATA_DIR": str(tmp_path / "faust"),
        **{f"REFINERY_WORKER_{k.upper()}": v for k, v in env.items()},
    }
    return subprocess.run(
        [str(REFINERY), "routes", *args], env=environ, capture_output=True, text=True, timeout=120
    )


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics


def test_validate_never_touches_kafka(tmp_path: Path, unique_name: str) -> None:
    nowhere = "127.0.0.1:1"  # nothing listens: any Kafka call would fail or hang
    ok = cli(tmp_path, nowhere, unique_name, "validate", str(WORKLOAD_FILE))
    workload = load_route_file(WORKLOAD_FILE)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"valid: 8 routes ({sum(r.dedup for r in workload.routes)} with dedup), "
        f"catch_all {workload.catch_all or 'none'}, version {workload.version}"
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: x\n    match: {nosuchfield: 1}\n    to: {topic: prod.a.b.c-v1}\n")
    refused = cli(tmp_path, nowhere, unique_name, "validate", str(bad))
    assert refused.returncode == 2 and "nosuchfield" in refused.stderr and refused.stdout == ""
    assert cli(tmp_path, nowhere, unique_name, "validate").returncode == 2  # no FILE


def test_diff_is_read_only_and_names_the_changes(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(SMALL)
    first = cli(tmp_path, kafka_bootstrap, unique_name, "diff", str(small))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[:2] == [
        f"live set: none published -> new set: {load_route_set(SMALL).version}",
        "+ dev-all",
    ]
    assert not topic_exists(kafka_bootstrap, unique_name)  # read-only: never created the routes topic
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, unique_name, load_route_file(WORKLOAD_FILE))
    second = cli(tmp_path, kafka_bootstrap, unique_name, "diff", str(small))
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert "+ dev-all" in lines and len([line for line in lines if line.startswith("- ")]) == 8
    assert "1 added, 8 removed, 0 changed, 0 unchanged" in lines
    assert lines[-1].startswith("apply would be refused: the route set would drop 8 of the 8 live routes")
    assert lines[-1].endswith("; pass --force to apply it anyway")


def test_show_and_history_are_read_only(kafka_bootstrap: str, tmp_path: Path, unique_name: str) -> None:
    shown = cli(tmp_path, kafka_bootstrap, unique_name, "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"# no route set has been published to {unique_name!r}\n"
    assert cli(tmp_path, kafka_bootstrap, unique_name, "history").returncode == 0
    assert not topic_exists(kafka_bootstrap, unique_name)  # neither created the routes topic


def test_apply_guards_records_and_lists_history(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(SMALL)
    assert cli(tmp_path, kafka_bootstrap, unique_name, "apply", str(WORKLOAD_FILE)).returncode == 0
    refused = cli(tmp_path, kafka_bootstrap, unique_name, "apply", str(small))
    assert refused.returncode == 2
    assert "would drop 8 of the 8 live routes" in refused.stderr and "pass --force" in refused.stderr
    forced = cli(tmp_path, kafka_bootstrap, unique_name, "apply", str(small), "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(f"applied route set {load_route_set(SMALL).version} (1 routes: 1 added,")
    assert f"as cli:{os_user()} at " in forced.stdout and forced.stdout.rstrip().endswith("(forced)")
    history = cli(tmp_path, kafka_bootstrap, unique_name, "history")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith(f"cli:{os_user()} forced (live)")
    assert "   8 routes  " in lines[1] and not lines[1].endswith("(live)")


def test_apply_with_auth_on_needs_an_identified_operator(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    users = json.dumps(["reader:r-pw:read", "writer:w-pw:write", "boss:b-pw:admin"])
    run = lambda *args, **env: cli(tmp_path, kafka_bootstrap, unique_name, *args, auth_users=users, **env)  # noqa: E731
    anonymous = run("apply", str(WORKLOAD_FILE))
    assert anonymous.returncode == 1 and "error 40101" in anonymous.stderr and "--user" in anonymous.stderr
    wrong = run("apply", str(WORKLOAD_FILE), "--user", "writer", "--password", "nope")
    assert wrong.returncode == 1 and "40101" in wrong.stderr
    low = run("apply", str(WORKLOAD_FILE), cli_user="reader", cli_password="r-pw")
    assert low.returncode == 1 and "40301" in low.stderr and "needs the write role" in low.stderr
    assert read_route_log({"bootstrap.servers": kafka_bootstrap}, unique_name).live is None
    ok = run("apply", str(WORKLOAD_FILE), cli_user="writer", cli_password="w-pw")
    assert ok.returncode == 0, ok.stderr
    assert f"as writer (cli:{os_user()})" in ok.stdout and "w-pw" not in ok.stdout + ok.stderr
    small = tmp_path / "small.yaml"
    small.write_text(SMALL)
    not_admin = run("apply", str(small), "--force", cli_user="writer", cli_password="w-pw")
    assert not_admin.returncode == 1 and "needs the admin role" in not_admin.stderr
    boss = run("apply", str(small), "--force", "--user", "boss", "--password", "b-pw")
    assert boss.returncode == 0, boss.stderr
    history = read_route_log({"bootstrap.servers": kafka_bootstrap}, unique_name).history
    assert [(p.who, p.forced) for p in history] == [
        (f"boss (cli:{os_user()})", True),
        (f"writer (cli:{os_user()})", False),
    ]

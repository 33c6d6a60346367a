"""End to end through a running `refinery worker` (a subprocess) on the real broker: every predicate
kind, fan-out, byte-identical pass-through, topics created on demand, each DLQ reason, dedup, the web
views and refusal of invalid route sets. One worker serves the whole module to keep the suite fast."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient

from common.config import KafkaSettings
from common.limits import MAX_RECORD_BYTES
from refinery.control.route_store import RouteWatcher, publish_route_set
from refinery.routing import dlq
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import REFINERY, WorkerProcess, record, send, worker_env
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

ROUTES = """
envs: [prod, dev]
routes:
  - name: eq-title
    match: {env: prod, title: "1234"}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
  - name: in-category
    match: {category: {in: [match_started, player_killed]}}
    to: {template: "{env}.{source}.all.fights-v1"}
  - name: glob-title
    match: {title: {glob: "2*"}}
    to: {template: "{env}.{source}.2xxx.all-v1"}
  - name: not-prod-crashes
    match: {all: [{not: {env: prod}}, {category: crash_report}]}
    to: {template: "dev.{source}.all.crash_report-v1"}
  - name: any-small
    match: {any: [{title: "3456"}, {title: "4567"}]}
    to: {template: "{env}.{source}.{title}.all-v1"}
  - name: attr-pc
    match: {attribute.platform: pc, category: purchase}
    to: {template: "{env}.{source}.all.pc_purchases-v1"}
  - name: by-team
    match: {category: team_event}
    to: {template: "{env}.{source}.{attribute.team}.team_event-v1"}
  - name: dedup-route
    match: {category: once}
    to: {template: "{env}.{source}.all.once-v1"}
    dedup: true
"""


@pytest.fixture(scope="module")
def name() -> str:
    return f"t_pipe_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("worker")
    env = worker_env(
        kafka_bootstrap, name, tmp, derived_allowed_envs='["prod","dev"]',
        derived_partitions_by_topic=json.dumps({f"prod.{name}.1234.*": 2}),
    )  # fmt: skip
    del env["REFINERY_WORKER_DERIVED_PARTITIONS"]  # the default (1) for every other derived topic
    conf = {"bootstrap.servers": kafka_bootstrap}
    publish_route_set(conf, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES))
    proc = WorkerProcess(env, tmp / "worker.log").start()
    yield proc
    proc.stop()


def _by_id(messages: list[Message]) -> dict[str, Message]:
    return {dict(m.headers() or [])["ce_id"].decode(): m for m in messages}


def _ids(messages: list[Message]) -> set[str]:
    return set(_by_id(messages))


def test_each_predicate_kind_fan_out_and_byte_identical(
    worker: WorkerProcess, kafka_bootstrap: str, name: str
) -> None:
    sent = {
        "eq+in": record("prod", name, "1234", "player_killed", version=2),  # eq-title, in-category
        "glob": record("prod", name, "2345", "session_heartbeat"),
        "not": record("dev", name, "9999", "crash_report"),
        "any": record("prod", name, "4567", "session_heartbeat"),
        "attr": record("prod", name, "9999", "purchase", attributes={"platform": "pc"}),
        "attr-other": record("prod", name, "9999", "purchase", attributes={"platform": "ps"}),  # unmatched
    }
    ids = {label: dict(h)["ce_id"].decode() for label, (_, h) in sent.items()}
    send(kafka_bootstrap, f"prod.{name}.ingest.all-v1",
         [(b"key-" + label.encode(), v, h) for label, (v, h) in sent.items() if label != "not"])  # fmt: skip
    send(kafka_bootstrap, f"dev.{name}.ingest.all-v1", [(b"key-not", *sent["not"])])

    expected = {
        f"prod.{name}.1234.player_killed-v2": {ids["eq+in"]},
        f"prod.{name}.all.fights-v1": {ids["eq+in"]},
        f"prod.{name}.2xxx.all-v1": {ids["glob"]},
        f"dev.{name}.all.crash_report-v1": {ids["not"]},
        f"prod.{name}.4567.all-v1": {ids["any"]},
        f"prod.{name}.all.pc_purchases-v1": {ids["attr"]},
    }
    for topic, want in expected.items():  # each topic was created on demand by the worker
        got = consume_all(kafka_bootstrap, [topic], expected=len(want), timeout=30)
        assert _ids(got) == want, topic
    # byte-identical: key, value and headers of the fanned-out record, in both derived topics
    value, headers = sent["eq+in"]
    for topic in (f"prod.{name}.1234.player_killed-v2", f"prod.{name}.all.fights-v1"):
        (msg,) = consume_all(kafka_bootstrap, [topic], expected=1)
        assert msg.key() == b"key-eq+in" and msg.value() == value and msg.headers() == headers
    stats = wait_for(lambda: (s := worker.stats())["totals"]["unmatched"] >= 1 and s, what="unmatched count")
    assert stats["routes"]["eq-title"]["total"] >= 1 and stats["routes"]["in-category"]["total"] >= 1
    # created with the default partition count, or the count of the first pattern matching the name
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    partitions = {topic: len(topics[topic].partitions) for topic in expected}
    assert partitions == {topic: 2 if topic.startswith(f"prod.{name}.1234.") else 1 for topic in expected}


def test_dead_letters_carry_reason_headers(worker: WorkerProcess, kafka_bootstrap: str, name: str) -> None:
    topic = f"prod.{name}.ingest.all-v1"
    good_value, good_headers = record("prod", name, "1234", "team_event", attributes={"team": "red"})
    dev_value, dev_headers = record("dev", name, "1234", "session_heartbeat")
    _, missing_env = record("prod", name, "1234", "x")
    _, malformed = record("prod", name, "1234", "x")
    no_team_value, no_team = record("prod", name, "1234", "team_event")
    R = dlq.DlqReason
    cases = {
        b"no-headers": (b"\x00random bytes", None, dlq.DlqReason.MISSING_HEADER),
        b"missing-env": (b"v", [(k, v) for k, v in missing_env if k != "ce_env"], R.MISSING_HEADER),
        b"duplicate": (good_value, [*good_headers, ("ce_title", b"9")], dlq.DlqReason.DUPLICATE_HEADER),
        b"malformed": (b"v", [(k, b"1.2" if k == "ce_title" else v) for k, v in malformed],
                       dlq.DlqReason.MALFORMED_HEADER),
        b"env": (dev_value, dev_headers, dlq.DlqReason.ENV_MISMATCH),  # dev data on a prod ingest topic
        # under the limit as a value, over it with its headers: the default limit, not a shrunk one
        b"too-large": (b"x" * (MAX_RECORD_BYTES - 100), good_headers, dlq.DlqReason.VALUE_TOO_LARGE),
        b"template": (no_team_value, no_team, dlq.DlqReason.ROUTE_ERROR),  # {attribute.team} missing
        b"truncated": (good_value[:20], good_headers, R.MALFORMED_ENVELOPE),  # valid headers, cut value
        b"mismatch": (good_value, [(k, b"x" if k == "ce_id" else v) for k, v in good_headers],
                      R.HEADER_MISMATCH),  # the ce_id header is not the envelope's message id
    }  # fmt: skip
    send(kafka_bootstrap, topic, [(key, value, headers) for key, (value, headers, _) in cases.items()])
    qa_topic = f"qa.{name}.ingest.all-v1"  # env qa may not have derived topics: derived_allowed_envs
    qa_value, qa_headers = record("qa", name, "1234", "match_started")
    send(kafka_bootstrap, qa_topic, [(b"qa", qa_value, qa_headers)])
    cases[b"qa"] = (qa_value, qa_headers, R.TOPIC_REJECTED)
    dead = consume_all(kafka_bootstrap, [f"_{name}-dlq"], expected=len(cases), timeout=30)
    by_key = {m.key(): m for m in dead}
    assert set(by_key) == set(cases)
    for key, (value, headers, reason) in cases.items():
        msg = by_key[key]
        got = msg.headers() or []
        errors = {k: v for k, v in got if k.startswith(dlq.ERROR_HEADER_PREFIX)}
        assert errors[dlq.REASON] == reason.value.encode(), key
        assert errors[dlq.TOPIC] == (qa_topic if key == b"qa" else topic).encode()
        assert int(errors[dlq.PARTITION]) >= 0
        assert int(errors[dlq.OFFSET]) >= 0 and int(errors[dlq.TIMESTAMP]) > 0 and errors[dlq.MESSAGE]
        assert got[: len(headers or [])] == list(headers or [])
        if key == b"too-large":  # the original does not fit in a dead letter: its value is cut, and said so
            assert value.startswith(msg.value() or b"") and len(msg.value() or b"") < len(value)
            assert errors[dlq.VALUE_TRUNCATED] == b"true" and int(errors[dlq.VALUE_SIZE]) == len(value)
            assert errors[dlq.VALUE_SHA256] == hashlib.sha256(value).hexdigest().encode()
        else:
            assert msg.value() == value
    stats = wait_for(lambda: (s := worker.stats())["dlq"] and sum(v["total"] for v in s["dlq"].values()) >= 7
                     and s, what="dlq counts")  # fmt: skip
    assert stats["dlq"]["missing_header"]["total"] >= 2


def test_resent_message_id_is_deduplicated(worker: WorkerProcess, kafka_bootstrap: str, name: str) -> None:
    value, headers = record("prod", name, "1234", "once")
    other_value, other_headers = record("prod", name, "1234", "once")
    topic = f"prod.{name}.ingest.all-v1"
    send(kafka_bootstrap, topic, [(b"k", value, headers), (b"k", value, headers)])  # same batch
    wait_for(lambda: worker.stats()["totals"]["deduplicated"] >= 1, what="first duplicate dropped")
    send(kafka_bootstrap, topic, [(b"k", value, headers), (b"k", other_value, other_headers)])  # later batch
    out = consume_all(kafka_bootstrap, [f"prod.{name}.all.once-v1"], timeout=15, idle=3)
    assert sorted(_ids(out)) == sorted(
        {dict(headers)["ce_id"].decode(), dict(other_headers)["ce_id"].decode()}
    )
    assert len(out) == 2
    assert worker.stats()["totals"]["deduplicated"] == 2


def test_outputs_reach_the_broker_lz4_compressed(
    worker: WorkerProcess, kafka_bootstrap: str, name: str
) -> None:
    """The worker's default codec, seen from the wire: a reader of a derived topic receives far fewer
    bytes than the records hold (uncompressed, it would receive more: framing and headers)."""
    text = b"player_killed weapon=rifle zone=north " * 500  # ~19 KB, compressible as game events are
    sent = [record("prod", name, "1234", "bulk", payload=text) for _ in range(40)]
    send(kafka_bootstrap, f"prod.{name}.ingest.all-v1", [(b"bulk", v, h) for v, h in sent])
    wire_bytes: list[int] = []  # bytes received from the brokers, per statistics report

    def on_stats(doc: str) -> None:
        wire_bytes.append(sum(b["rxbytes"] for b in json.loads(doc)["brokers"].values()))

    reader = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": f"{name}-wire", "auto.offset.reset": "earliest",
        "statistics.interval.ms": 100, "stats_cb": on_stats,
    })  # fmt: skip
    reader.subscribe([f"prod.{name}.1234.bulk-v1"])
    got: list[Message] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += [m for m in reader.consume(100, 0.5) if m.error() is None]
        reports = len(wire_bytes)
        while len(wire_bytes) < reports + 2 and time.monotonic() < deadline:  # a report after the last fetch
            reader.poll(0.1)
    finally:
        reader.close()
    assert _ids(got) == {dict(h)["ce_id"].decode() for _, h in sent}
    values = sum(len(m.value() or b"") for m in got)
    assert values > len(sent) * len(text)
    assert 0 < wire_bytes[-1] < values / 10, (wire_bytes[-1], values)


def test_views_and_metrics(worker: WorkerProcess) -> None:
    routes = worker.get("/routes").json()
    assert [r["name"] for r in routes["routes"]][:2] == ["eq-title", "in-category"]
    assert routes["version"] == load_route_set(ROUTES).version
    metrics = worker.get("/metrics").text
    for series in ("refinery_records_in_total", "refinery_records_routed_total", "refinery_batches_total",
                   "refinery_record_latency_seconds_bucket", "refinery_routes_active"):  # fmt: skip
        assert series in metrics
    assert "\nrefinery_worker_direct_headers 1.0\n" in metrics  # bound: headers stay librdkafka's
    assert "\nrefinery_worker_ack_counting 1.0\n" in metrics  # batches complete as records are acknowledged


def test_invalid_route_set_is_refused_and_old_one_stays(worker: WorkerProcess, tmp_path: Path) -> None:
    before = worker.get("/routes").json()["version"]
    bad = "routes:\n  - name: x\n    match: {nosuchfield: 1}\n    to: {topic: prod.a.b.c-v1}\n"
    response = httpx.post(worker.url + "/routes", content=bad, timeout=10)
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201 and "nosuchfield" in response.json()["message"]
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(bad)
    cli = subprocess.run([str(REFINERY), "routes", "apply", str(bad_file)], env=worker.env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode != 0 and "nosuchfield" in cli.stderr + cli.stdout
    assert worker.get("/routes").json()["version"] == before
    shown = subprocess.run([str(REFINERY), "routes", "show"], env=worker.env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert shown.returncode == 0 and before in shown.stdout


def test_routes_topic_watcher_sees_same_set(worker: WorkerProcess, kafka_bootstrap: str) -> None:
    conf = KafkaSettings(bootstrap_servers=kafka_bootstrap).client_config()
    with RouteWatcher(conf, worker.env["REFINERY_WORKER_ROUTES_TOPIC"]) as watcher:
        assert watcher.wait_ready(15)
        router = watcher.current()
        assert router is not None and router.route_set.version == worker.get("/routes").json()["version"]

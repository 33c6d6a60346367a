"""The workload's bad-input mix (1% of records, sent by a raw client) through a running worker with the
registry check on: every bad record lands in the DLQ with a reason, the worker keeps running, and
in = routed + DLQ + unmatched reconciles with what was sent (`refinery.reconcile.reconciler`)."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from common.headers import Headers
from common.kafka_admin import TopicEnsurer
from common.limits import MAX_RECORD_BYTES
from refinery.control.route_store import publish_route_set
from refinery.reconcile.reconciler import Reconciler
from refinery.routing import dlq
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from refinery.routing.schema_check import SchemaIdChecker
from tests.refinery.worker.worker_harness import REFINERY, WorkerProcess, record, worker_env
from tests.reliability.figures import record_figures
from tests.reliability.pipeline import reconcile_worker_output, wait_caught_up
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

GOOD = 100_000 if os.environ.get("REFINERY_SOAK") == "1" else 10_000
ROUTES = """
envs: [prod, dev]
routes:
  - name: exact
    match: {title: {in: ["1234", "2345"]}}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
  - name: by-platform
    match: {attribute.platform: {in: [pc, ps]}}
    to: {template: "{env}.{source}.{attribute.platform}.all-v1"}
"""

Sample = tuple[bytes | None, Headers | None]


@pytest.fixture(scope="module")
def name() -> str:
    return f"t_bad_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def schema_id(registry_url: str, name: str) -> int:
    schema = json.dumps({"type": "record", "name": "Ok", "fields": [{"name": "a", "type": "int"}]})
    response = httpx.post(
        f"{registry_url}/subjects/{name}-value/versions", json={"schema": schema}, timeout=30
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, registry_url: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("bad-input")
    env = worker_env(kafka_bootstrap, name, tmp, registry_check=True)  # production limits
    env["REFINERY_REGISTRY_URL"] = registry_url
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    proc = WorkerProcess(env, tmp / "worker.log").start()
    yield proc
    proc.stop()


def bad_kinds(name: str, schema_id: int) -> dict[str, Callable[[random.Random], Sample]]:
    """The bad-input mix of /work/shared/workload.md, plus header abuse: each kind makes one record."""

    def good(title: str = "1234", env: str = "prod", **kw: Any) -> Sample:
        return record(env, name, title, "kill", schema_id=schema_id, attributes={"platform": "pc"}, **kw)

    def without(header: str) -> Sample:
        value, headers = good()
        return value, [(k, v) for k, v in headers or () if k != header]

    def replace(header: str, new: bytes) -> Sample:
        value, headers = good()
        return value, [(k, new if k == header else v) for k, v in headers or ()]

    return {
        "random_bytes": lambda rng: (rng.randbytes(rng.randint(1, 2000)), None),
        "truncated_envelope": lambda rng: ((v := good()[0] or b"")[: rng.randint(1, len(v) - 1)], None),
        "missing_env": lambda rng: without("ce_env"),
        "missing_message_id": lambda rng: without("ce_id"),
        "unknown_schema_id": lambda rng: record("prod", name, "1", "k", schema_id=10**9 + rng.randrange(9)),
        "wrong_env": lambda rng: good(env="dev"),  # dev data on the prod ingest topic
        # under the limit as a value, over it once the headers count (the realistic poison record)
        "oversized_value": lambda rng: (rng.randbytes(MAX_RECORD_BYTES - rng.randint(1, 300)), good()[1]),
        "duplicated_header": lambda rng: (good()[0], [*(good()[1] or []), ("ce_title", b"2345")]),
        "oversized_message_id": lambda rng: replace("ce_id", b"x" * 5000),
        # route `exact` puts the category in the topic name, which cannot hold 300 characters
        "oversized_category": lambda rng: replace("ce_type", b"c" * 300),
        "not_utf8_header": lambda rng: replace("ce_source", b"\xff\xfe"),
        "bad_version": lambda rng: replace("ce_version", b"-1"),
    }  # fmt: skip


def send_with_coordinates(
    bootstrap: str, items: list[tuple[str, bytes, bytes | None, Headers | None]]
) -> list:
    """Produce (topic, key, value, headers) and return (coordinate, value, headers) for every ack."""
    TopicEnsurer({"bootstrap.servers": bootstrap}, partitions=3).ensure_many({t for t, *_ in items})
    # a raw client that sends what the SDK would refuse (records over the worker's limit)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "message.max.bytes": 10_000_000,
        }
    )
    acked: list = []
    failed: list = []

    def on_delivery(headers: Headers | None, err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(err)
        else:  # delivery reports carry no headers: keep the ones we sent
            acked.append(((msg.topic(), msg.partition(), msg.offset()), msg.value(), headers))

    for topic, key, value, headers in items:
        callback = functools.partial(on_delivery, headers)
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=callback)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0 and failed == []
    return acked


def test_bad_input_mix_lands_in_the_dlq_and_counts_add_up(
    worker: WorkerProcess, kafka_bootstrap: str, registry_url: str, name: str, schema_id: int
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    kinds = bad_kinds(name, schema_id)
    prod, dev = f"prod.{name}.ingest.all-v1", f"dev.{name}.ingest.all-v1"
    items: list[tuple[str, bytes, bytes | None, Headers | None]] = []
    bad_sent: Counter[str] = Counter()
    titles, platforms = ["1234", "2345", "3456"], ["pc", "ps", "xbox"]
    for i in range(GOOD):
        env = "prod" if i % 10 else "dev"
        value, headers = record(env, name, titles[i % 3], "kill", schema_id=schema_id,
                                attributes={"platform": platforms[i % 7 % 3]})  # fmt: skip
        items.append((prod if env == "prod" else dev, f"k{i % 50}".encode(), value, headers))
        if i % 99 == 0:  # ~1% bad
            kind = list(kinds)[sum(bad_sent.values()) % len(kinds)]
            bad_sent[kind] += 1
            items.append((prod, f"bad-{kind}".encode(), *kinds[kind](rng)))
    acked = send_with_coordinates(kafka_bootstrap, items)
    assert len(acked) == len(items)

    conf = {"bootstrap.servers": kafka_bootstrap}
    wait_caught_up(conf, name, [prod, dev])
    checker = SchemaIdChecker.from_url(registry_url)
    expected = Reconciler(compile_router(load_route_set(ROUTES)), schema_checker=checker)
    for coordinate, value, headers in acked:
        expected.expect(coordinate, value, headers)
    dlq_topic = worker.env["REFINERY_WORKER_DLQ_TOPIC"]
    dead = consume_all(kafka_bootstrap, [dlq_topic], expected=sum(bad_sent.values()), timeout=60)
    for msg in dead:
        expected.observe_dead_letter(msg.headers())
    report = reconcile_worker_output(conf, ROUTES, name=name, dlq_topic=dlq_topic,
                                     schema_checker=checker)  # fmt: skip
    prediction = expected.finish()

    # every bad record is in the DLQ once, by its key, with a reason and a message saying what is wrong
    by_key: Counter[bytes] = Counter(m.key() or b"" for m in dead)
    assert {k.decode()[4:] for k in by_key} == set(bad_sent) and sum(by_key.values()) == sum(
        bad_sent.values()
    )
    for msg in dead:
        errors = dict((k, v) for k, v in msg.headers() or [] if k.startswith(dlq.ERROR_HEADER_PREFIX))
        assert errors[dlq.REASON].decode() in {r.value for r in dlq.DlqReason} and errors[dlq.MESSAGE]
    assert (prediction.dlq_lost, prediction.dlq_duplicated, prediction.dlq_unexpected) == (0, 0, 0)
    # the derived topics hold exactly what the route set says; in = routed + DLQ + unmatched
    assert report.clean, report
    stats = wait_for(lambda: (s := worker.stats())["totals"]["records_in"] >= len(items) and s, what="stats")
    totals = stats["totals"]
    assert stats["running"] and worker.proc is not None and worker.proc.poll() is None
    assert totals["records_in"] == len(items) == report.sent
    assert totals["routed"] == report.expected_deliveries == report.delivered
    assert totals["dlq"] == report.dlq_found == sum(bad_sent.values())
    assert totals["unmatched"] == report.unmatched
    record_figures(
        "bad_input_mix", seed=seed, sent=len(items), good=GOOD, bad=sum(bad_sent.values()),
        bad_by_kind=dict(bad_sent), dlq_by_reason=report.dlq_reasons, routed=report.delivered,
        unmatched=report.unmatched, lost=report.lost, duplicated=report.duplicated,
        misrouted=report.misrouted,
    )  # fmt: skip


def test_reconcile_cli_agrees(worker: WorkerProcess, registry_url: str, name: str, tmp_path: Path) -> None:
    """`refinery-reconcile` from the command line, configured like the worker, over the same topics."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    env = {**worker.env, "REFINERY_REGISTRY_URL": registry_url}
    argv = [str(REFINERY.parent / "refinery-reconcile"), "--routes", str(routes), "--json",
            "--derived-pattern", rf"^[a-z]+\.{name}\."]  # fmt: skip
    cli = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert cli.returncode == 0, cli.stdout + cli.stderr[-2000:]
    report = json.loads(cli.stdout)
    assert report["clean"] and report["sent"] >= GOOD and report["dlq_found"] == report["dlq_expected"] > 0


def test_truncated_envelope_with_valid_headers_goes_to_the_dlq(
    worker: WorkerProcess, kafka_bootstrap: str, name: str, schema_id: int
) -> None:
    value, headers = record("prod", name, "1234", "trunc", schema_id=schema_id)
    topic = f"prod.{name}.ingest.all-v1"
    send_with_coordinates(
        kafka_bootstrap, [(topic, b"truncated-with-headers", value[: len(value) // 2], headers)]
    )
    dead = consume_all(kafka_bootstrap, [worker.env["REFINERY_WORKER_DLQ_TOPIC"]], timeout=20, idle=3)
    assert b"truncated-with-headers" in {m.key() for m in dead}

"""The contract checker: `check_record` finds each violation kind of docs/contract.md, named by its rule
(every rule of `common.contract.RULES` is covered), and `refinery-client verify` reports them from a real
topic with exit 3, and passes the SDK's own records with exit 0."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from common import contract
from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.envelope import encode_envelope, make_envelope
from common.headers import Headers, metadata_to_headers
from common.kafka_admin import TopicEnsurer
from producers import cli
from producers.errors import SchemaNotRegisteredError
from producers.producer import Producer
from producers.schemas import ResolvedSchema, parse_schema
from producers.verify import check_record
from tests.refinery.worker.worker_harness import send
from tests.vectors.generate import KILL_AVRO

TOPIC = "prod.telemetry.ingest.all-v1"
MD: dict[str, Any] = {
    "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f81", "env": "prod", "source": "telemetry",
    "title": "1234", "category": "player_killed", "version": 2, "schema_id": 7, "payload_format": "avro",
    "produced_at_ms": 1767225601000, "producer": "gs-1", "attributes": {"platform": "pc"},
}  # fmt: skip
PAYLOAD = bytes.fromhex("066d2d3102")  # {"match_id": "m-1", "kills": 1} in KILL_AVRO
KEY = b"m-1"


class Catalog:
    """Schema id 7 is KILL_AVRO; (title, category, version) resolve to `version_id`."""

    def __init__(self, version_id: int = 7) -> None:
        self.version_id = version_id

    def by_id(self, schema_id: int) -> ResolvedSchema:
        if schema_id != 7:
            raise SchemaNotRegisteredError(f"no schema {schema_id}")
        return parse_schema(7, KILL_AVRO, "AVRO")

    def resolve(self, title: str, category: str, version: int) -> ResolvedSchema:
        return parse_schema(self.version_id, KILL_AVRO, "AVRO")


def record(payload: bytes = PAYLOAD, **overrides: Any) -> tuple[bytes, Headers]:
    envelope = make_envelope(**{**MD, **overrides, "payload": payload})
    return encode_envelope(envelope), metadata_to_headers(envelope.metadata)


def rules(
    topic: str = TOPIC,
    key: bytes | None = KEY,
    value: bytes | None = None,
    headers: Headers | None = None,
    partition: int | None = None,
    catalog: Any = None,
) -> set[str]:
    good_value, good_headers = record()
    value = good_value if value is None else value
    headers = good_headers if headers is None else headers
    if partition is None:
        partition = contract.partition_for_key(key) if key is not None else 0
    found = check_record(
        topic, key, value, headers, partition=partition, partitions=12, catalog=catalog or Catalog()
    )
    return {rule for rule, _ in found}


def edit(name: str, value: bytes | None) -> Headers:
    """The good headers with `name` set to `value` (None: removed)."""
    headers = record()[1]
    return [(k, value if k == name else v) for k, v in headers if not (k == name and value is None)]


def reordered() -> bytes:
    """The good envelope with the payload field before the metadata: legal protobuf, not canonical."""
    value, _ = record()
    tail = 2 + len(PAYLOAD)  # tag 0x12, length, payload
    return value[-tail:] + value[:-tail]


CASES: dict[str, tuple[set[str], Callable[[], set[str]]]] = {
    "good": (set(), lambda: rules()),
    "record.size": ({"record.size"}, lambda: rules(key=b"k" * 1_000_000)),
    "headers.present": ({"headers.present", "header.specversion", "header.content_type", "header.time",
                         "header.producer", "header.attributes"}, lambda: rules(headers=[])),
    "headers.unique": ({"headers.unique"}, lambda: rules(headers=[*record()[1], ("ce_title", b"1234")])),
    "headers.required": ({"headers.required"}, lambda: rules(headers=edit("ce_schemaid", None))),
    "header.utf8": ({"header.utf8"}, lambda: rules(headers=edit("ce_source", b"\xff"))),
    "header.message_id": ({"header.message_id"}, lambda: rules(headers=edit("ce_id", b"x" * 201))),
    "header.component": ({"header.component"}, lambda: rules(headers=edit("ce_title", b"12.34"))),
    "header.integer": ({"header.integer"}, lambda: rules(headers=edit("ce_version", b"02"))),
    "header.format": ({"header.format"}, lambda: rules(headers=edit("ce_format", b"AVRO"))),
    "topic.env": ({"topic.env"}, lambda: rules(topic="dev.telemetry.ingest.all-v1")),
    "envelope.decode": ({"envelope.decode"}, lambda: rules(value=b"\xff\xff")),
    "envelope.env": ({"envelope.env"}, lambda: rules(value=record(env="dev")[0])),
    "envelope.match": ({"envelope.match"}, lambda: rules(headers=edit("ce_title", b"4321"))),
    "schema.registered": ({"schema.registered"}, lambda: rules(*_with(schema_id=8))),
    "header.specversion": ({"header.specversion"}, lambda: rules(headers=edit("ce_specversion", b"1"))),
    "header.content_type": ({"header.content_type"}, lambda: rules(headers=edit("content-type", b"text/x"))),
    "header.time": ({"header.time"}, lambda: rules(headers=edit("ce_time", b"2026-01-01T00:00:01Z"))),
    "header.time (other instant)": (
        {"header.time"}, lambda: rules(headers=edit("ce_time", b"2026-01-01T00:00:01.001Z"))),
    "header.producer": ({"header.producer"}, lambda: rules(headers=edit("ce_producer", b"someone-else"))),
    "header.attributes": ({"header.attributes"}, lambda: rules(headers=edit("attr.platform", None))),
    "header.attributes (name)": (
        {"header.attributes"}, lambda: rules(*_with(attributes={"plat form": "pc"}))),
    "topic.ingest": ({"topic.ingest"}, lambda: rules(topic="prod.telemetry.1234.kill-v1")),
    "topic.ingest (source)": ({"topic.ingest"}, lambda: rules(topic="prod.backend.ingest.all-v1")),
    "key.partition": ({"key.partition"}, lambda: rules(partition=(contract.partition_for_key(KEY) + 1) % 12)),
    "schema.version": ({"schema.version"}, lambda: rules(catalog=Catalog(version_id=9))),
    "payload.schema": ({"payload.schema"}, lambda: rules(*_with(payload=b"\x06m-"))),
    "message_id.uuid7": ({"message_id.uuid7"}, lambda: rules(*_with(message_id="order-17"))),
    "envelope.canonical": ({"envelope.canonical"}, lambda: rules(value=reordered())),
    "topic.length": ({"topic.length"}, lambda: rules(*_with(title="t" * 240))),
}  # fmt: skip


def _with(payload: bytes = PAYLOAD, **overrides: Any) -> tuple[str, bytes, bytes, Headers]:
    """(topic, key, value, headers) of a record made with these metadata (and payload)."""
    value, headers = record(payload, **overrides)  # make_envelope writes even a bad attribute name
    return TOPIC, KEY, value, headers


def test_every_rule_has_a_case() -> None:
    covered = {rule for expected, _ in CASES.values() for rule in expected}
    assert covered >= set(contract.RULES) - {"topic.partitions"}  # a topic's, shown by the broker test


@pytest.mark.parametrize("case", list(CASES))
def test_check_record_names_each_violation_by_its_rule(case: str) -> None:
    expected, found = CASES[case]
    assert found() == expected


@pytest.mark.integration
def test_verify_reports_violations_from_a_topic_and_passes_the_sdks_records(
    kafka_bootstrap: str, registry_url: str, unique_name: str
) -> None:
    conn = ["--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--timeout", "20"]
    bad_topic = f"prod.{unique_name}.ingest.all-v1"
    TopicEnsurer({"bootstrap.servers": kafka_bootstrap}, partitions=3).ensure(bad_topic)
    value, headers = record(source=unique_name)
    send(kafka_bootstrap, bad_topic, [
        (b"k", value, [(k, v) for k, v in headers if k != "ce_format"]),  # headers.required
        (b"k", value, [(k, b"01" if k == "ce_version" else v) for k, v in headers]),  # header.integer
        (b"k", b"not an envelope", headers),  # envelope.decode (one key: one partition)
    ])  # fmt: skip
    out = io.StringIO()
    code = cli.main([*conn, "verify", bad_topic, "--no-registry"], stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == cli.EXIT_VIOLATIONS
    found = {(v["rule"], v["offset"]) for v in lines[:-1]}
    assert found >= {
        ("topic.partitions", -1),
        ("headers.required", 0),
        ("header.integer", 1),
        ("envelope.decode", 2),
    }
    by_rule = {v["rule"]: v for v in lines[:-1]}
    assert (
        by_rule["header.integer"]["dlq"] == "malformed_header"
        and "'01'" in by_rule["header.integer"]["message"]
    )
    assert lines[-1]["summary"]["records"] == 3 and lines[-1]["summary"]["records_with_violations"] == 3

    # the SDK's own records, with the registry: nothing to report
    catalog_title = unique_name[-30:].lstrip("_")
    registry = RegistrySettings(url=registry_url)
    settings = ProducerSettings(env="prod", source=f"{unique_name}ok")
    with Producer(
        settings, kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), registry=registry
    ) as producer:
        producer.register(catalog_title, "kill", KILL_AVRO, "AVRO", version=1)
        for n in range(20):
            producer.send(
                catalog_title, "kill", 1, {"match_id": f"m-{n}", "kills": n}, attributes={"platform": "pc"}
            )
    out = io.StringIO()
    code = cli.main([*conn, "verify", f"prod.{unique_name}ok.ingest.all-v1"], stdout=out)
    assert code == cli.EXIT_OK, out.getvalue()
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {
            "summary": {
                "records": 20,
                "records_with_violations": 0,
                "violations": 0,
                "must_violations": 0,
                "by_rule": {},
            }
        }
    ]

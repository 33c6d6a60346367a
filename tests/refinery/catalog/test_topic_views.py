"""The pure parts of the topic page and the dead-letter workbench: routes and producers of a topic, search,
schema versions with their diff, records decoded by schema id or shown as hex, dead letters by reason /
title / time with the replay command (no services)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message
from confluent_kafka.schema_registry import RegisteredSchema, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import KafkaSettings
from producers.errors import RegistryUnavailableError
from producers.schemas import parse_schema
from refinery.catalog.build import build_catalog
from refinery.catalog.dlq_view import dlq_document, replay_command
from refinery.catalog.samples import SampledRecord, _SamplingReader
from refinery.catalog.schema_history import SchemaHistory, pretty
from refinery.catalog.topic_page import search, topic_context
from refinery.catalog.topic_stats import topic_kind
from refinery.routing import dlq
from tests.refinery.catalog.test_build import RATES, observed, workload_router
from tests.refinery.worker.worker_harness import record

V1 = '{"type":"record","name":"Kill","fields":[{"name":"match_id","type":"string"}]}'
V2 = (
    '{"type":"record","name":"Kill","fields":[{"name":"match_id","type":"string"},'
    '{"name":"headshot","type":"boolean","default":false}]}'
)


def catalog() -> dict[str, Any]:
    return build_catalog(observed().snapshot(), workload_router(), RATES, {}, {})


def test_topic_kinds() -> None:
    assert topic_kind("_refinery_dlq", "_refinery_dlq") == "dlq"
    assert topic_kind("_refinery_routes", "_refinery_dlq") is None
    assert topic_kind("prod.telemetry.ingest.all-v1", "_refinery_dlq") == "ingest"
    assert topic_kind("prod.telemetry.all.pc_kills-v2", "_refinery_dlq") == "derived"
    assert topic_kind("bench-sink", "_refinery_dlq") == "other"


def test_a_derived_topic_lists_the_routes_feeding_it_and_its_producers() -> None:
    context = topic_context("prod.telemetry.all.pc_kills-v2", "derived", catalog())
    assert [r["name"] for r in context["routes_in"]] == ["pc-kills"]
    assert context["routes_in"][0]["per_second"] == 1.5
    assert {"attribute.platform": "pc"} in context["routes_in"][0]["match"]["all"]
    assert context["producers"] == ["demo/1"]
    assert [f["flow"] for f in context["flows"]] == ["prod/telemetry/1234/player_killed/v2"]
    assert context["subjects"] == ["1234.player_killed-value", "all.pc_kills-value"]


def test_an_ingest_topic_lists_the_routes_reading_it() -> None:
    context = topic_context("prod.telemetry.ingest.all-v1", "ingest", catalog())
    assert context["routes_in"] == []
    assert {r["name"] for r in context["routes_out"]} == {"prod-1234-by-category", "kills-v2", "pc-kills"}
    assert context["subjects"] == ["1234.player_killed-value", "5678.session_heartbeat-value"]


def test_search_needs_every_word() -> None:
    topics = [
        {"name": "prod.telemetry.all.pc_kills-v2", "kind": "derived", "partitions": 3, "records": 9},
        {"name": "prod.telemetry.ingest.all-v1", "kind": "ingest", "partitions": 12, "records": 99},
    ]
    found = search("pc KILLS", topics, catalog())
    assert [t["name"] for t in found["topics"]] == ["prod.telemetry.all.pc_kills-v2"]
    assert [r["name"] for r in found["routes"]] == ["pc-kills"]
    assert [f["flow"] for f in search("5678 heartbeat", topics, catalog())["flows"]] == [
        "prod/telemetry/5678/session_heartbeat/v1"
    ]
    assert search("", topics, catalog())["topics"] == []


class FakeRegistry:
    def __init__(self) -> None:
        self.fetched: list[tuple[str, int]] = []

    def get_versions(self, subject: str) -> list[int]:
        if subject != "1234.kill-value":
            raise SchemaRegistryError(404, 40401, "Subject not found")
        return [2, 1]

    def get_version(self, subject: str, version: int) -> RegisteredSchema:
        self.fetched.append((subject, version))
        text = V1 if version == 1 else V2
        return RegisteredSchema(
            subject=subject, version=version, schema_id=10 + version, guid=None, schema=Schema(text, None)
        )


def test_schema_versions_with_their_text_and_a_diff() -> None:
    registry = FakeRegistry()
    history = SchemaHistory(registry)  # type: ignore[arg-type]
    found = history.subject("1234.kill-value")
    assert found is not None
    assert [(v["version"], v["id"], v["type"]) for v in found["versions"]] == [
        (1, 11, "AVRO"),
        (2, 12, "AVRO"),
    ]
    assert found["versions"][1]["text"] == pretty(
        V2, "AVRO"
    ) and '    {\n      "name": "headshot",' in pretty(V2, "AVRO")
    (diff,) = found["diffs"]
    assert (diff["from"], diff["to"]) == (1, 2)
    added = [line for line in diff["lines"] if line.startswith("+") and not line.startswith("+++")]
    assert added == ["+    },", "+    {", '+      "name": "headshot",', '+      "type": "boolean",',
                     '+      "default": false']  # fmt: skip
    assert not [line for line in diff["lines"] if line.startswith("-") and not line.startswith("---")]
    history.subject("1234.kill-value")
    assert len(registry.fetched) == 2  # a registered version never changes: fetched once
    assert history.subject("9999.none-value") is None


def letter(reason: str, title: str | None, ts: int, *, error: str | None = None) -> SampledRecord:
    headers = {dlq.REASON: reason, dlq.MESSAGE: f"why {reason}", dlq.TOPIC: "prod.telemetry.ingest.all-v1",
               dlq.PARTITION: "3", dlq.OFFSET: "42", dlq.WORKER: "w-0"}  # fmt: skip
    if title:
        headers["ce_title"] = title
    metadata = {} if error else {"title": title, "category": "kill", "version": 1, "schema_id": 7}
    payload = None if error else {"match_id": "m-1"}
    return SampledRecord(
        "_refinery_dlq",
        0,
        ts,
        b"k",
        metadata,
        payload,
        error,
        timestamp_ms=ts,
        headers=headers,
        value=b"\x00\xffraw",
    )


def test_dead_letters_by_reason_title_and_time_with_the_replay_command() -> None:
    t0 = 1_764_468_000_000  # 2025-11-30T02:00:00Z
    records = [
        letter("env_mismatch", "1234", t0 + 5_000),
        letter("missing_header", None, t0 + 3_600_000, error="record value is not a Refinery envelope"),
        letter("env_mismatch", "2345", t0 + 7_000),
    ]
    doc = dlq_document(records, topic="_refinery_dlq")
    assert doc["by_reason"] == {"env_mismatch": 2, "missing_header": 1}
    assert doc["by_title"] == {"1234": 1, "(none)": 1, "2345": 1}
    assert doc["by_hour"] == {"2025-11-30T03:00Z": 1, "2025-11-30T02:00Z": 2}
    commands = {r["reason"]: r["command"] for r in doc["replay"]}
    assert commands["env_mismatch"] == (
        "refinery dlq replay --reason env_mismatch --since 2025-11-30T02:00:05Z --dry-run"
    )
    assert commands["missing_header"] == (
        "refinery dlq replay --reason missing_header --since 2025-11-30T03:00:00Z --dry-run"
    )
    hexed = next(d for d in doc["records"] if d["reason"] == "missing_header")
    assert hexed["value_hex"] == "00 ff 72 61 77" and "payload" not in hexed
    decoded = next(d for d in doc["records"] if d["title"] == "1234")
    assert decoded["payload"] == {"match_id": "m-1"} and decoded["dead_letter"]["worker"] == "w-0"
    only = dlq_document(records, topic="_refinery_dlq", reason="env_mismatch", title="2345")
    assert [d["title"] for d in only["records"]] == ["2345"] and only["by_reason"] == doc["by_reason"]
    since = dlq_document(records, topic="_refinery_dlq", since_ms=t0 + 6_000)
    assert len(since["records"]) == 2
    assert replay_command("unknown_schema", t0) == (
        "refinery dlq replay --reason unknown_schema --since 2025-11-30T02:00:00Z --dry-run"
    )


class RegistryAway:
    def by_id(self, schema_id: int) -> Any:
        raise RegistryUnavailableError(
            f"schema registry at http://127.0.0.1:1 is unreachable (id {schema_id})"
        )


def test_sampled_records_decode_by_schema_id_or_show_hex() -> None:
    schema = parse_schema(5, '{"type": "object"}', "JSON", "1234.beat-value", 1, [])

    class Registry:
        def by_id(self, schema_id: int) -> Any:
            assert schema_id == 5
            return schema

    value, headers = record("prod", "telemetry", "1234", "beat", version=1, schema_id=5, payload=b'{"n": 1}')
    msg = Message(topic="t", partition=2, offset=9, key=b"k", value=value, headers=headers, timestamp=(1, 77))
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")  # never asked: decode() needs no broker
    reader = _SamplingReader(["t"], catalog=Registry(), kafka=kafka)  # type: ignore[arg-type]
    decoded = reader.decode(msg)
    assert (
        decoded.error is None and decoded.payload == b'{"n": 1}' and decoded.timestamp_ms == 77
    )  # raw format
    assert decoded.headers["ce_title"] == "1234" and decoded.to_page()["value_bytes"] == len(value)
    away = _SamplingReader(["t"], catalog=RegistryAway(), kafka=kafka)  # type: ignore[arg-type]
    page = away.decode(msg).to_page()
    assert "unreachable" in page["error"] and page["value_hex"] == value.hex(" ")
    garbage = Message(
        topic="t", partition=0, offset=1, key=None, value=b"\xde\xad", headers=None, timestamp=(1, 5)
    )
    page = reader.decode(garbage).to_page()
    assert "not a Refinery envelope" in page["error"] and page["value_hex"] == "de ad"
    reader.close()
    away.close()

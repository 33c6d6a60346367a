"""The golden vectors against the Python implementation: the file is what the generator writes, the SDK
prepares every vector byte for byte, every component that reads headers (header codec, worker guard,
route-set loader, catalog) agrees with the contract on every header value, and librdkafka's
`murmur2_random` puts every vector key where the vectors say (real broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from common import contract
from common.config import KafkaSettings, ProducerSettings
from common.errors import HeaderError
from common.headers import FIELD_HEADERS, headers_to_metadata
from common.limits import record_size
from common.topics import ingest_topic
from producers import producer as producer_module
from producers.producer import Producer
from producers.schemas import ResolvedSchema, parse_schema
from proto.envelope_pb2 import Envelope
from refinery.catalog.flows import FlowTable
from refinery.routing.guards import RecordGuard, Rejection
from refinery.routing.rules import load_route_set
from refinery.routing.rules.model import RuleError
from tests.vectors import generate

VECTORS: dict[str, Any] = json.loads(generate.PATH.read_text(encoding="utf-8"))
RAW_AVRO = '{"type": "bytes"}'


class StubCatalog:
    """A schema catalog that knows one schema for every (title, category, version)."""

    def __init__(self, schema: ResolvedSchema) -> None:
        self.schema = schema

    def resolve(self, title: str, category: str, version: int) -> ResolvedSchema:
        return self.schema

    def close(self) -> None:
        pass


def test_the_vectors_file_is_what_the_generator_writes() -> None:
    assert generate.PATH.read_text(encoding="utf-8") == generate.render(), (
        "tests/vectors/envelopes.json is stale: run .venv/bin/python -m tests.vectors.generate"
    )


@pytest.mark.parametrize("vector", VECTORS["envelopes"], ids=lambda v: v["name"])
def test_the_sdk_prepares_each_vector_byte_for_byte(vector: dict[str, Any], monkeypatch: Any) -> None:
    md = vector["metadata"]
    monkeypatch.setattr(producer_module, "new_message_id", lambda: md["message_id"])
    monkeypatch.setattr(producer_module, "now_ms", lambda: md["produced_at_ms"])
    if "schema" in vector:
        schema = parse_schema(md["schema_id"], vector["schema"], vector["schema_type"])
        payload: Any = json.loads(vector["payload_json"])
    else:
        schema, payload = (
            parse_schema(md["schema_id"], RAW_AVRO, "AVRO"),
            bytes.fromhex(vector["payload_hex"]),
        )
    settings = ProducerSettings(env=md["env"], source=md["source"], producer_id=md["producer"])
    # no broker: the ingest topic counts as created, and nothing is sent
    with Producer(settings, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
                  catalog=StubCatalog(schema)) as producer:  # type: ignore[arg-type]  # fmt: skip
        producer._ready_topics[(md["env"], md["source"])] = vector["ingest_topic"]
        record = producer.prepare(
            md["title"], md["category"], md["version"], payload,
            key=bytes.fromhex(vector["key_hex"]) if vector["has_key"] else None,
            attributes=md["attributes"] or None,
        )  # fmt: skip
    assert record.value.hex() == vector["envelope_hex"]
    assert [(k, v.decode()) for k, v in record.headers] == [
        (h["name"], h["value"]) for h in vector["headers"]
    ]
    assert record.topic == vector["ingest_topic"] == ingest_topic(md["env"], md["source"])
    assert record.key == (bytes.fromhex(vector["key_hex"]) if vector["has_key"] else None)
    assert record_size(record.key, record.value, record.headers) == vector["record_size"]
    if record.key is not None:
        assert contract.partition_for_key(record.key, VECTORS["ingest_partitions"]) == vector["partition"]
    assert headers_to_metadata(record.headers) == Envelope.FromString(record.value).metadata


_FIELD_OF_HEADER = {header: field for field, header in FIELD_HEADERS.items()}
_BASE = {h["name"]: h["value"].encode() for h in VECTORS["envelopes"][0]["headers"]}


def _verdicts(name: str, value: bytes) -> dict[str, tuple[bool, str | None]]:
    """What each component says of a record whose header `name` is `value`: (accepted, reason)."""
    headers = {**_BASE, name: value}
    out: dict[str, tuple[bool, str | None]] = {}
    try:
        headers_to_metadata(headers)
        out["headers_to_metadata"] = (True, None)
    except HeaderError:
        out["headers_to_metadata"] = (False, None)
    env = value.decode() if name == contract.ENV and contract.header_problem(name, value) is None else "dev"
    try:
        RecordGuard(verify_envelope=False).check(
            f"{env}.telemetry.ingest.all-v1", b"x", list(headers.items())
        )
        out["guard"] = (True, None)
    except Rejection as rejection:
        out["guard"] = (False, rejection.reason.value)
    field = _FIELD_OF_HEADER.get(name)
    if field is not None and field != "message_id":
        text = value.decode("utf-8", "replace")
        to = '"{env}.{source}.{title}.{category}-v{version}"'
        routes = f"routes: [{{name: r, match: {{{field}: {json.dumps(text)}}}, to: {{template: {to}}}}}]"
        try:
            load_route_set(routes)
            out["route_loader"] = (True, None)
        except RuleError:
            out["route_loader"] = (False, None)
    if name in (contract.ENV, contract.SOURCE, contract.TITLE, contract.CATEGORY, contract.VERSION):
        table = FlowTable()
        table.observe(f"{env}.telemetry.ingest.all-v1", headers, 0)  # the env's own topic, as the guard
        out["catalog"] = (table.records_without_metadata == 0, None)
    return out


@pytest.mark.parametrize(
    "case", VECTORS["header_values"], ids=lambda c: f"{c['header']}={bytes.fromhex(c['value_hex'])!r}"
)
def test_every_component_agrees_with_the_contract_on_each_header_value(case: dict[str, Any]) -> None:
    value = bytes.fromhex(case["value_hex"])
    verdicts = _verdicts(case["header"], value)
    assert {component: ok for component, (ok, _) in verdicts.items()} == dict.fromkeys(
        verdicts, case["valid"]
    )
    if not case["valid"]:
        assert verdicts["guard"][1] == contract.RULES[case["rule"]].dlq


@pytest.mark.parametrize("case", VECTORS["keys"], ids=lambda c: c["key_hex"][:16] or "empty")
def test_murmur2_matches_the_vectors(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["key_hex"])
    assert contract.murmur2(key) == case["murmur2"]
    assert contract.partition_for_key(key, VECTORS["ingest_partitions"]) == case["partition"]


@pytest.mark.parametrize("case", VECTORS["attribute_names"], ids=lambda c: repr(c["name"]))
def test_attribute_names_follow_the_contract(case: dict[str, Any]) -> None:
    assert (contract.attribute_name_problem(case["name"]) is None) == case["valid"]


@pytest.mark.integration
def test_the_sdk_puts_every_vector_key_in_the_vectors_partition(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """librdkafka's murmur2_random (the SDK's partitioner) on a 12-partition ingest topic the SDK made."""
    settings = ProducerSettings(env=unique_name, source="vectors", producer_id="vectors")
    assert settings.partitions == VECTORS["ingest_partitions"]
    catalog = StubCatalog(parse_schema(1, RAW_AVRO, "AVRO"))
    with Producer(settings, kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
                  catalog=catalog) as producer:  # type: ignore[arg-type]  # fmt: skip
        keys = [bytes.fromhex(c["key_hex"]) for c in VECTORS["keys"]]
        keys += [bytes.fromhex(v["key_hex"]) for v in VECTORS["envelopes"] if v["has_key"]]
        handles = [producer.send("1234", "k", 1, b"x", key=key) for key in keys]
        partitions = [handle.result(timeout=60).partition for handle in handles]
    expected = [c["partition"] for c in VECTORS["keys"]]
    expected += [v["partition"] for v in VECTORS["envelopes"] if v["has_key"]]
    assert partitions == expected
    topic = ingest_topic(unique_name, "vectors")
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=30)
    assert len(metadata.topics[topic].partitions) == VECTORS["ingest_partitions"]

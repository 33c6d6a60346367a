"""Unit tests (no services): schema parsing, payload validation with the field named, encode/decode."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common.errors import ConfigError, TopicNameError
from producers.codecs import decode_payload, encode_payload
from producers.errors import PayloadValidationError
from producers.kafka_config import librdkafka_key, normalize_overrides, producer_config
from producers.schemas import parse_schema, subject_for
from producers.workload import SCHEMAS, offline_schema, purchase_class

AVRO = json.dumps(
    {
        "type": "record",
        "name": "Kill",
        "namespace": "t",
        "fields": [
            {"name": "match_id", "type": "string"},
            {
                "name": "pos",
                "type": {"type": "record", "name": "Pos", "fields": [{"name": "x", "type": "int"}]},
            },
            {"name": "headshot", "type": "boolean", "default": False},
        ],
    }
)
JSON_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "player_id": {"type": "string"},
            "stats": {"type": "object", "properties": {"fps": {"type": "integer"}}},
        },
        "required": ["player_id"],
    }
)


def test_subject_rule_is_title_dot_category_value() -> None:
    assert subject_for("1234", "player_killed") == "1234.player_killed-value"
    with pytest.raises(TopicNameError, match="title"):
        subject_for("12.34", "player_killed")


def test_avro_round_trip_and_errors_name_the_field() -> None:
    schema = parse_schema(7, AVRO, "AVRO")
    fmt, data = encode_payload({"match_id": "m-1", "pos": {"x": 3}}, schema)
    assert fmt == "avro"
    assert decode_payload(data, fmt, schema) == {"match_id": "m-1", "pos": {"x": 3}, "headshot": False}

    with pytest.raises(PayloadValidationError, match=r"t\.Pos\.x") as wrong_type:
        encode_payload({"match_id": "m-1", "pos": {"x": "three"}}, schema)
    assert wrong_type.value.field == "t.Pos.x"
    with pytest.raises(PayloadValidationError, match="match_id") as missing:
        encode_payload({"pos": {"x": 3}}, schema)
    assert missing.value.field == "t.Kill.match_id"
    with pytest.raises(PayloadValidationError, match="'speed'") as unknown:
        encode_payload({"match_id": "m", "pos": {"x": 1}, "speed": 3}, schema)
    assert unknown.value.field == "speed"


def test_avro_payloads_encode_the_same_with_and_without_the_compiled_encoder() -> None:
    """Where the compiled encoder is missing (no C compiler) or not sure, fastavro writes; the bytes
    on the wire are the same either way, the defaults included."""
    schema = parse_schema(7, AVRO, "AVRO")
    without = dataclasses.replace(schema, avro_encoder=None)
    for payload in (
        {"match_id": "m-1", "pos": {"x": 3}, "headshot": True},
        {"match_id": "m-1", "pos": {"x": 3}},
    ):
        assert encode_payload(payload, schema) == encode_payload(payload, without)
    with pytest.raises(PayloadValidationError, match=r"t\.Pos\.x"):
        encode_payload({"match_id": "m-1", "pos": {"x": 2**31}}, schema)


def test_json_schema_errors_name_the_field_path() -> None:
    schema = parse_schema(8, JSON_SCHEMA, "JSON")
    fmt, data = encode_payload({"player_id": "p-1", "stats": {"fps": 60}}, schema)
    assert (fmt, json.loads(data)) == ("json", {"player_id": "p-1", "stats": {"fps": 60}})
    with pytest.raises(PayloadValidationError, match=r"stats\.fps") as nested:
        encode_payload({"player_id": "p-1", "stats": {"fps": "fast"}}, schema)
    assert nested.value.field == "stats.fps"
    with pytest.raises(PayloadValidationError) as missing:
        encode_payload({"stats": {}}, schema)
    assert missing.value.field == "player_id"


def test_protobuf_message_must_be_the_registered_type() -> None:
    schema = offline_schema("purchase", 1)
    purchase = purchase_class()(match_id="m-1", price_cents=499, labels={"a": "b"})
    fmt, data = encode_payload(purchase, schema)
    assert fmt == "protobuf"
    assert decode_payload(data, fmt, schema) == purchase
    # A dict is converted with the registered message type; a wrong field is named.
    assert encode_payload({"match_id": "m-1", "price_cents": 499, "labels": {"a": "b"}}, schema)[1] == data
    with pytest.raises(PayloadValidationError, match="colour"):
        encode_payload({"colour": "red"}, schema)

    other = parse_schema(9, 'syntax = "proto3"; package x; message Other { string a = 1; }', "PROTOBUF")
    with pytest.raises(PayloadValidationError, match=r"x\.Other") as wrong:
        encode_payload(other.proto.message_class(a="z"), schema)  # type: ignore[union-attr]
    assert wrong.value.field == "x.Other"
    # Same full name, different layout: refused, naming the differing field.
    lookalike = parse_schema(
        10,
        'syntax = "proto3"; package refinery.workload.v1; message Purchase { int64 match_id = 1; }',
        "PROTOBUF",
    )
    with pytest.raises(PayloadValidationError, match="differs") as layout:
        encode_payload(lookalike.proto.message_class(match_id=3), schema)  # type: ignore[union-attr]
    assert layout.value.field == "match_id"
    with pytest.raises(PayloadValidationError, match="is AVRO"):
        encode_payload(purchase, parse_schema(7, AVRO, "AVRO"))


def test_raw_bytes_pass_through_and_other_types_are_refused() -> None:
    schema = parse_schema(7, AVRO, "AVRO")
    assert encode_payload(b"\x00\x01", schema) == ("raw", b"\x00\x01")
    assert decode_payload(b"\x00\x01", "raw", schema) == b"\x00\x01"
    with pytest.raises(PayloadValidationError, match="list"):
        encode_payload([1, 2], schema)


def test_every_workload_schema_parses() -> None:
    for spec in SCHEMAS:
        parsed = parse_schema(1, spec.text, spec.schema_type)
        assert (
            parsed.payload_format
            == {"AVRO": "avro", "PROTOBUF": "protobuf", "JSON": "json"}[spec.schema_type]
        )


def test_kafka_config_maps_snake_case_and_keeps_guarantees(kafka_settings) -> None:  # type: ignore[no-untyped-def]
    from common.config import ProducerSettings

    assert librdkafka_key("ssl_certificate_location") == "ssl.certificate.location"
    assert normalize_overrides({"batch_num_messages": 5}) == {"batch.num.messages": 5}
    conf = producer_config(kafka_settings, ProducerSettings(kafka_overrides={"socket_timeout_ms": 999}))
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["socket.timeout.ms"] == 999 and conf["linger.ms"] == 20
    with pytest.raises(ConfigError, match="acks"):
        normalize_overrides({"acks": "1"})
    with pytest.raises(ConfigError, match=r"enable\.idempotence"):
        normalize_overrides({"enable_idempotence": False})

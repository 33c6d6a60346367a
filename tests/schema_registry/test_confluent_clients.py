"""confluent-kafka's own SchemaRegistryClient and serializers, unmodified, against our registry.

Each format round-trips a record through the real broker: serialize (auto-registering the schema),
produce, consume, deserialize (fetching the writer's schema by id from the registry).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from schema_registry.formats.protobuf import parse_protobuf
from tests.support import consume_all

pytestmark = pytest.mark.integration

AVRO_SCHEMA = """{"type": "record", "name": "MatchStarted", "namespace": "refinery.test",
 "fields": [{"name": "match_id", "type": "string"}, {"name": "players", "type": "int"}]}"""
JSON_SCHEMA = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Heartbeat",
 "type": "object", "properties": {"session": {"type": "string"}, "seq": {"type": "integer"}},
 "required": ["session"]}"""


def _game_event_class() -> Any:
    """A protobuf message type importing google/protobuf/timestamp.proto (a well-known type)."""
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)  # no-op when already present
    file = descriptor_pb2.FileDescriptorProto(
        name=f"refinery_test_{uuid.uuid4().hex[:8]}.proto",
        package="refinery.test",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    message = file.message_type.add(name="Purchase")
    message.field.add(name="player", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    message.field.add(
        name="at",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.protobuf.Timestamp",
    )
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("refinery.test.Purchase"))


Purchase = _game_event_class()

_TAG = uuid.uuid4().hex[:8]
OPTIONS_FILE = f"refinery_test/options_{_TAG}.proto"
OPTIONS_PROTO = f"""syntax = "proto3";
package refinery.test.opts{_TAG};
import "google/protobuf/descriptor.proto";
message Sensitivity {{ string level = 1; repeated string owners = 2; }}
extend google.protobuf.FieldOptions {{ Sensitivity sensitivity = 50201; }}
extend google.protobuf.MessageOptions {{ bool audited = 50202; }}
"""
EVENT_PROTO = f"""syntax = "proto3";
package refinery.test.events{_TAG};
import "{OPTIONS_FILE}";
import "google/type/money.proto";
message Refund {{
  option (refinery.test.opts{_TAG}.audited) = true;
  string player = 1 [(refinery.test.opts{_TAG}.sensitivity) = {{ level: "high" owners: ["billing"] }}];
  google.type.Money amount = 2;
}}
"""


def _refund_class() -> Any:
    """A message whose file imports a dependency that declares `extend google.protobuf.*Options` blocks
    and uses its custom options (like confluent-kafka's own metadata_proto test case), plus a bundled
    google/type import. Compiled by protoc, then loaded into the default pool the serializer uses."""
    parsed = parse_protobuf(EVENT_PROTO, {OPTIONS_FILE: OPTIONS_PROTO})
    pool = descriptor_pool.Default()
    for file_proto in parsed.descriptor_set.file:
        if file_proto.name == "schema.proto":
            file_proto.name = f"refinery_test/refund_{_TAG}.proto"
        try:
            pool.FindFileByName(file_proto.name)
        except KeyError:
            pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"refinery.test.events{_TAG}.Refund"))


Refund = _refund_class()


@pytest.fixture
def client(registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url})


def round_trip(kafka_bootstrap: str, topic: str, serializer: Any, deserializer: Any, value: Any) -> Any:
    ctx = SerializationContext(topic, MessageField.VALUE)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=b"k", value=serializer(value, ctx))
    assert producer.flush(30) == 0
    [message] = consume_all(kafka_bootstrap, [topic], expected=1)
    return deserializer(message.value(), ctx)


def test_avro_round_trip(client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: str) -> None:
    serializer = AvroSerializer(client, AVRO_SCHEMA)
    record = {"match_id": "m-1", "players": 10}
    assert round_trip(kafka_bootstrap, unique_name, serializer, AvroDeserializer(client), record) == record
    registered = client.get_latest_version(f"{unique_name}-value")
    assert registered.version == 1 and registered.schema.schema_type == "AVRO"


def test_json_schema_round_trip(client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: str) -> None:
    serializer = JSONSerializer(JSON_SCHEMA, client)
    deserializer = JSONDeserializer(None, schema_registry_client=client)
    record = {"session": "s-1", "seq": 3}
    assert round_trip(kafka_bootstrap, unique_name, serializer, deserializer, record) == record
    assert client.get_latest_version(f"{unique_name}-value").schema.schema_type == "JSON"


@pytest.mark.parametrize("skip_known_types", [True, False])
def test_protobuf_round_trip_with_well_known_types(
    client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: str, skip_known_types: bool
) -> None:
    serializer = ProtobufSerializer(
        Purchase, client, {"use.deprecated.format": False, "skip.known.types": skip_known_types}
    )
    deserializer = ProtobufDeserializer(Purchase, {"use.deprecated.format": False})
    event = Purchase(player="p-1")
    event.at.seconds = 1_700_000_000
    assert round_trip(kafka_bootstrap, unique_name, serializer, deserializer, event) == event
    latest = client.get_latest_version(f"{unique_name}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    names = [ref.name for ref in latest.schema.references or []]
    assert names == ([] if skip_known_types else ["google/protobuf/timestamp.proto"])


def test_protobuf_serializer_registers_a_dependency_with_extensions_and_custom_options(
    client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: str
) -> None:
    """The serializer's defaults: auto.register.schemas, bundled imports skipped, the dependency sent as
    a base64 FileDescriptorProto (issue 15: was 42201 with protoc's log noise)."""
    serializer = ProtobufSerializer(
        Refund, client, {"use.deprecated.format": False, "auto.register.schemas": True}
    )
    deserializer = ProtobufDeserializer(Refund, {"use.deprecated.format": False})
    event = Refund(player="p-1")
    event.amount.currency_code = "EUR"
    event.amount.units = 5
    assert round_trip(kafka_bootstrap, unique_name, serializer, deserializer, event) == event
    latest = client.get_latest_version(f"{unique_name}-value")
    assert [ref.name for ref in latest.schema.references or []] == [OPTIONS_FILE]  # google/type/* is bundled
    dependency = client.get_latest_version(OPTIONS_FILE).schema.schema_str or ""
    assert "extend .google.protobuf.FieldOptions {" in dependency
    assert "(.refinery.test.opts" in (latest.schema.schema_str or "")
    # the second serializer finds everything registered (lookups of the descriptor forms)
    again = ProtobufSerializer(
        Refund, client, {"use.deprecated.format": False, "auto.register.schemas": False}
    )
    assert again(event, SerializationContext(unique_name, MessageField.VALUE))


def test_client_admin_calls(client: SchemaRegistryClient, unique_name: str) -> None:
    subject = f"{unique_name}/with-slash"
    schema = AVRO_SCHEMA.replace("MatchStarted", "AdminCalls")
    schema_id = client.register_schema(subject, Schema(schema, "AVRO"))
    assert json.loads(client.get_schema(schema_id).schema_str or "") == json.loads(schema)
    assert client.lookup_schema(subject, Schema(schema, "AVRO")).schema_id == schema_id
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1]
    assert client.get_subjects_by_schema_id(schema_id) == [subject]
    assert client.test_compatibility(subject, Schema(schema, "AVRO")) is True
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"
    assert client.delete_mode(subject) == "READONLY"
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1]
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_latest_version(subject)
    assert missing.value.http_status_code == 404 and missing.value.error_code == 40401

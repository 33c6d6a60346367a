"""Where Confluent's answers are the contract (issue 15): content negotiation, error codes and texts, the
listing endpoints, data-contract metadata and rules, canonical schema strings, bundled Protobuf imports
and Protobuf file descriptors. Against a real registry process (`registry_url`) on the real broker."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from schema_registry.formats.protobuf import parse_protobuf

pytestmark = pytest.mark.integration

VND = "application/vnd.schemaregistry.v1+json"


@pytest.fixture
def api(registry_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_url, timeout=60, headers={"Content-Type": VND}) as client:
        yield client


@pytest.fixture
def subject() -> str:
    return f"compat-{uuid.uuid4().hex[:10]}"


def avro(name: str, *fields: str, namespace: str | None = None) -> str:
    doc: dict[str, Any] = {"type": "record", "name": name}
    if namespace:
        doc["namespace"] = namespace
    doc["fields"] = [{"name": f, "type": "int", "default": 0} for f in fields]
    return json.dumps(doc, indent=1)


def register(api: httpx.Client, subject: str, schema: str, **extra: Any) -> httpx.Response:
    return api.post(f"/subjects/{subject}/versions", json={"schema": schema, **extra})


def error(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["message"]


# --- content negotiation ---------------------------------------------------------------------------


def test_accept_and_content_type_are_negotiated(registry_url: str) -> None:
    for accept in ("text/html", "text/*", "application/xml", "application/json;q=0"):
        refused = httpx.get(f"{registry_url}/subjects", headers={"Accept": accept})
        assert error(refused) == (406, 406, "HTTP 406 Not Acceptable"), accept
    for accept, answered in (
        ("*/*", VND),
        ("application/*", VND),
        ("application/json", "application/json"),
        ("text/html, application/json;q=0.9", "application/json"),
        ("application/vnd.schemaregistry+json", "application/vnd.schemaregistry+json"),
    ):
        answer = httpx.get(f"{registry_url}/config", headers={"Accept": accept})
        assert answer.status_code == 200 and answer.headers["content-type"] == answered, accept
    for content_type in ("text/html", "application/x-www-form-urlencoded", "text/plain"):
        refused = httpx.put(
            f"{registry_url}/config/any",
            content=b'{"compatibility": "NONE"}',
            headers={"Content-Type": content_type},
        )
        assert error(refused) == (415, 415, "HTTP 415 Unsupported Media Type"), content_type
    assert httpx.get(f"{registry_url}/metrics", headers={"Accept": "text/plain"}).status_code == 200


# --- error codes and texts -------------------------------------------------------------------------


def test_error_codes_and_messages_match_confluent(api: httpx.Client, subject: str) -> None:
    check = api.post(f"/compatibility/subjects/{subject}/versions/1", json={"schema": avro("A", "x")})
    assert error(check) == (404, 40402, "Version 1 not found.")
    assert api.post(
        f"/compatibility/subjects/{subject}/versions/latest", json={"schema": avro("A")}
    ).json() == {"is_compatible": True}
    for path in ("/schemas/ids/invalid", "/schemas/ids/99999999999", "/schemas/ids/1.5/versions"):
        assert error(api.get(path)) == (404, 404, "HTTP 404 Not Found"), path
    assert error(api.get("/schemas/ids/2147483647")) == (404, 40403, "Schema 2147483647 not found")
    assert error(register(api, subject, "")) == (422, 42201, "Empty schema")
    assert error(api.post(f"/subjects/{subject}/versions", json={})) == (422, 42201, "Empty schema")

    assert register(api, subject, avro("A", "x")).status_code == 200
    assert error(api.get(f"/subjects/{subject}/versions/7")) == (404, 40402, "Version 7 not found.")
    status, code, message = error(api.get(f"/subjects/{subject}/versions/0"))
    assert (status, code) == (422, 42202) and "between [1, 2^31-1]" in message
    assert api.delete(f"/subjects/{subject}/versions/1").status_code == 200
    assert error(api.delete(f"/subjects/{subject}/versions/1")) == (
        404,
        40406,
        f"Subject '{subject}' Version 1 was soft deleted.Set permanent=true to delete permanently",
    )

    referenced = subject + "-ref"
    register(api, referenced, avro("Shared", "x", namespace="n"))
    user = json.dumps({"type": "record", "name": "U", "fields": [{"name": "s", "type": "n.Shared"}]})
    refs = [{"name": "n.Shared", "subject": referenced, "version": 1}]
    assert register(api, subject + "-user", user, references=refs).status_code == 200
    assert error(api.delete(f"/subjects/{referenced}")) == (
        422,
        42206,
        "One or more references exist to the schema "
        f"{{magic=1,keytype=SCHEMA,subject={referenced},version=1}}.",
    )


# --- listing --------------------------------------------------------------------------------------


def test_list_schemas_and_subjects_by_prefix(api: httpx.Client, subject: str) -> None:
    first = register(api, f"{subject}-a", avro("A", "x")).json()["id"]
    register(api, f"{subject}-a", avro("A", "x", "y"))
    register(api, f"{subject}-b", avro("B", "x"))
    api.delete(f"/subjects/{subject}-b")

    listed = api.get("/schemas", params={"subjectPrefix": subject}).json()
    assert [(s["subject"], s["version"]) for s in listed] == [(f"{subject}-a", 1), (f"{subject}-a", 2)]
    assert listed[0]["id"] == first and json.loads(listed[0]["schema"])["name"] == "A"
    latest = api.get("/schemas", params={"subjectPrefix": subject, "latestOnly": "true"}).json()
    assert [(s["subject"], s["version"]) for s in latest] == [(f"{subject}-a", 2)]
    with_deleted = api.get("/schemas", params={"subjectPrefix": subject, "deleted": "true"}).json()
    assert [s["subject"] for s in with_deleted] == [f"{subject}-a", f"{subject}-a", f"{subject}-b"]
    assert len(api.get("/schemas", params={"subjectPrefix": subject, "offset": 1, "limit": 1}).json()) == 1
    assert len(api.get("/schemas").json()) >= 2

    assert api.get("/subjects", params={"subjectPrefix": subject}).json() == [f"{subject}-a"]
    assert api.get("/subjects", params={"subjectPrefix": subject, "deleted": "true"}).json() == [
        f"{subject}-a",
        f"{subject}-b",
    ]
    assert api.get("/subjects", params={"subjectPrefix": subject, "deletedOnly": "true"}).json() == [
        f"{subject}-b"
    ]
    assert f"{subject}-a" in api.get("/subjects", params={"subjectPrefix": ":*:"}).json()


# --- data contracts -------------------------------------------------------------------------------

METADATA = {"properties": {"owner": "team-a", "email": "a@example.com"}, "tags": {"x": ["PII"]}}
RULES = {
    "domainRules": [{"name": "checkX", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": "x > 0"}]
}


def test_metadata_and_rule_set_are_stored_returned_and_compared(api: httpx.Client, subject: str) -> None:
    schema = avro("Contract", "x")
    made = register(api, subject, schema, metadata=METADATA, ruleSet=RULES)
    assert made.status_code == 200, made.text
    first = made.json()["id"]
    stored = api.get(f"/subjects/{subject}/versions/1").json()
    assert stored["metadata"] == METADATA and stored["ruleSet"] == RULES
    by_id = api.get(f"/schemas/ids/{first}").json()
    assert by_id["metadata"] == METADATA and by_id["ruleSet"] == RULES

    # sent again without them: the latest version's are inherited, so it is the same version
    again = register(api, subject, schema).json()
    assert (again["id"], again["version"]) == (first, 1)
    assert api.post(f"/subjects/{subject}", json={"schema": schema}).json()["version"] == 1
    other = {"properties": {"owner": "team-b"}}
    assert error(api.post(f"/subjects/{subject}", json={"schema": schema, "metadata": other}))[1] == 40403

    # the same schema with other metadata is a new version with a new id (Confluent hashes both)
    changed = register(api, subject, schema, metadata=other).json()
    assert changed["version"] == 2 and changed["id"] != first
    assert api.get(f"/subjects/{subject}/versions/2").json()["ruleSet"] == RULES  # inherited
    # an empty schema with new metadata: a new version of the latest schema
    only_metadata = api.post(f"/subjects/{subject}/versions", json={"metadata": {"properties": {"v": "3"}}})
    assert only_metadata.status_code == 200 and only_metadata.json()["version"] == 3
    assert api.get(f"/subjects/{subject}/versions/3").json()["schema"] == stored["schema"]

    # another subject with the same schema and metadata shares the id; without them it does not
    assert register(api, subject + "-twin", schema, metadata=METADATA, ruleSet=RULES).json()["id"] == first
    assert register(api, subject + "-bare", schema).json()["id"] != first
    bad = register(api, subject + "-bad", schema, ruleSet={"domainRules": [{"kind": "CONDITION"}]})
    assert error(bad)[:2] == (422, 42210)


# --- canonical forms ------------------------------------------------------------------------------


def test_schemas_are_stored_in_confluent_canonical_form(api: httpx.Client, subject: str) -> None:
    spaced = json.dumps(
        {
            "namespace": "game",
            "name": "Kill",
            "type": "record",
            "fields": [
                {"type": {"type": "string", "doc": "gone"}, "name": "who", "order": "ascending"},
                {"name": "at", "type": {"logicalType": "timestamp-millis", "type": "long"}, "default": 0},
                {"name": "weapon", "type": {"type": "enum", "name": "Weapon", "symbols": ["AXE", "BOW"]}},
                {"name": "backup", "type": ["null", "game.Weapon"], "default": None},
            ],
        },
        indent=2,
    )
    made = register(api, subject, spaced).json()
    expected = (
        '{"type":"record","name":"Kill","namespace":"game","fields":[{"name":"who","type":"string"},'
        '{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},'
        '{"name":"weapon","type":{"type":"enum","name":"Weapon","symbols":["AXE","BOW"]}},'
        '{"name":"backup","type":["null","Weapon"],"default":null}]}'
    )
    assert api.get(f"/schemas/ids/{made['id']}").json()["schema"] == expected
    assert api.post(f"/subjects/{subject}", json={"schema": spaced}).json()["id"] == made["id"]

    json_schema = '{ "type": "object",\n "properties": { "b": {"type": "string"}, "a": {} } }'
    made_json = register(api, subject + "-json", json_schema, schemaType="JSON").json()
    stored_json = api.get(f"/schemas/ids/{made_json['id']}").json()["schema"]
    assert stored_json == '{"type":"object","properties":{"b":{"type":"string"},"a":{}}}'

    proto = 'syntax = "proto3"; package game.v1;\n// c\nmessage Kill { string who = 1; int64 at = 2; }'
    made_proto = register(api, subject + "-proto", proto, schemaType="PROTOBUF").json()
    assert api.get(f"/schemas/ids/{made_proto['id']}").json()["schema"] == (
        'syntax = "proto3";\npackage game.v1;\n\nmessage Kill {\n  string who = 1;\n  int64 at = 2;\n}\n'
    )
    options = (
        'syntax = "proto3";\noption java_package = "a";\noption go_package = "b";\nmessage M { int32 x = 1; }'
    )
    normalized = api.post(
        f"/subjects/{subject}-norm/versions?normalize=true",
        json={"schema": options, "schemaType": "PROTOBUF"},
    ).json()
    text = api.get(f"/schemas/ids/{normalized['id']}").json()["schema"]
    assert text.index("go_package") < text.index("java_package")


# --- Protobuf -------------------------------------------------------------------------------------


def test_protobuf_bundled_imports_need_no_references(api: httpx.Client, subject: str) -> None:
    schema = """syntax = "proto3";
package shop.v1;
import "google/type/money.proto";
import "google/type/date.proto";
import "google/protobuf/struct.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Order {
  option (confluent.message_meta) = { doc: "an order", tags: ["PII"] };
  google.type.Money total = 1;
  google.type.Date day = 2;
  google.protobuf.Struct extra = 3;
  confluent.type.Decimal tax = 4 [(confluent.field_meta).params = { key: "precision", value: "8" }];
}
"""
    made = register(api, subject, schema, schemaType="PROTOBUF")
    assert made.status_code == 200, made.text
    stored = api.get(f"/schemas/ids/{made.json()['id']}").json()
    assert "references" not in stored and "(.confluent.message_meta)" in stored["schema"]
    assert (
        api.post(f"/subjects/{subject}", json={"schema": schema, "schemaType": "PROTOBUF"}).json()["id"]
        == (made.json()["id"])
    )


def test_protobuf_errors_are_protoc_lines_without_log_noise(api: httpx.Client, subject: str) -> None:
    status, code, message = error(register(api, subject, "this is not proto", schemaType="PROTOBUF"))
    assert (status, code) == (422, 42201)
    assert "schema.proto:1:1" in message
    assert "WARNING" not in message and "absl" not in message and "/tmp" not in message


def test_protobuf_undefined_custom_option_is_accepted_as_confluent_does(
    api: httpx.Client, subject: str
) -> None:
    schema = (
        'syntax = "proto3";\noption (my_option) = "x";\nmessage M {\n  string a = 1 [(my_field) = 3];\n}\n'
    )
    made = register(api, subject, schema, schemaType="PROTOBUF")
    assert made.status_code == 200, made.text
    assert api.get(f"/schemas/ids/{made.json()['id']}").json()["schema"] == schema  # kept as sent


OPTIONS_PROTO = """syntax = "proto3";
package acme.meta;
import "google/protobuf/descriptor.proto";
message Sensitivity { string level = 1; repeated string owners = 2; }
extend google.protobuf.FieldOptions { Sensitivity sensitivity = 50101; }
extend google.protobuf.MessageOptions { bool audited = 50102; }
service Lookup { rpc Find (Sensitivity) returns (Sensitivity); }
message Tagged {
  option (audited) = true;
  string email = 1 [(sensitivity) = { level: "high" owners: ["a", "b"] }, deprecated = true];
}
"""


def descriptor_b64(text: str, name: str) -> str:
    """`text` compiled, as confluent-kafka's ProtobufSerializer sends a dependency: a base64
    FileDescriptorProto (here of a file with extend blocks, custom options and a service)."""
    proto = parse_protobuf(text).file_proto
    proto.name = name
    return base64.b64encode(proto.SerializeToString()).decode()


def test_protobuf_file_descriptor_with_extensions_and_custom_options(api: httpx.Client, subject: str) -> None:
    encoded = descriptor_b64(OPTIONS_PROTO, "acme/meta.proto")
    made = register(api, subject, encoded, schemaType="PROTOBUF")
    assert made.status_code == 200, made.text
    text = api.get(f"/schemas/ids/{made.json()['id']}").json()["schema"]
    assert "extend .google.protobuf.FieldOptions {" in text and "(.acme.meta.sensitivity) = {" in text
    assert parse_protobuf(text) == parse_protobuf(OPTIONS_PROTO)  # the stored text is the same schema
    looked_up = api.post(f"/subjects/{subject}", json={"schema": encoded, "schemaType": "PROTOBUF"})
    assert looked_up.json()["id"] == made.json()["id"]
    assert register(api, subject, OPTIONS_PROTO, schemaType="PROTOBUF").json()["id"] == made.json()["id"]

    broken = base64.b64encode(b"\x0a\x05x.pro\x1a\x0bnot/here.pb").decode()  # imports a file nobody has
    status, code, message = error(register(api, subject + "-broken", broken, schemaType="PROTOBUF"))
    assert (status, code) == (422, 42201) and "not/here.pb" in message and "WARNING" not in message


# --- GUIDs ----------------------------------------------------------------------------------------


def test_schema_guids(api: httpx.Client, subject: str) -> None:
    made = register(api, subject, avro("Guid", "x")).json()
    assert register(api, subject + "-2", avro("Guid", "x")).json()["id"] == made["id"]
    stored = api.get(f"/schemas/ids/{made['id']}").json()["schema"]
    guid = str(uuid.UUID(bytes=hashlib.md5(stored.encode()).digest()))  # Confluent: the MD5 as a UUID
    assert api.get(f"/schemas/guids/{guid}").json() == {"schema": stored}
    assert api.get(f"/schemas/guids/{guid}/ids").json() == [{"context": ".", "id": made["id"]}]
    missing = str(uuid.uuid4())
    assert error(api.get(f"/schemas/guids/{missing}")) == (404, 40403, f"Schema {missing} not found")
    assert api.get(f"/schemas/guids/{missing}/ids").json() == []
    with_metadata = register(api, subject + "-3", avro("Guid", "x"), metadata=METADATA).json()
    other = api.get(f"/schemas/ids/{with_metadata['id']}").json()
    assert other["metadata"] == METADATA and with_metadata["id"] != made["id"]

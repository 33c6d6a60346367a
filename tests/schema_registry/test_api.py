"""The Confluent REST API of a real registry process (`registry_url`) on the real broker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

VND = "application/vnd.schemaregistry.v1+json"


def avro(name: str, *fields: tuple[str, Any]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [
                {"name": n, "type": t} | ({"default": None} if isinstance(t, list) else {}) for n, t in fields
            ],
        }
    )


@pytest.fixture
def api(registry_url: str) -> httpx.Client:
    with httpx.Client(base_url=registry_url, timeout=30, headers={"Content-Type": VND}) as client:
        yield client


@pytest.fixture
def subject() -> str:
    return f"sub-{uuid.uuid4().hex[:10]}"


def register(api: httpx.Client, subject: str, schema: str, **extra: Any) -> httpx.Response:
    return api.post(f"/subjects/{subject}/versions", json={"schema": schema, **extra})


def error_code(response: httpx.Response) -> int:
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["message"], body
    return int(body["error_code"])


def test_register_read_and_reregister(api: httpx.Client, subject: str) -> None:
    v1 = avro("Player", ("id", "string"))
    first = register(api, subject, v1, metadata={"properties": {}}, ruleSet=None)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == VND
    schema_id = first.json()["id"]
    assert register(api, subject, v1).json()["id"] == schema_id  # same schema, same id, no new version

    assert subject in api.get("/subjects").json()
    assert api.get(f"/subjects/{subject}/versions").json() == [1]
    latest = api.get(f"/subjects/{subject}/versions/latest").json()
    compact = json.dumps(json.loads(v1), separators=(",", ":"))  # stored as Confluent does: Avro's string
    assert latest == {"subject": subject, "version": 1, "id": schema_id, "schema": compact}
    assert api.get(f"/subjects/{subject}/versions/1/schema").json() == json.loads(v1)
    assert api.get(f"/schemas/ids/{schema_id}").json() == {"schema": compact}
    assert json.loads(api.get(f"/schemas/ids/{schema_id}/schema").text) == json.loads(v1)
    assert api.get(f"/schemas/ids/{schema_id}/subjects").json() == [subject]
    assert api.get(f"/schemas/ids/{schema_id}/versions").json() == [{"subject": subject, "version": 1}]
    assert sorted(api.get("/schemas/types").json()) == ["AVRO", "JSON", "PROTOBUF"]

    found = api.post(f"/subjects/{subject}", json={"schema": v1})
    assert found.json()["id"] == schema_id and found.json()["version"] == 1

    # the same schema under another subject keeps its global id
    other = register(api, subject + "-other", v1).json()["id"]
    assert other == schema_id
    v2 = register(api, subject, avro("Player", ("id", "string"), ("level", ["null", "int"])))
    assert v2.status_code == 200 and v2.json()["id"] > schema_id
    assert api.get(f"/subjects/{subject}/versions").json() == [1, 2]


def test_not_found_and_invalid_codes(api: httpx.Client, subject: str) -> None:
    assert error_code(api.get(f"/subjects/{subject}/versions")) == 40401
    register(api, subject, avro("A", ("x", "int")))
    assert error_code(api.get(f"/subjects/{subject}/versions/7")) == 40402
    assert error_code(api.get("/schemas/ids/987654321")) == 40403
    assert error_code(api.post(f"/subjects/{subject}", json={"schema": avro("B", ("y", "int"))})) == 40403
    assert (
        error_code(api.post(f"/subjects/{subject}-none", json={"schema": avro("B", ("y", "int"))})) == 40401
    )
    for version in ("abc", "%C2%B9"):  # "¹" passes str.isdigit() but is no version (a fuzzer find)
        bad_version = api.get(f"/subjects/{subject}/versions/{version}")
        assert bad_version.status_code == 422 and error_code(bad_version) == 42202
    invalid = register(api, subject, "{not json")
    assert invalid.status_code == 422 and error_code(invalid) == 42201
    unknown_type = register(api, subject, "{}", schemaType="XML")
    assert error_code(unknown_type) == 42201 and "schemaType" in unknown_type.json()["message"]
    dangling = register(
        api, subject, avro("C", ("d", "D")), references=[{"name": "D", "subject": "nope", "version": 1}]
    )
    assert error_code(dangling) == 42201 and "nope" in dangling.json()["message"]


def test_malformed_bodies_get_4xx_saying_what_to_fix(api: httpx.Client, subject: str) -> None:
    for body, expected in ((b"not json", "not valid JSON"), (b'{"schemx": "{}"}', "schema"), (b"[1]", "")):
        response = api.post(f"/subjects/{subject}/versions", content=body)
        assert 400 <= response.status_code < 500, response.text
        assert expected in response.json()["message"]
    wrong_refs = register(api, subject, avro("A", ("x", "int")), references="nope")
    assert wrong_refs.status_code == 422 and "references" in wrong_refs.json()["message"]
    assert api.get("/no/such/path").status_code == 404


def test_client_tolerance(api: httpx.Client, registry_url: str) -> None:
    subject = f"team/{uuid.uuid4().hex[:8]}/value"
    encoded = subject.replace("/", "%2F")
    # no Accept header, no content type at all, Python-style booleans, unknown query params
    raw = httpx.post(
        f"{registry_url}/subjects/{encoded}/versions?normalize=False&foo=bar",
        content=json.dumps({"schema": avro("S", ("x", "int"))}),
    )
    assert raw.status_code == 200, raw.text
    assert subject in api.get("/subjects?deleted=True").json()
    assert api.get(f"/subjects/{encoded}/versions/1").json()["subject"] == subject
    assert api.delete(f"/subjects/{encoded}").json() == [1]
    octets = httpx.post(
        f"{registry_url}/subjects/{encoded}/versions",
        content=json.dumps({"schema": avro("S", ("x", "int"))}),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert octets.status_code == 200 and octets.json()["version"] == 2


def test_soft_and_hard_deletes(api: httpx.Client, subject: str) -> None:
    register(api, subject, avro("A", ("x", "int")))
    register(api, subject, avro("A", ("x", "int"), ("y", ["null", "int"])))
    assert error_code(api.delete(f"/subjects/{subject}/versions/1?permanent=true")) == 40407
    assert api.delete(f"/subjects/{subject}/versions/1").json() == 1
    assert error_code(api.delete(f"/subjects/{subject}/versions/1")) == 40406
    assert api.get(f"/subjects/{subject}/versions").json() == [2]
    assert api.get(f"/subjects/{subject}/versions?deleted=true").json() == [1, 2]
    assert api.get(f"/subjects/{subject}/versions/1?deleted=true").json()["version"] == 1
    assert api.delete(f"/subjects/{subject}/versions/1?permanent=true").json() == 1

    assert error_code(api.delete(f"/subjects/{subject}?permanent=true")) == 40405
    assert api.delete(f"/subjects/{subject}").json() == [2]
    assert error_code(api.delete(f"/subjects/{subject}")) == 40404
    assert subject not in api.get("/subjects").json()
    assert subject in api.get("/subjects?deleted=true").json()
    assert error_code(api.get(f"/subjects/{subject}/versions")) == 40401
    assert api.delete(f"/subjects/{subject}?permanent=true").json() == [2]
    assert subject not in api.get("/subjects?deleted=true").json()
    assert error_code(api.delete(f"/subjects/{subject}")) == 40401


def test_references_and_referencedby(api: httpx.Client, subject: str) -> None:
    address = json.dumps(
        {
            "type": "record",
            "name": "Address",
            "namespace": "x",
            "fields": [{"name": "city", "type": "string"}],
        }
    )
    ref_subject = subject + "-address"
    assert register(api, ref_subject, address).status_code == 200
    user = json.dumps(
        {
            "type": "record",
            "name": "User",
            "namespace": "x",
            "fields": [{"name": "home", "type": "x.Address"}],
        }
    )
    refs = [{"name": "x.Address", "subject": ref_subject, "version": 1}]
    created = register(api, subject, user, references=refs)
    assert created.status_code == 200, created.text
    user_id = created.json()["id"]
    assert api.get(f"/subjects/{ref_subject}/versions/1/referencedby").json() == [user_id]
    assert api.get(f"/schemas/ids/{user_id}").json()["references"] == refs
    assert api.post(f"/subjects/{subject}", json={"schema": user, "references": refs}).json()["id"] == user_id
    still_used = api.delete(f"/subjects/{ref_subject}/versions/1")
    assert still_used.status_code == 422 and error_code(still_used) == 42206
    assert error_code(api.delete(f"/subjects/{ref_subject}")) == 42206
    api.delete(f"/subjects/{subject}")
    assert api.delete(f"/subjects/{ref_subject}").json() == [1]


def test_compatibility_checks_and_409(api: httpx.Client, subject: str) -> None:
    register(api, subject, avro("A", ("x", "int")))
    breaking = avro("A", ("x", "int"), ("y", "string"))  # new field without default: not BACKWARD
    fine = avro("A", ("x", "int"), ("y", ["null", "string"]))
    for path in (
        f"/compatibility/subjects/{subject}/versions/latest",
        f"/compatibility/subjects/{subject}/versions",
    ):
        verdict = api.post(f"{path}?verbose=true", json={"schema": breaking}).json()
        assert verdict["is_compatible"] is False and verdict["messages"], verdict
        assert api.post(path, json={"schema": fine}).json() == {"is_compatible": True}
    assert api.post(f"/compatibility/subjects/{subject}/versions/1", json={"schema": fine}).json()[
        "is_compatible"
    ]
    assert (
        error_code(api.post(f"/compatibility/subjects/{subject}/versions/9", json={"schema": fine})) == 40402
    )
    rejected = register(api, subject, breaking)
    assert rejected.status_code == 409 and error_code(rejected) == 409
    assert "y" in rejected.json()["message"]
    assert api.put(f"/config/{subject}", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
    assert register(api, subject, breaking).status_code == 200


def test_config(api: httpx.Client, subject: str) -> None:
    assert api.get("/config").json()["compatibilityLevel"] in ("BACKWARD", "FULL", "NONE", "FORWARD")
    assert error_code(api.get(f"/config/{subject}")) == 40408
    assert api.get(f"/config/{subject}?defaultToGlobal=true").json() == api.get("/config").json()
    assert api.put(f"/config/{subject}", json={"compatibility": "FULL_TRANSITIVE"}).status_code == 200
    assert api.get(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    bad = api.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"})
    assert bad.status_code == 422 and error_code(bad) == 42203
    assert api.delete(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert error_code(api.get(f"/config/{subject}")) == 40408


def test_modes(api: httpx.Client, subject: str) -> None:
    assert api.get("/mode").json() == {"mode": "READWRITE"}
    register(api, subject, avro("A", ("x", "int")))
    assert error_code(api.get(f"/mode/{subject}")) == 40409
    assert api.get(f"/mode/{subject}?defaultToGlobal=true").json() == {"mode": "READWRITE"}
    assert error_code(api.put(f"/mode/{subject}", json={"mode": "SOMETIMES"})) == 42204
    assert api.put(f"/mode/{subject}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    refused = register(api, subject, avro("A", ("x", "int"), ("y", ["null", "int"])))
    assert refused.status_code == 422 and error_code(refused) == 42205
    assert error_code(api.delete(f"/subjects/{subject}")) == 42205
    assert api.delete(f"/mode/{subject}").json() == {"mode": "READONLY"}
    # explicit ids need IMPORT mode; IMPORT on a subject that has schemas needs force
    explicit = register(api, subject, avro("B", ("z", "int")), id=90001, version=5)
    assert error_code(explicit) == 42205
    assert error_code(api.put(f"/mode/{subject}", json={"mode": "IMPORT"})) == 42205

    imported = subject + "-import"
    assert api.put(f"/mode/{imported}", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    schema = avro("Imported", ("z", "int"))
    done = register(api, imported, schema, id=90001, version=5)
    assert done.status_code == 200 and done.json()["id"] == 90001, done.text
    assert api.get(f"/subjects/{imported}/versions/5").json()["id"] == 90001
    clash = register(api, imported, avro("Other", ("q", "int")), id=90001, version=6)
    assert error_code(clash) == 42205
    api.delete(f"/mode/{imported}")
    assert register(api, subject + "-after", avro("Fresh", ("w", "int"))).json()["id"] > 90001


def test_normalize(api: httpx.Client, subject: str) -> None:
    spaced = '{ "type": "record", "name": "N", "fields": [ {"name": "x", "type": "int"} ] }'
    created = api.post(f"/subjects/{subject}/versions?normalize=true", json={"schema": spaced})
    assert created.status_code == 200
    stored = api.get(f"/subjects/{subject}/versions/1").json()["schema"]
    assert json.loads(stored) == json.loads(spaced) and stored != spaced
    assert (
        api.post(f"/subjects/{subject}?normalize=true", json={"schema": spaced}).json()["id"]
        == created.json()["id"]
    )


def test_metrics_and_docs(api: httpx.Client, subject: str) -> None:
    register(api, subject, avro("M", ("x", "int")))
    register(api, subject, avro("M", ("x", "int"), ("y", "string")))  # incompatible under BACKWARD
    text = api.get("/metrics").text
    assert (
        'registry_http_requests_total{method="POST",route="/subjects/{subject}/versions",status="200"}'
        in text
    )
    assert "registry_http_request_seconds_bucket" in text
    assert 'registry_registrations_total{outcome="new"}' in text
    assert "registry_compatibility_failures_total" in text
    assert api.get("/docs").status_code == 200
    assert "/subjects/{subject}/versions" in api.get("/openapi.json").json()["paths"]


def test_protobuf_and_json_schema_with_references(api: httpx.Client, subject: str) -> None:
    common = 'syntax = "proto3";\npackage game;\nmessage Player { string id = 1; }\n'
    assert (
        api.post(
            f"/subjects/{subject}-common/versions", json={"schema": common, "schemaType": "PROTOBUF"}
        ).status_code
        == 200
    )
    event = (
        'syntax = "proto3";\npackage game;\nimport "common.proto";\n'
        'import "google/protobuf/timestamp.proto";\n'
        "message Kill { Player killer = 1; google.protobuf.Timestamp at = 2; }\n"
    )
    refs = [{"name": "common.proto", "subject": f"{subject}-common", "version": 1}]
    created = register(api, subject, event, schemaType="PROTOBUF", references=refs)
    assert created.status_code == 200, created.text
    stored = api.get(f"/schemas/ids/{created.json()['id']}").json()
    assert stored["schemaType"] == "PROTOBUF" and stored["references"] == refs
    assert error_code(register(api, subject + "-noref", event, schemaType="PROTOBUF")) == 42201

    json_schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}})
    made = register(api, subject + "-json", json_schema, schemaType="JSON")
    assert (
        made.status_code == 200
        and api.get(f"/schemas/ids/{made.json()['id']}").json()["schemaType"] == "JSON"
    )

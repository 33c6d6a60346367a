"""Schema contexts as Confluent has them (its `QualifiedSubject`, `ContextFilter`, `ContextsResource` and
`RestApiContextTest`): qualified subjects `:.ctx:s` with ids of their own per context, `GET /contexts`,
look-ups by context, listing across contexts, the `/contexts/{ctx}/...` URL prefix, references read in
the referrer's context, and the CONTEXT records in `_schemas`. Unit tests first, then the real registry.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schema_registry.api.context_paths import rewrite_path, rewrite_query
from schema_registry.contexts import (
    ContextNameError,
    context_prefix,
    normalize,
    prefix_matcher,
    reference_target,
    split,
)
from schema_registry.guids import schema_guid
from schema_registry.records import KeyType, RecordKey, SchemaValue, context_value
from schema_registry.store import SchemaStore

VND = "application/vnd.schemaregistry.v1+json"


# --- names ------------------------------------------------------------------------------------------


def test_subject_names_split_as_confluent_reads_them() -> None:
    assert (split(":.ctx:s").context, split(":.ctx:s").name) == (".ctx", "s")
    assert (split("s").context, split("s").name) == (".", "s")
    assert (split(":.ctx").context, split(":.ctx").name) == (".ctx", "")  # the context itself
    assert (split(":*:s").context, split(":*:s").name) == ("*", "s")
    assert (split(":.a:b:c").context, split(":.a:b:c").name) == (".a", "b:c")
    assert normalize(":.:s") == "s" and normalize(":.ctx:s") == ":.ctx:s" and normalize(":.ctx") == ":.ctx:"
    assert context_prefix("ctx") == context_prefix(".ctx") == context_prefix(":.ctx:") == ":.ctx:"
    assert context_prefix(".") == context_prefix(":.:") == ""
    with pytest.raises(ContextNameError, match="Context name 'a:b' cannot contain a colon"):
        context_prefix("a:b")


def test_references_are_read_in_the_referrers_context() -> None:
    assert reference_target(":.ctx:outer", "inner") == ":.ctx:inner"
    # Confluent: the default context named explicitly counts as no context
    assert reference_target(":.ctx:outer", ":.:inner") == ":.ctx:inner"
    assert reference_target(":.ctx:outer", ":.other:inner") == ":.other:inner"
    assert reference_target("outer", "inner") == "inner"
    assert reference_target("outer", ":.other:inner") == ":.other:inner"


def test_subject_prefixes_select_as_confluents_key_ranges() -> None:
    subjects = ["a1", "b1", ":.x:a1", ":.x:b1", ":.xy:a1", ":.y:a2"]
    contexts = [".x", ".xy", ".y"]

    def selected(prefix: str) -> list[str]:
        match = prefix_matcher(prefix, contexts)
        return [s for s in subjects if match(s)]

    assert selected(":*:") == subjects
    assert selected("") == ["a1", "b1"]  # the default context only
    assert selected("a") == ["a1"]
    assert selected(":.x:") == [":.x:a1", ":.x:b1"]
    assert selected(":.x:a") == [":.x:a1"]
    assert selected(":.x") == [":.x:a1", ":.x:b1", ":.xy:a1"]  # contexts whose name starts with .x
    assert selected(":*:a") == ["a1", ":.x:a1", ":.xy:a1", ":.y:a2"]


def test_context_url_prefix_is_rewritten_as_confluents_filter_does() -> None:
    assert rewrite_path("/contexts/.c/subjects/s/versions") == ("/subjects/:.c:s/versions", ":.c:")
    assert rewrite_path("/contexts/c/subjects/:.o:s/versions/1")[0] == "/subjects/:.o:s/versions/1"
    assert rewrite_path("/contexts/.c/compatibility/subjects/s/versions/latest")[0] == (
        "/compatibility/subjects/:.c:s/versions/latest"
    )
    assert rewrite_path("/contexts/.c/config")[0] == "/config/:.c:"
    assert rewrite_path("/contexts/.c/mode/s")[0] == "/mode/:.c:s"
    assert rewrite_path("/contexts/:.:/config")[0] == "/config"
    assert rewrite_path("/contexts/.c")[0] == "/contexts/:.c:"
    assert rewrite_path("/contexts/:.:/subjects/s")[0] == "/subjects/s"
    assert rewrite_query("/schemas/ids/3", b"", ":.c:") == b"subject=%3A.c%3A"
    assert rewrite_query("/schemas/ids/3", b"subject=s", ":.c:") == b"subject=%3A.c%3As"
    assert rewrite_query("/subjects", b"deleted=true", ":.c:") == b"deleted=true&subjectPrefix=%3A.c%3A"
    assert rewrite_query("/subjects", b"subjectPrefix=%3A.o%3A", ":.c:") == b"subjectPrefix=%3A.o%3A"
    with pytest.raises(ContextNameError):
        rewrite_path("/contexts/a:b/subjects")


# --- the topic records ----------------------------------------------------------------------------


def test_context_records_are_confluents() -> None:
    key = RecordKey(KeyType.CONTEXT, context=".ctx").encode()
    assert key == b'{"keytype":"CONTEXT","tenant":"default","context":".ctx","magic":0}'
    assert json.loads(context_value(".ctx")) == {"tenant": "default", "context": ".ctx"}
    store = SchemaStore()
    store.apply(key, context_value(".ctx"))
    store.apply(RecordKey(KeyType.CONTEXT, context=".b").encode(), context_value(".b"))
    other_tenant = b'{"keytype":"CONTEXT","tenant":"t1","context":".z","magic":0}'
    store.apply(other_tenant, b'{"tenant":"t1","context":".z"}')
    assert store.contexts() == [".b", ".ctx"]
    store.apply(key, None)  # DELETE /contexts/.ctx writes a tombstone
    assert store.contexts() == [".b"]


def test_ids_are_per_context_in_the_store() -> None:
    store = SchemaStore()
    for subject, schema_id in (("s", 7), (":.c:s", 1), (":.c:t", 2)):
        value = SchemaValue(subject, 1, schema_id, '"string"').encode()
        store.apply(RecordKey(KeyType.SCHEMA, subject, 1).encode(), value)
    assert (store.max_id, store.max_id_in(".c"), store.max_id_in(".d")) == (7, 2, 0)
    assert [v.subject for v in store.by_id(1, ".c")] == [":.c:s"]
    assert store.by_id(1) == [] and store.by_id(7, ".c") == []


# --- the real registry ----------------------------------------------------------------------------

integration = pytest.mark.integration


def compact(doc: Any) -> str:
    """JSON as Confluent stores Avro: no whitespace."""
    return json.dumps(doc, separators=(",", ":"))


def avro_record(name: str, field: str = "a") -> str:
    return compact({"type": "record", "name": name, "fields": [{"name": field, "type": "string"}]})


@pytest.fixture
def api(registry_url: str) -> httpx.Client:
    with httpx.Client(base_url=registry_url, timeout=30, headers={"Content-Type": VND}) as client:
        yield client


def tag() -> str:
    return uuid.uuid4().hex[:8]


def register(api: httpx.Client, subject: str, schema: str, **extra: Any) -> int:
    answer = api.post(f"/subjects/{subject}/versions", json={"schema": schema, **extra})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


@integration
def test_qualified_subjects_have_ids_of_their_own(api: httpx.Client) -> None:
    t = tag()
    a, b, plain = f":.a{t}:topic{t}", f":.b{t}:topic{t}", f"plain{t}"
    grown = {"name": "b", "type": ["null", "int"], "default": None}
    first = json.loads(avro_record(f"R_{t}"))
    schemas = [
        compact(first),
        compact({**first, "fields": [*first["fields"], grown]}),
        avro_record(f"Other_{t}"),
    ]
    assert [register(api, a, s) for s in schemas[:2]] == [1, 2]  # a fresh context counts from 1
    assert register(api, a, schemas[0]) == 1  # re-registering: the same id
    assert register(api, b, schemas[2]) == 1  # another context, another id 1
    default_id = register(api, plain, schemas[0])
    assert api.get(f"/schemas/ids/{default_id}").json() == {"schema": schemas[0]}  # no subject: "."
    contexts = api.get("/contexts").json()
    assert contexts[0] == "." and contexts == [".", *sorted(contexts[1:])]
    assert {f".a{t}", f".b{t}"} <= set(contexts)
    assert api.get("/contexts", params={"contextPrefix": f".a{t}"}).json() == [f".a{t}"]
    assert api.get("/contexts", params={"limit": 1}).json() == ["."]

    # ids are looked up in a context with ?subject=:.ctx:
    assert api.get("/schemas/ids/1", params={"subject": f":.b{t}:"}).json() == {
        "subject": b,
        "version": 1,
        "schema": schemas[2],
    }
    assert api.get("/schemas/ids/2", params={"subject": f":.a{t}:"}).json()["schema"] == schemas[1]
    assert api.get("/schemas/ids/2/schema", params={"subject": a}).json() == json.loads(schemas[1])
    missing = api.get("/schemas/ids/3", params={"subject": f":.a{t}:"})
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert api.get("/schemas/ids/1/versions", params={"subject": a}).json() == [{"subject": a, "version": 1}]
    assert api.get("/schemas/ids/1/subjects", params={"subject": f":.b{t}:"}).json() == [b]
    # an unqualified subject the default context lacks is found in a context (Confluent's fallback)
    assert api.get(f"/schemas/ids/1?subject=topic{t}").json()["subject"] == a

    # listing: every context by default, one context by prefix, the default context with ""
    everything = api.get("/subjects").json()
    assert {a, b, plain} <= set(everything) and everything == sorted(everything)
    assert api.get("/subjects", params={"subjectPrefix": f":.a{t}:"}).json() == [a]
    default_only = api.get("/subjects", params={"subjectPrefix": ""}).json()
    assert plain in default_only and a not in default_only
    assert api.get("/subjects", params={"subjectPrefix": f":*:topic{t}"}).json() == [a, b]
    assert len(api.get("/schemas", params={"subjectPrefix": f":.a{t}:"}).json()) == 2
    assert len(api.get("/schemas", params={"subjectPrefix": f":*:topic{t}"}).json()) == 3
    assert not any(s["subject"].startswith(":") for s in api.get("/schemas").json())  # default: "." only

    # an unqualified name the default context lacks is read from the first context holding it
    version = api.get(f"/subjects/topic{t}/versions/1").json()
    assert (version["subject"], version["id"]) == (a, 1)
    found = api.post(f"/subjects/topic{t}", json={"schema": schemas[2]}).json()
    assert (found["subject"], found["id"]) == (b, 1)
    assert api.get(f"/subjects/topic{t}/versions").status_code == 404  # not for the version list
    assert api.get(f"/subjects/:.:{plain}/versions").json() == [1]  # ":.:" is the default context


@integration
def test_guid_endpoints_answer_per_context(api: httpx.Client) -> None:
    t = tag()
    schema = avro_record(f"G_{t}")
    default_id = register(api, f"g{t}", schema)
    assert register(api, f":.g{t}:s", schema) == 1
    stored = api.get(f"/subjects/g{t}/versions/1").json()["schema"]
    guid = schema_guid(SchemaValue(f"g{t}", 1, default_id, stored))
    assert api.get(f"/schemas/guids/{guid}").json() == {"schema": stored}
    assert api.get(f"/schemas/guids/{guid}/ids").json() == [
        {"context": ".", "id": default_id},
        {"context": f".g{t}", "id": 1},
    ]
    missing = api.get(f"/schemas/guids/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)


@integration
def test_references_resolve_in_the_referrers_context(api: httpx.Client) -> None:
    t = tag()
    ctx = f":.r{t}:"
    inner = json.dumps({"type": "record", "name": f"Inner{t}", "fields": [{"name": "x", "type": "int"}]})
    outer = json.dumps(
        {"type": "record", "name": f"Outer{t}", "fields": [{"name": "i", "type": f"Inner{t}"}]}
    )
    assert register(api, f"{ctx}inner", inner) == 1
    refs = [{"name": f"Inner{t}", "subject": "inner", "version": 1}]  # unqualified: the context's "inner"
    outer_id = register(api, f"{ctx}outer", outer, references=refs)
    assert outer_id == 2
    stored = api.get(f"/subjects/{ctx}outer/versions/1").json()
    assert stored["references"] == refs  # kept as sent
    qualified_refs = [{**refs[0], "subject": f"{ctx}inner"}]
    as_qualified = {"referenceFormat": "qualified"}
    assert api.get(f"/subjects/{ctx}outer/versions/1", params=as_qualified).json()["references"] == (
        qualified_refs
    )
    by_id = api.get(f"/schemas/ids/{outer_id}", params={"subject": ctx, **as_qualified}).json()
    assert by_id["references"] == qualified_refs
    assert api.get(f"/schemas/ids/{outer_id}", params={"subject": ctx}).json()["references"] == refs
    assert api.get(f"/subjects/{ctx}inner/versions/1/referencedby").json() == [outer_id]
    refused = api.delete(f"/subjects/{ctx}inner/versions/1")
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42206)
    # the same unqualified reference from the default context names the default context's "inner"
    dangling = api.post(f"/subjects/outer{t}/versions", json={"schema": outer, "references": refs})
    assert (dangling.status_code, dangling.json()["error_code"]) == (422, 42201)
    # a qualified reference reaches into the context from anywhere
    qualified = [{"name": f"Inner{t}", "subject": f"{ctx}inner", "version": 1}]
    assert register(api, f"outer{t}", outer, references=qualified) > 2


@integration
def test_context_url_prefix_config_and_deleting_a_context(api: httpx.Client, registry_url: str) -> None:
    t = tag()
    name = f".p{t}"
    with httpx.Client(
        base_url=f"{registry_url}/contexts/{name}", timeout=30, headers={"Content-Type": VND}
    ) as ctx:
        assert register(ctx, "s", avro_record(f"P_{t}")) == 1
        assert ctx.get("/subjects").json() == [f":{name}:s"]
        assert ctx.get("/subjects/", params={"subjectPrefix": ":*:"}).status_code == 200
        assert ctx.get("/subjects/s/versions").json() == [1]
        assert ctx.get("/schemas/ids/1").json()["subject"] == f":{name}:s"
        assert register(ctx, "a%2Fb", avro_record(f"P_{t}")) == 1  # a '/' in the subject, sent as %2F
        assert api.get(f"/subjects/:{name}:a%2Fb/versions").json() == [1]
        assert ctx.put("/config", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
        assert api.get(f"/config/:{name}:").json() == {"compatibilityLevel": "NONE"}
        # the context's level applies to its subjects: an incompatible schema registers
        assert register(ctx, "s", json.dumps({"type": "string"})) == 2
        assert ctx.delete("/config").status_code == 200
    assert api.put(f"/config/:{name}:s", json={"compatibility": "FULL"}).status_code == 200
    assert api.get(f"/config/:{name}:s").json() == {"compatibilityLevel": "FULL"}

    bad = api.get("/contexts/a:b/subjects")
    assert (bad.status_code, bad.json()) == (
        400,
        {"error_code": 400, "message": "Context name 'a:b' cannot contain a colon"},
    )
    full = api.delete(f"/contexts/{name}")
    assert (full.status_code, full.json()) == (
        422,
        {"error_code": 42211, "message": f"The specified context ':{name}:' is not empty."},
    )
    assert api.delete(f"/subjects/:{name}:s").status_code == 200
    assert api.delete(f"/contexts/{name}").status_code == 422  # soft-deleted subjects still count
    assert api.delete(f"/subjects/:{name}:s", params={"permanent": "true"}).status_code == 200
    assert api.delete(f"/subjects/:{name}:a%2Fb").status_code == 200
    assert api.delete(f"/subjects/:{name}:a%2Fb", params={"permanent": "true"}).status_code == 200
    assert api.delete(f"/contexts/{name}").status_code == 204
    assert name not in api.get("/contexts").json()
    assert api.delete(f"/contexts/.never{t}").status_code == 204


@integration
def test_confluent_client_and_serializers_with_contexts(registry_url: str) -> None:
    """confluent-kafka's client: `get_contexts`, qualified subjects, `subject_prefix`, look-up by
    context; its serializers pointed at `/contexts/.ctx` register and read in that context."""
    t = tag()
    client = SchemaRegistryClient({"url": registry_url})
    subject = f":.k{t}:events-value"
    first = client.register_schema(subject, Schema(avro_record(f"K_{t}"), "AVRO"))
    assert first == 1
    assert f".k{t}" in client.get_contexts()
    assert client.get_subjects(subject_prefix=f":.k{t}:") == [subject]
    assert json.loads(client.get_schema(1, subject_name=f":.k{t}:").schema_str)["name"] == f"K_{t}"
    assert client.get_latest_version(subject).schema_id == 1

    in_context = SchemaRegistryClient({"url": f"{registry_url}/contexts/.c{t}"})
    schema = json.dumps(
        {"type": "record", "name": f"Hit{t}", "fields": [{"name": "player", "type": "string"}]}
    )
    serializer = AvroSerializer(in_context, schema)
    where = SerializationContext(f"hits{t}", MessageField.VALUE)
    data = serializer({"player": "p1"}, where)
    assert data[1:5] == (1).to_bytes(4, "big")  # id 1 of the new context
    assert client.get_subjects(subject_prefix=f":.c{t}:") == [f":.c{t}:hits{t}-value"]
    reader = SchemaRegistryClient({"url": f"{registry_url}/contexts/.c{t}"})
    assert AvroDeserializer(reader)(data, where) == {"player": "p1"}


@integration
def test_settings_per_context_and_reserved_subjects(api: httpx.Client) -> None:
    t = tag()
    ctx = f":.m{t}:"
    assert api.put(f"/mode/{ctx}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    refused = api.post(f"/subjects/{ctx}s/versions", json={"schema": avro_record(f"M_{t}")})
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
    assert register(api, f":.n{t}:s", avro_record(f"M_{t}")) == 1  # other contexts are not affected
    assert api.delete(f"/mode/{ctx}").status_code == 200
    assert register(api, f"{ctx}s", avro_record(f"M_{t}")) == 1

    for reserved in (":.__GLOBAL:s", "__GLOBAL", f"{ctx}__EMPTY"):
        answer = api.post(f"/subjects/{reserved}/versions", json={"schema": avro_record(f"M_{t}")})
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42208), reserved

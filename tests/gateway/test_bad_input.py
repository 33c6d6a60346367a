"""The issue's bad-input list against a real gateway on the real broker: each gets the right status and a
body naming the problem, nothing of a refused request is written, and the server keeps serving. Kafka
down mid-request is in `test_kafka_down.py`."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import threading
import time
from typing import Any

import pytest
import uuid_utils
import zstandard

from common.envelope import decode_envelope
from common.headers import headers_to_metadata
from gateway.keys import read_keys
from proto.gateway_pb2 import Event as ProtoEvent
from proto.gateway_pb2 import EventBatch
from tests.gateway.harness import GATEWAY, GatewayProcess, unique
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

SOURCE = "telemetry"
ACCEPTED: list[str] = []  # every id the gateway reported accepted in this module


@pytest.fixture(scope="module")
def env() -> str:
    return unique("gwenv")


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess, env: str, title: str) -> str:
    return gateway.make_key(env, title, (SOURCE,))


def heartbeat(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "category": "session_heartbeat",
        "version": 1,
        "id": str(uuid_utils.uuid7()),
        "payload": {"session_id": "s-1", "player_id": "p-1", "sent_at_ms": 1, "latency_ms": 12.5},
        "attributes": {"platform": "pc"},
    }
    event.update(overrides)
    return event


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


def accepted(response: Any) -> list[str]:
    doc = response.json()
    ids = [e["id"] for e in doc["events"] if e["status"] == "accepted"]
    ACCEPTED.extend(ids)
    return ids


def assert_error(response: Any, status: int, code: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    assert doc["error_code"] == code, doc
    for word in words:
        assert word in doc["message"], doc
    return doc


def test_a_good_batch_in_every_format_is_written_with_the_client_ids(
    gateway: GatewayProcess, key: str, env: str, title: str
) -> None:
    events = [heartbeat(time="2026-11-30T10:00:00.123Z"), heartbeat(key="k-2"), heartbeat(id=None)]
    response = gateway.post(key, body(*events))
    assert response.status_code == 200, response.text
    ids = accepted(response)
    assert ids[:2] == [events[0]["id"], events[1]["id"]] and len(ids) == 3

    def ndjson() -> bytes:
        return b"\n".join(json.dumps(e).encode() for e in (heartbeat(), heartbeat())) + b"\n"

    for payload, content_type, encoding in (
        (ndjson(), "application/x-ndjson", None),
        (gzip.compress(body(heartbeat())), "application/json", "gzip"),
        (zstandard.ZstdCompressor().compress(ndjson()), "application/x-ndjson", "zstd"),
    ):
        headers = {"Content-Encoding": encoding} if encoding else None
        response = gateway.post(key, payload, content_type, headers=headers)
        assert response.status_code == 200, (content_type, encoding, response.text)
        accepted(response)
    proto = EventBatch(events=[
        ProtoEvent(category="session_heartbeat", version=1, id=str(uuid_utils.uuid7()), client_time_ms=5,
                   json=json.dumps(heartbeat()["payload"]), attributes={"platform": "ps"}),
        ProtoEvent(category="crash_report", version=1, raw=b"\x02\x00opaque"),
    ])  # fmt: skip
    response = gateway.post(key, proto.SerializeToString(), "application/x-protobuf")
    assert response.status_code == 200, response.text
    accepted(response)

    topic = f"{env}.{SOURCE}.ingest.all-v1"
    records = consume_all(gateway.bootstrap, [topic], expected=len(ACCEPTED), timeout=30)
    by_id = {}
    for msg in records:
        envelope = decode_envelope(msg.value())
        assert headers_to_metadata(msg.headers()) == envelope.metadata  # headers mirror the envelope
        by_id[envelope.metadata.message_id] = (envelope, msg.key())
    assert set(by_id) == set(ACCEPTED)
    first, record_key = by_id[events[0]["id"]]
    md = first.metadata
    assert (md.env, md.title, md.source, md.category, md.version) == (
        env,
        title,
        SOURCE,
        "session_heartbeat",
        1,
    )
    assert md.attributes == {"platform": "pc", "client_time": "2026-11-30T10:00:00.123Z"}
    assert md.producer.startswith("gateway:") and record_key == b"p-1"  # the SDK rule: player_id
    assert by_id[events[1]["id"]][1] == b"k-2"
    assert json.loads(first.payload)["latency_ms"] == 12.5


def test_malformed_bodies_are_400_naming_the_problem(gateway: GatewayProcess, key: str) -> None:
    assert_error(gateway.post(key, b'[{"category": "x",'), 400, 40001, "not valid JSON")
    assert_error(gateway.post(key, b'{"category": "x"}'), 400, 40001, "JSON array", "object")
    assert_error(gateway.post(key, b"[]"), 400, 40001, "no events")
    ndjson = json.dumps(heartbeat()).encode() + b"\n{oops\n"
    assert_error(gateway.post(key, ndjson, "application/x-ndjson"), 400, 40001, "line 2")
    assert_error(gateway.post(key, b"\xff\x01garbage", "application/x-protobuf"), 400, 40001, "EventBatch")
    headers = {"Content-Encoding": "gzip"}
    assert_error(gateway.post(key, b"not gzip at all", headers=headers), 400, 40001, "gzip")
    assert_error(gateway.post(key, body(heartbeat()), "text/plain"), 415, 41501, "text/plain")
    headers = {"Content-Encoding": "br"}
    assert_error(gateway.post(key, body(heartbeat()), headers=headers), 415, 41502, "'br'")


def rejected(response: Any, status: int = 422) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    return [e for e in response.json()["events"] if e["status"] == "rejected"]


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        (heartbeat(version="1"), "version", "integer"),
        (heartbeat(category=7), "category", "non-empty string"),
        (heartbeat(payload=[1]), "payload", "JSON object"),
        (heartbeat(id="not-a-uuid"), "id", "UUID"),
        (heartbeat(colour="red"), "colour", "unknown field"),
        (heartbeat(attributes={"platform": 1}), "attributes.platform", "strings"),
        (heartbeat(time="yesterday"), "time", "RFC 3339"),
        (heartbeat(payload={"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": "slow"}),
         "payload.latency_ms", "not of type 'number'"),
        (heartbeat(payload={"session_id": "s", "player_id": "p", "sent_at_ms": 1}), "payload.latency_ms",
         "required"),
        ({"category": "player_killed", "version": 2, "payload": {"match_id": "m", "weapon": 3}},
         "payload.killer_id", "Avro"),
        ({"category": "purchase", "version": 1, "payload": {"price_cents": "lots"}}, "payload", "Protobuf"),
        (heartbeat(category="no_such_category"), "category", "no schema registered"),
        (heartbeat(version=9), "version", "no version 9"),
    ],
)  # fmt: skip
def test_invalid_events_are_rejected_naming_the_field(
    gateway: GatewayProcess, key: str, event: dict[str, Any], field: str, words: str
) -> None:
    (only,) = rejected(gateway.post(key, body(event)))
    assert only["field"] == field, only
    assert words in only["error"], only
    assert response_ok_after(gateway, key)


def response_ok_after(gateway: GatewayProcess, key: str) -> bool:
    """The server keeps serving: a good event right after is accepted."""
    response = gateway.post(key, body(heartbeat()))
    return response.status_code == 200 and bool(accepted(response))


def test_a_mixed_batch_accepts_the_good_and_names_the_bad(gateway: GatewayProcess, key: str) -> None:
    response = gateway.post(key, body(heartbeat(), heartbeat(version=0), heartbeat()))
    assert response.status_code == 207, response.text
    doc = response.json()
    assert (doc["accepted"], doc["rejected"], doc["failed"]) == (2, 1, 0)
    assert [e["status"] for e in doc["events"]] == ["accepted", "rejected", "accepted"]
    assert doc["events"][1]["field"] == "version" and doc["events"][1]["index"] == 1
    accepted(response)


def test_size_limits_are_413_naming_the_limit(gateway: GatewayProcess, key: str) -> None:
    big = heartbeat(payload={**heartbeat()["payload"], "labels": {"pad": "x" * 250_000}})
    assert_error(gateway.post(key, body(big)), 413, 41301, "200,000 bytes", "MAX_BODY_BYTES")
    assert_error(gateway.post(key, body(*[heartbeat()] * 101)), 413, 41302, "100 events", "MAX_EVENTS")
    ndjson = b"\n".join([json.dumps(heartbeat()).encode()] * 101)
    assert_error(gateway.post(key, ndjson, "application/x-ndjson"), 413, 41302, "MAX_EVENTS")


def test_compression_bombs_stop_at_the_decompressed_cap(gateway: GatewayProcess, key: str) -> None:
    bomb = b"[" + b" " * 50_000_000 + b"]"  # 50 MB of JSON whitespace: ~50 KB gzipped
    packed = gzip.compress(bomb, compresslevel=9)
    assert len(packed) < 200_000
    started = time.monotonic()
    response = gateway.post(key, packed, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, 41303, "decompresses to more than 1,000,000 bytes")
    assert time.monotonic() - started < 5  # capped, not inflated
    packed = zstandard.ZstdCompressor(level=19).compress(bomb)
    response = gateway.post(key, packed, headers={"Content-Encoding": "zstd"})
    assert_error(response, 413, 41303, "MAX_DECOMPRESSED_BYTES")
    assert response_ok_after(gateway, key)


def test_keys_missing_wrong_or_revoked_are_401(gateway: GatewayProcess, env: str, title: str) -> None:
    doc = assert_error(gateway.post(None, body(heartbeat())), 401, 40101, "no API key")
    assert "Bearer" in doc["message"]
    assert_error(gateway.post("rgw_0123456789ab_" + "A" * 43, body(heartbeat())), 401, 40101, "unknown")
    assert_error(gateway.post("not even a key", body(heartbeat())), 401, 40101, "unknown")
    doomed = gateway.make_key(env, title, (SOURCE,))
    real_id = doomed.split("_")[1]
    forged = doomed[:-4] + ("AAAA" if not doomed.endswith("AAAA") else "BBBB")
    assert_error(gateway.post(forged, body(heartbeat())), 401, 40101, "unknown")  # right id, wrong secret
    assert response_ok_after(gateway, doomed)
    cli = subprocess.run(
        [str(GATEWAY), "keys", "revoke", real_id], env=gateway.env, capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0, cli.stderr
    listed = subprocess.run([str(GATEWAY), "keys", "list"], env=gateway.env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert real_id in listed.stdout and "revoked" in listed.stdout and doomed not in listed.stdout
    response = wait_for(lambda: (r := gateway.post(doomed, body(heartbeat()))).status_code == 401 and r,
                        timeout=15, what="the revocation to reach the gateway")  # fmt: skip
    assert_error(response, 401, 40101, f"API key {real_id} was revoked")
    assert doomed not in gateway.log_text()  # never logged
    ring = read_keys({"bootstrap.servers": gateway.bootstrap}, gateway.keys_topic)
    stored = ring.get(real_id)
    assert stored is not None and stored.hash.startswith("sha256:") and doomed not in stored.hash


@pytest.mark.parametrize(
    ("override", "field"),
    [({"env": "prod"}, "env"), ({"title": "1234"}, "title"), ({"source": "backend"}, "source")],
)
def test_out_of_scope_events_are_403_naming_the_field(
    gateway: GatewayProcess, key: str, override: dict[str, str], field: str
) -> None:
    response = gateway.post(key, body(heartbeat(), heartbeat(**override)))
    doc = assert_error(response, 403, 40301, "outside this API key's scope", f"{field} ")
    assert (doc["field"], doc["index"]) == (field, 1)
    assert response_ok_after(gateway, key)


def test_a_category_outside_the_key_is_403(gateway: GatewayProcess, env: str, title: str) -> None:
    narrow = gateway.make_key(env, title, (SOURCE,), categories=("match_started",))
    doc = assert_error(gateway.post(narrow, body(heartbeat())), 403, 40301, "session_heartbeat")
    assert doc["field"] == "category"


def test_rate_limit_is_429_with_retry_after(gateway: GatewayProcess, env: str, title: str) -> None:
    slow = gateway.make_key(env, title, (SOURCE,), rate=1)  # bucket: one full batch (100), 1 event/s
    rejected(gateway.post(slow, body(*[heartbeat(version=0)] * 100)))  # rejected events count too
    response = gateway.post(slow, body(heartbeat()))
    doc = assert_error(response, 429, 42901, "rate limit of 1 events/s")
    assert int(response.headers["Retry-After"]) >= 1
    assert doc["message"].endswith(f"retry in {response.headers['Retry-After']}s")


def test_a_full_send_queue_is_503_and_writes_nothing(gateway: GatewayProcess, key: str) -> None:
    response = gateway.post(key, body(*[heartbeat() for _ in range(90)]))  # over max_inflight_events=80
    assert_error(response, 503, 50301, "send queue is full")
    assert response.headers["Retry-After"] == "1"


def test_a_slow_body_times_out_with_408_while_others_are_served(gateway: GatewayProcess, key: str) -> None:
    outcome: dict[str, Any] = {}

    def slow_loris() -> None:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key}\r\nContent-Length: 5000\r\n\r\n".encode()
                + b'[{"category": '
            )
            started = time.monotonic()
            try:
                while time.monotonic() - started < 8:
                    sock.sendall(b" ")  # a byte now and then: never the whole body
                    time.sleep(0.3)
            except OSError:
                pass  # the server closed the connection after answering
            outcome["answer"] = sock.recv(65536)
            outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow_loris)
    thread.start()
    time.sleep(0.5)
    assert response_ok_after(gateway, key)  # served while the slow body trickles in
    thread.join(20)
    answer = outcome["answer"].decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "40801" in answer and "BODY_TIMEOUT_S" in answer
    assert outcome["seconds"] < 6
    assert response_ok_after(gateway, key)


def test_docs_and_probes_are_served_without_a_cdn(gateway: GatewayProcess) -> None:
    import httpx

    page = httpx.get(gateway.url + "/docs", timeout=10)
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert httpx.get(gateway.url + "/docs/assets/swagger-ui-bundle.js", timeout=10).status_code == 200
    spec = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    assert "/v1/events" in spec["paths"] and "application/x-protobuf" in json.dumps(spec)
    assert httpx.get(gateway.url + "/health", timeout=10).json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/ready", timeout=10).json()["ready"] is True
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    for series in ("refinery_gateway_requests_total", "refinery_gateway_events_total",
                   "refinery_gateway_request_seconds_bucket", "refinery_gateway_batch_events_bucket",
                   "refinery_producer_records_sent_total"):  # fmt: skip
        assert series in metrics


def test_nothing_refused_was_written(gateway: GatewayProcess, env: str) -> None:
    """Last in the module: the ingest topic holds exactly the events reported accepted, once each."""
    topic = f"{env}.{SOURCE}.ingest.all-v1"
    records = consume_all(gateway.bootstrap, [topic], timeout=30, idle=3)
    ids = [decode_envelope(m.value()).metadata.message_id for m in records]
    assert sorted(ids) == sorted(ACCEPTED) and len(set(ids)) == len(ids)
    assert gateway.alive()

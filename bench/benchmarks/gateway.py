"""Benchmark 8: the HTTP ingest gateway (`refinery-gateway`). Accepted events/s when the reference
workload's records (1 KB payloads) are POSTed as JSON batches of 100 by keep-alive clients, vs the
producer SDK's own send rate on the same records in the same run (goal >= 0.5x and >= 20k events/s);
then the request latency at half that load, vs a constant-202 ASGI app (FastAPI on uvicorn, same
process count) taking the same requests at the same rate (goal p99 < 50 ms). Rows per number of gateway
server processes (REFINERY_GATEWAY_WORKERS)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import defaultdict
from typing import Any

from google.protobuf import json_format

from bench import procs
from bench.context import BenchContext
from bench.gateway_load import Post, PostResult, at_rate, throughput
from bench.http_load import wait_http
from bench.report import BenchResult, Row
from bench.workload import generate, sdk_producer
from common.config import RegistrySettings
from gateway.keys import KeyScope, ensure_keys_topic, new_key, publish_key
from producers.schemas import SchemaCatalog
from producers.workload import WorkloadMessage, register_workload

GOAL_RATIO = 0.5
GOAL_RATE = 20_000
GOAL_P99_MS = 50.0
BATCH = 100
SOURCES = ("telemetry", "backend")


def sdk_rate(bootstrap: str, messages: list[WorkloadMessage], envs: dict[str, str], count: int) -> float:
    """events/s of the SDK sending `count` of these messages (cycled) until every one is acknowledged."""
    producer = sdk_producer(bootstrap)
    try:
        for m in messages[:200]:  # schemas resolved, topics created, connections up before the clock
            producer.send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes,
                          env=envs[m.env], source=m.source)  # fmt: skip
        producer.flush()
        began = time.monotonic()
        for n in range(count):
            m = messages[n % len(messages)]
            producer.send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes,
                          env=envs[m.env], source=m.source)  # fmt: skip
        producer.flush()
        return count / (time.monotonic() - began)
    finally:
        producer.close()


def event_json(m: WorkloadMessage) -> dict[str, Any]:
    event: dict[str, Any] = {"category": m.category, "version": m.version, "source": m.source, "key": m.key,
                             "attributes": m.attributes, "id": str(uuid.uuid4())}  # fmt: skip
    if isinstance(m.payload, bytes):
        event["payload_base64"] = base64.b64encode(m.payload).decode()
    elif isinstance(m.payload, dict):
        event["payload"] = m.payload
    else:
        event["payload"] = json_format.MessageToDict(m.payload, preserving_proto_field_name=True)
    return event


def build_posts(messages: list[WorkloadMessage], tokens: dict[tuple[str, str], str]) -> list[Post]:
    """Batches of 100 events of one key (env, title) each, as JSON bodies with their headers. Event ids
    repeat when the list is cycled (as a client's retries would); every copy is written."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        by_key[(m.env, m.title)].append(event_json(m))
    posts = []
    for scope, events in by_key.items():
        headers = {"Authorization": f"Bearer {tokens[scope]}", "Content-Type": "application/json"}
        for start in range(0, len(events) - BATCH + 1, BATCH):
            posts.append((json.dumps(events[start : start + BATCH]).encode(), headers, BATCH))
    return posts


def run(ctx: BenchContext) -> BenchResult:
    duration = ctx.pick(3.0, 20.0)
    pool = ctx.pick(6_000, 30_000)
    concurrency = 8
    worker_counts = (1, 2)
    result = BenchResult(
        name="gateway",
        title=__doc__.split("\n")[0],
        params={
            "batch_events": BATCH,
            "payload_bytes": 1024,
            "body": "JSON array",
            "concurrency": concurrency,
            "duration_s": duration,
            "distinct_events": pool,
            "client": "aiohttp keep-alive, same host",
            "latency_load": "open loop at half the measured events/s",
        },
        baseline={
            "throughput": "producer SDK send() of the same records (same run), until all acknowledged",
            "latency": "FastAPI on uvicorn answering a constant 202 to the same requests at the same "
            "rate, same number of processes",
        },
    )
    envs = {"prod": ctx.name("prod"), "dev": ctx.name("dev")}
    keys_topic = "_" + ctx.name("gateway-keys")
    reg_port = procs.free_port()
    registry = procs.start(
        "registry",
        ["-m", "schema_registry", "--port", str(reg_port), "--topic", "_" + ctx.name("schemas"),
         "--bootstrap-servers", ctx.bootstrap],
        {"REFINERY_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    reg_url = f"http://127.0.0.1:{reg_port}"
    topics = [f"{env}.{s}.ingest.all-v1" for env in envs.values() for s in SOURCES]
    try:
        wait_http(f"{reg_url}/subjects", timeout=90)
        catalog = SchemaCatalog.from_settings(RegistrySettings(url=reg_url))
        register_workload(catalog)
        catalog.close()
        messages = generate(pool, 1024)
        ctx.create_topics(topics, 12)
        ctx.log("gateway: SDK send rate on the same records")
        sdk = sdk_rate(ctx.bootstrap, messages, envs, pool)
        conf = ctx.client_config
        ensure_keys_topic(conf, keys_topic)
        tokens = {}
        for env in ("prod", "dev"):
            for title in {m.title for m in messages}:
                token, key = new_key(KeyScope(envs[env], title, SOURCES), name="bench")
                publish_key(conf, keys_topic, key)
                tokens[(env, title)] = token
        posts = build_posts(messages, tokens)
        result.params["requests_cycled"] = len(posts)
        for workers in worker_counts:
            measure(ctx, result, workers, posts, sdk, reg_url, keys_topic, duration, concurrency)
    finally:
        registry.stop()
        ctx.delete_topics(
            [*topics, keys_topic, "_" + ctx.name("schemas"), "_" + ctx.name("schemas") + "_coordination"]
        )
    return result


def measure(
    ctx: BenchContext,
    result: BenchResult,
    workers: int,
    posts: list[Post],
    sdk: float,
    reg_url: str,
    keys_topic: str,
    duration: float,
    concurrency: int,
) -> None:
    port, base_port = procs.free_port(), procs.free_port()
    env = {"REFINERY_KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap, "REFINERY_REGISTRY_URL": reg_url,
           "REFINERY_GATEWAY_KEYS_TOPIC": keys_topic, "REFINERY_GATEWAY_PORT": str(port),
           "REFINERY_GATEWAY_WORKERS": str(workers), "REFINERY_GATEWAY_RATE_LIMIT_EVENTS_PER_S": "1e9",
           "REFINERY_LOG_LEVEL": "WARNING"}  # fmt: skip
    gateway = procs.start(f"gateway-{workers}", ["-m", "gateway", "serve"], env)
    baseline = procs.start(
        f"gateway-baseline-{workers}", ["-m", "bench.gateway_baseline", str(base_port), str(workers)]
    )
    label = f"{workers} process{'es' if workers > 1 else ''}"
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", timeout=90)
        wait_http(f"http://127.0.0.1:{base_port}/health", timeout=60)
        ctx.log(f"gateway: throughput, {label}")
        url = f"http://127.0.0.1:{port}/v1/events"
        full = throughput(url, posts, concurrency=concurrency, duration_s=duration)
        note = _statuses(full)
        result.add(Row(
            case=f"accepted events/s, batches of {BATCH} x 1 KB, {label}",
            value=full.event_rate, unit="events/s",
            baseline=sdk, goal=f">= {GOAL_RATIO}x and >= {GOAL_RATE:,} events/s",
            goal_met=full.event_rate >= GOAL_RATIO * sdk and full.event_rate >= GOAL_RATE, note=note,
        ))  # fmt: skip
        half = full.request_rate / 2
        ctx.log(f"gateway: latency at {half:.0f} req/s, {label}")
        base = at_rate(f"http://127.0.0.1:{base_port}/v1/events", posts, rate=half, duration_s=duration)
        loaded = at_rate(url, posts, rate=half, duration_s=duration)
        for point in ("p50", "p99"):
            p99 = point == "p99"
            result.add(Row(
                case=f"request latency {point} at half load ({half * BATCH:,.0f} events/s), {label}",
                value=loaded.latencies_ms.get(point), unit="ms", baseline=base.latencies_ms.get(point),
                higher_is_better=False, goal=f"< {GOAL_P99_MS:g} ms" if p99 else "",
                goal_met=(loaded.latencies_ms.get(point, 1e9) < GOAL_P99_MS) if p99 else None,
                note=_statuses(loaded) if p99 else "",
            ))  # fmt: skip
        result.extra[label] = {
            "throughput": _summary(full), "half_load": _summary(loaded), "baseline_half_load": _summary(base),
        }  # fmt: skip
    finally:
        gateway.stop()
        baseline.stop()


def _statuses(result: PostResult) -> str:
    others = {s: n for s, n in result.statuses.items() if s != 200}
    return f"non-200 answers: {others}" if others else ""


def _summary(result: PostResult) -> dict[str, Any]:
    return {
        "requests": result.requests,
        "events_per_s": round(result.event_rate),
        "statuses": result.statuses,
        "latency_ms": result.latencies_ms,
        "errors": result.errors,
    }

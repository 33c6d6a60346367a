"""Benchmark 8: the HTTP ingest gateway (`refinery-gateway`). Accepted events/s when the reference
workload's records (1 KB payloads) are POSTed as JSON batches of 100 by keep-alive clients, vs the
producer SDK's own send rate on the same records in the same run (goal >= 0.5x and >= 20k events/s);
then the request latency at half that load, vs a constant-202 ASGI app (FastAPI on uvicorn, same
process count) taking the same requests at the same rate (goal p99 < 50 ms). Rows per number of gateway
server processes (REFINERY_GATEWAY_WORKERS).

The machine is shared (2 cores, the broker on it, other people's tests), so next to each rate the rows
give the CPU time per accepted event of the gateway's processes (all of them, from /proc, over the
measured span; steadier than the rate) against the SDK's own CPU per event in the same run (the bench
process's CPU while only the SDK runs), and the 1-minute load average when the phase began."""

from __future__ import annotations

import base64
import functools
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from bench import procs, profiling
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


def sdk_rate(
    bootstrap: str, messages: list[WorkloadMessage], envs: dict[str, str], count: int
) -> tuple[float, float]:
    """(events/s, CPU us per event) of the SDK sending `count` of these messages (cycled) until every
    one is acknowledged; the CPU is this process's (all threads: the SDK's poll thread, librdkafka's)."""
    producer = sdk_producer(bootstrap)
    try:
        for m in messages[:200]:  # schemas resolved, topics created, connections up before the clock
            producer.send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes,
                          env=envs[m.env], source=m.source)  # fmt: skip
        producer.flush()
        began, cpu = time.monotonic(), time.process_time()
        for n in range(count):
            m = messages[n % len(messages)]
            producer.send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes,
                          env=envs[m.env], source=m.source)  # fmt: skip
        producer.flush()
        return count / (time.monotonic() - began), (time.process_time() - cpu) / count * 1e6
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
            "cpu": "gateway: user+system CPU of every gateway process over the measured span / accepted "
            "events; SDK: the bench process's CPU while the SDK sends",
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
        load = os.getloadavg()[0]
        sdk, sdk_cpu = sdk_rate(ctx.bootstrap, messages, envs, pool)
        result.extra["sdk"] = {"events_per_s": round(sdk), "cpu_us_per_event": round(sdk_cpu, 1),
                               "load_1m": round(load, 2)}  # fmt: skip
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
            measure(ctx, result, workers, posts, (sdk, sdk_cpu), reg_url, keys_topic, duration, concurrency)
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
    sdk_figures: tuple[float, float],
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
    sdk, sdk_cpu = sdk_figures
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", timeout=90)
        wait_http(f"http://127.0.0.1:{base_port}/health", timeout=60)
        ctx.log(f"gateway: throughput, {label}")
        url = f"http://127.0.0.1:{port}/v1/events"
        throughput(url, posts, concurrency=concurrency, duration_s=1.0, warm_up=False)
        full, cpu_us, load, busy = _measured(
            ctx, f"gateway-{workers}", gateway.pid, duration,
            lambda: throughput(url, posts, concurrency=concurrency, duration_s=duration, warm_up=False),
            spy=True,
        )  # fmt: skip
        note = _joined(_statuses(full), f"load {load:.2f}, CPUs {busy:.0f}% busy")
        result.add(Row(
            case=f"accepted events/s, batches of {BATCH} x 1 KB, {label}",
            value=full.event_rate, unit="events/s",
            baseline=sdk, goal=f">= {GOAL_RATIO}x and >= {GOAL_RATE:,} events/s",
            goal_met=full.event_rate >= GOAL_RATIO * sdk and full.event_rate >= GOAL_RATE, note=note,
        ))  # fmt: skip
        result.add(Row(
            case=f"gateway CPU per accepted event (all its processes) vs the SDK's, {label}",
            value=cpu_us, unit="us/event", baseline=sdk_cpu, higher_is_better=False,
        ))  # fmt: skip
        half = full.request_rate / 2
        # the goal's load is half of its 20k events/s; half of what this configuration reached is shown too
        loads = {
            "half load": (half, "half_load"),
            "half the goal's load": (GOAL_RATE / 2 / BATCH, "half_goal_load"),
        }
        extra: dict[str, Any] = {
            "throughput": {**_summary(full), "cpu_us_per_event": round(cpu_us, 1), "load_1m": round(load, 2),
                           "cpus_busy_pct": round(busy)},
        }  # fmt: skip
        for name, (rate, key) in loads.items():
            ctx.log(f"gateway: latency at {rate:.0f} req/s, {label}")
            base_load = os.getloadavg()[0]
            base = at_rate(f"http://127.0.0.1:{base_port}/v1/events", posts, rate=rate, duration_s=duration)
            at_rate(url, posts, rate=rate, duration_s=1.0, warm_up=False)
            phase = functools.partial(at_rate, url, posts, rate=rate, duration_s=duration, warm_up=False)
            loaded, rate_cpu_us, rate_load, rate_busy = _measured(
                ctx, f"gateway-{workers}-{name.replace(' ', '-')}", gateway.pid, duration, phase, spy=False
            )
            for point in ("p50", "p99"):
                p99 = point == "p99"
                result.add(Row(
                    case=f"request latency {point} at {name} ({rate * BATCH:,.0f} events/s), {label}",
                    value=loaded.latencies_ms.get(point), unit="ms", baseline=base.latencies_ms.get(point),
                    higher_is_better=False, goal=f"< {GOAL_P99_MS:g} ms" if p99 else "",
                    goal_met=(loaded.latencies_ms.get(point, 1e9) < GOAL_P99_MS) if p99 else None,
                    note=_joined(_statuses(loaded), f"load {rate_load:.2f} (baseline {base_load:.2f}), CPUs "
                                 f"{rate_busy:.0f}% busy") if p99 else "",
                ))  # fmt: skip
            extra[key] = {**_summary(loaded), "cpu_us_per_event": round(rate_cpu_us, 1),
                          "load_1m": round(rate_load, 2), "cpus_busy_pct": round(rate_busy)}  # fmt: skip
            extra[f"baseline_{key}"] = {**_summary(base), "load_1m": round(base_load, 2)}
        result.extra[label] = extra
    finally:
        gateway.stop()
        baseline.stop()


def _measured(
    ctx: BenchContext, name: str, pid: int, duration: float, run: Callable[[], PostResult], *, spy: bool
) -> tuple[PostResult, float, float, float]:
    """(result, CPU us per accepted event of `pid` and its worker processes, 1-minute load average at
    the start, % of all CPUs busy) of one load phase; with `spy` and --profile, py-spy samples the
    gateway meanwhile (with several processes, one of its workers)."""
    sampler = None
    if spy and ctx.profile:
        tree = procs.tree_pids(pid)
        sampler = profiling.spy(tree[1] if len(tree) > 1 else pid, duration, ctx.profile_path(name))
    load, machine, cpu = os.getloadavg()[0], procs.MachineCpu(), procs.tree_cpu_seconds(pid)
    result = run()
    cpu = procs.tree_cpu_seconds(pid) - cpu
    busy = machine.busy_pct()
    profiling.finish(sampler, ctx.profile_path(name))
    return result, cpu / max(result.events, 1) * 1e6, load, busy


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


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

"""Consumers under test, each in its own process: the Refinery worker (`refinery worker`) and the raw
pass-through baseline (`python -m bench.passthrough_main`). Both start from offsets the harness
pre-commits for their group, so they read exactly the records pre-filled for them; progress is the
group's committed offsets (the worker commits after every acknowledged batch)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench import procs
from bench.context import BenchContext
from bench.kafka_io import IngestRange, PassThroughProfile
from bench.procs import Child, SinkProgress
from common.config import REPO_ROOT, WorkerSettings
from common.headers import headers_dict
from producers.producer import OutgoingRecord
from refinery.control.route_store import RouteStoreError, publish_route_set
from refinery.routing.router import Destination, compile_router
from refinery.routing.rules import load_route_file
from refinery.routing.rules.model import RouteSet

WORKLOAD_ROUTES = REPO_ROOT / "refinery" / "routes" / "workload.yaml"
# The workload's ingest topics only (never other tests' ingest topics on a shared broker).
BENCH_INGEST_PATTERN = r"^(prod|dev)\.(telemetry|backend)\.ingest\.all-v1$"


def workload_destinations(records: Iterable[OutgoingRecord]) -> list[list[Destination]]:
    """Where the workload's route set sends each record (decided by the worker's own router)."""
    router = compile_router(load_route_file(WORKLOAD_ROUTES))
    return [router.route(headers_dict(r.headers)) for r in records]


def start_worker(
    ctx: BenchContext,
    label: str,
    ingest: IngestRange,
    *,
    routes: RouteSet | None = None,
    exactly_once: bool = False,
    settings: dict[str, Any] | None = None,
) -> tuple[Child, str]:
    """Publish `routes` (default: the workload's 8) to a fresh routes topic, pre-commit the ingest start
    offsets for a fresh group and start `refinery worker`; return (process, group id)."""
    group = ctx.name(label)
    routes_topic = f"_{group}-routes"
    route_set = routes or load_route_file(WORKLOAD_ROUTES)
    try:
        publish_route_set(ctx.client_config, routes_topic, route_set)
    except RouteStoreError as exc:  # a loaded shared broker sometimes needs longer for a fresh topic
        ctx.log(f"{label}: publishing routes failed once ({exc}); retrying")
        publish_route_set(ctx.client_config, routes_topic, route_set, timeout_s=90)
    ctx.commit_offsets(group, ingest.start)
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    env = {
        "REFINERY_KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap,
        "REFINERY_WORKER_GROUP_ID": group,
        "REFINERY_WORKER_ROUTES_TOPIC": routes_topic,
        "REFINERY_WORKER_DLQ_TOPIC": f"_{group}-dlq",
        "REFINERY_WORKER_INGEST_PATTERN": BENCH_INGEST_PATTERN,
        "REFINERY_WORKER_WEB_PORT": str(procs.free_port()),
        "REFINERY_WORKER_EXACTLY_ONCE": "true" if exactly_once else "false",
        "REFINERY_WORKER_DATA_DIR": str(data_dir),
        "REFINERY_LOG_LEVEL": "WARNING",
        **{f"REFINERY_WORKER_{k.upper()}": str(v) for k, v in (settings or {}).items()},
    }
    script = Path(sys.executable).parent / "refinery"
    child = procs.start(label, ["-u", str(script), "worker", "--loglevel", "warn"], env)
    child.scratch.append(data_dir)
    return child, group


def worker_topics(group: str) -> list[str]:
    """Internal topics a benchmark worker created (for clean-up)."""
    return [f"_{group}-routes", f"_{group}-dlq", f"_{group}-dedup", f"{group}-control-__assignor-__leader"]


def start_passthrough(
    ctx: BenchContext,
    label: str,
    ingest: IngestRange,
    sink: str,
    profile: str | PassThroughProfile = "throughput",
) -> tuple[Child, str]:
    """The raw consume->produce baseline as a process (settings: a name in `bench.kafka_io.PROFILES`
    or an explicit profile)."""
    group = ctx.name(label)
    ctx.commit_offsets(group, ingest.start)
    spec = profile if isinstance(profile, str) else json.dumps(profile.to_doc())
    args = ["-m", "bench.passthrough_main", ctx.bootstrap, group, sink, json.dumps(ingest.topics), spec]
    return procs.start(label, args), group


def committed_total(reader: Consumer, partitions: list[TopicPartition]) -> int:
    return sum(max(tp.offset, 0) for tp in reader.committed(partitions, timeout=10))


def watch_committed(
    ctx: BenchContext,
    group: str,
    ingest: IngestRange,
    *,
    timeout: float,
    child: Child | None = None,
    target: int | None = None,
    interval: float = 0.1,
    on_first: Callable[[], object] | None = None,
) -> SinkProgress:
    """Wait until `group` committed `target` (default: all) of the pre-filled records; time from the
    first commit seen to the last, so start-up and group joins are excluded for every contender."""
    target = ingest.count if target is None else target
    partitions = [TopicPartition(t, p) for (t, p) in ingest.start]
    start_total = sum(ingest.start.values())
    # read_uncommitted: with read_committed librdkafka asks for *stable* offsets and waits while an
    # exactly-once worker has a transaction open, which under back-to-back transactions is until the end
    reader = Consumer(
        {
            **ctx.client_config,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    first_at, first_done, done, first_cpu = 0.0, 0, 0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done = committed_total(reader, partitions) - start_total
            now = time.monotonic()
            if done > 0 and not first_at:
                first_at, first_done = now, done
                first_cpu = procs.cpu_seconds(child.pid) if child is not None else 0.0
                if on_first is not None:
                    on_first()
            if done >= target:
                if done == first_done:
                    raise RuntimeError(f"{group}: all {done} records were committed before the first look")
                cpu = procs.cpu_seconds(child.pid) - first_cpu if child is not None else None
                return SinkProgress(done - first_done, now - first_at, cpu)
            if child is not None and not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
            time.sleep(interval)
    finally:
        reader.close()
    raise RuntimeError(f"{group} committed only {done} of {target} records in {timeout:.0f}s")


def start_handwritten_router(
    ctx: BenchContext,
    label: str,
    ingest: IngestRange,
    *,
    compression: str = "none",
    loop: str = "throughput",
) -> tuple[Child, str]:
    """The hand-written at-least-once router of the workload's 8 routes (`bench.handwritten_router_main`),
    its outputs uncompressed unless `compression` names a codec; `loop="latency"`: its variant in the raw
    pass-through's latency loop."""
    group = ctx.name(label)
    ctx.commit_offsets(group, ingest.start)
    partitions = str(WorkerSettings().derived_partitions)  # the topics a worker would create
    topics = json.dumps(ingest.topics)
    args = ["-m", "bench.handwritten_router_main", ctx.bootstrap, group, topics, partitions]
    args += [compression, loop]
    return procs.start(label, args), group

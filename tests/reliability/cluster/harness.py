"""The pipeline on the local 3-node cluster: the reference workload sent by the SDK into a namespace of
its own, refinery workers routing it with the reference route set (namespaced), and what the fault
tests measure while it runs (uncommitted input, end-to-end latency, memory), then reconciliation.

A namespace `ns` maps the workload's sources onto topics no other test touches: `telemetry` -> `{ns}t`,
`backend` -> `{ns}b`, and the route set's fixed `all` source -> `{ns}a`, so its ingest topics are
`{prod,dev}.{ns}{t,b}.ingest.all-v1` and every derived topic matches `^[a-z]+\\.{ns}[tba]\\.`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka import Producer as RawProducer
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from common.config import REPO_ROOT, KafkaSettings, ProducerSettings, RegistrySettings
from common.errors import RefineryError
from common.kafka_admin import TopicEnsurer
from devstack.local_cluster import LocalKafkaCluster
from producers.delivery import DeliveryHandle
from producers.producer import Producer
from producers.workload import SEND_VERSION, TITLES, WorkloadGenerator
from refinery.control.route_store import publish_route_set
from refinery.reconcile.reconciler import Reconciler, ReconcileReport, list_topics
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from refinery.worker.watchdog import WEDGED_EXIT_CODE
from tests.refinery.worker.worker_harness import WorkerProcess, record, worker_env

SOAK = os.environ.get("REFINERY_SOAK") == "1"
CLUSTER_HEAP = os.environ.get("REFINERY_TEST_CLUSTER_HEAP", "256m")
REPLICAS = 3
MIN_ISR = 2
INGEST_PARTITIONS = 3
DERIVED_PARTITIONS = 1  # few partitions: a restarted broker recovers and catches up each one
WORKLOAD_ROUTES = REPO_ROOT / "refinery" / "routes" / "workload.yaml"


# --- topics -------------------------------------------------------------------------------------------
def create_replicated_topics(
    client_config: Mapping[str, Any], topics: Iterable[str], *, partitions: int = 1, compacted: bool = False
) -> None:
    """Create topics with three replicas and min.insync.replicas=2 ("already exists" is fine)."""
    config = {"min.insync.replicas": str(MIN_ISR)}
    if compacted:
        config["cleanup.policy"] = "compact"
    admin = AdminClient(dict(client_config))
    futures = admin.create_topics(
        [NewTopic(t, partitions, REPLICAS, config=config) for t in topics], operation_timeout=30
    )
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def replication_of(client_config: Mapping[str, Any], topics: Iterable[str]) -> dict[str, tuple[int, int]]:
    """topic -> (replication factor, effective min.insync.replicas)."""
    topics = sorted(set(topics))
    admin = AdminClient(dict(client_config))
    metadata = admin.list_topics(timeout=30)
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    configs = {
        r.name: c for r, f in admin.describe_configs(resources).items() for c in [f.result(timeout=30)]
    }
    out = {}
    for topic in topics:
        partitions = metadata.topics[topic].partitions.values()
        replication = min(len(p.replicas) for p in partitions)
        out[topic] = (replication, int(configs[topic]["min.insync.replicas"].value))
    return out


# --- a namespace of the reference workload ------------------------------------------------------------
@dataclass(frozen=True)
class Namespace:
    ns: str

    @classmethod
    def new(cls, prefix: str) -> Namespace:
        return cls(f"{prefix}{uuid.uuid4().hex[:6]}")

    @property
    def sources(self) -> dict[str, str]:
        return {"telemetry": f"{self.ns}t", "backend": f"{self.ns}b"}

    @property
    def ingest_topics(self) -> list[str]:
        return [
            f"{env}.{source}.ingest.all-v1" for env in ("prod", "dev") for source in self.sources.values()
        ]

    @property
    def ingest_pattern(self) -> str:
        return rf"^(prod|dev)\.{self.ns}[tb]\.ingest\.all-v1$"

    @property
    def derived_pattern(self) -> str:
        return rf"^[a-z]+\.{self.ns}[tba]\."

    @property
    def group(self) -> str:
        return self.ns

    @property
    def routes_topic(self) -> str:
        return f"_{self.ns}-routes"

    @property
    def dlq_topic(self) -> str:
        return f"_{self.ns}-dlq"

    @property
    def routes(self) -> str:
        """The reference route set with its fixed topic names moved into this namespace."""
        text = WORKLOAD_ROUTES.read_text()
        text = text.replace(".telemetry.", f".{self.ns}t.").replace(".backend.", f".{self.ns}b.")
        text = text.replace("dev.all.all.", f"dev.{self.ns}a.all.")
        return text

    def derived_topics(self, client_config: Mapping[str, Any]) -> list[str]:
        return [t for t in list_topics(client_config, self.derived_pattern) if ".ingest." not in t]


def prepare_namespace(client_config: Mapping[str, Any], space: Namespace) -> None:
    """Ingest topics as the SDK creates them (3 partitions; replication and min ISR the cluster's
    defaults, as every topic the pipeline creates), then the route set (which creates its topic)."""
    TopicEnsurer(client_config, partitions=INGEST_PARTITIONS).ensure_many(space.ingest_topics)
    publish_route_set(client_config, space.routes_topic, load_route_set(space.routes))


def derived_destinations(space: Namespace) -> set[str]:
    """Every derived topic the route set can send the namespace's workload to."""
    router = compile_router(load_route_set(space.routes))
    topics = set()
    for env, source, title, category, platform in itertools.product(
        ("prod", "dev"), space.sources.values(), [t for t, _ in TITLES], SEND_VERSION, ("pc", "ps", "xbox")
    ):
        _, headers = record(env, source, title, category, version=SEND_VERSION[category],
                            attributes={"platform": platform})  # fmt: skip
        topics |= {d.topic for d in router.route(dict(headers or []))}
    return topics


PRIMER_KEY = b"primer"


def prime(client_config: Mapping[str, Any], space: Namespace) -> int:
    """Send, to every ingest partition, one record for each derived topic the records of that ingest
    topic can go to: each worker then writes to every derived topic it may need, and makes progress.
    Before a fault, so that the fault meets the data path and not a worker's first-use topic creation
    (one CreateTopics round trip per topic and process, up to 30 s when it times out; that path is
    covered by test_topic_creation_timeout.py, whose TimeoutError used to stop the data plane); after
    it, as a probe that every worker still routes. Returns how many records were sent."""
    router = compile_router(load_route_set(space.routes))
    combos: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {}
    for env, source, title, category, platform in itertools.product(
        ("prod", "dev"), space.sources.values(), [t for t, _ in TITLES], SEND_VERSION, ("pc", "ps", "xbox")
    ):
        _, headers = record(env, source, title, category, version=SEND_VERSION[category],
                            attributes={"platform": platform})  # fmt: skip
        for destination in router.route(dict(headers or [])):
            combos.setdefault((env, source), {}).setdefault(destination.topic, (title, category, platform))
    producer = RawProducer({**client_config, "enable.idempotence": True, "linger.ms": 20})
    sent = 0
    for (env, source), destinations in combos.items():
        for partition in range(INGEST_PARTITIONS):
            for title, category, platform in destinations.values():
                value, headers = record(env, source, title, category, version=SEND_VERSION[category],
                                        attributes={"platform": platform})  # fmt: skip
                producer.produce(f"{env}.{source}.ingest.all-v1", value, PRIMER_KEY, partition=partition,
                                 headers=headers)  # fmt: skip
                sent += 1
    assert producer.flush(60) == 0
    return sent


# --- workers ------------------------------------------------------------------------------------------
class WorkerGroup:
    """Refinery workers of one consumer group on the cluster, with the default replication settings (the
    cluster's own: 3 replicas, min ISR 2) for what they create."""

    def __init__(self, bootstrap: str, space: Namespace, tmp: Path, *, exactly_once: bool, **overrides: Any):
        self.space = space
        self.tmp = tmp
        self.mode = "exactly_once" if exactly_once else "at_least_once"
        self.env = worker_env(
            bootstrap, space.ns, tmp, exactly_once=exactly_once, derived_partitions=DERIVED_PARTITIONS,
            **overrides,
        )  # fmt: skip
        self.env["REFINERY_WORKER_INGEST_PATTERN"] = space.ingest_pattern
        # e.g. DEBUG: every committed transaction's input ranges in the worker logs, to trace a loss
        self.env["REFINERY_LOG_LEVEL"] = os.environ.get("CLUSTER_TEST_WORKER_LOG_LEVEL", "INFO")
        self.workers: list[WorkerProcess] = []
        self.started = 0
        self.watchdog_restarts: list[dict[str, Any]] = []  # workers `supervise` started again

    def add(self, count: int = 1) -> list[WorkerProcess]:
        """Start `count` more workers (in parallel), each with a stable instance id and its own dir."""
        new = []
        for _ in range(count):
            self.started += 1
            n = self.started
            env = {**self.env, "REFINERY_WORKER_INSTANCE_ID": f"w{n}",
                   "REFINERY_WORKER_DATA_DIR": str(self.tmp / f"faust-{self.space.ns}-{n}")}  # fmt: skip
            new.append(WorkerProcess(env, self.tmp / f"{self.space.ns}-worker-{n}.log"))
        with ThreadPoolExecutor(max_workers=max(count, 1)) as pool:
            list(pool.map(lambda w: w.start(), new))
        self.workers += new
        return new

    def revive(self) -> int:
        """Start again any worker whose process exited (same instance id); how many were."""
        dead = [w for w in self.workers if w.proc is None or w.proc.poll() is not None]
        with ThreadPoolExecutor(max_workers=max(len(dead), 1)) as pool:
            list(pool.map(lambda w: w.start(), dead))
        return len(dead)

    def supervise(self) -> None:
        """What a supervisor does: start again (same instance id) a worker that exited because its
        watchdog found it wedged in a Kafka call (exit code 70), noting which call from its log. Workers
        that exited otherwise stay down (the test's `alive()` check fails on them)."""
        for worker in self.workers:
            if worker.proc is None or worker.proc.poll() != WEDGED_EXIT_CODE:
                continue
            wedged = [json.loads(line) for line in worker.log_path.read_text(errors="replace").splitlines()
                      if '"exiting: a Kafka call never returned' in line]  # fmt: skip
            self.watchdog_restarts.append({
                "instance": worker.env.get("REFINERY_WORKER_INSTANCE_ID"),
                "call": wedged[-1].get("call") if wedged else None,
                "seconds": wedged[-1].get("seconds") if wedged else None,
            })  # fmt: skip
            worker.start()

    def remove(self) -> WorkerProcess:
        """Stop the newest worker (SIGTERM: it leaves the group)."""
        worker = self.workers.pop()
        worker.stop()
        return worker

    def all_ready(self) -> bool:
        try:
            return all(w.get("/ready").status_code == 200 for w in self.workers)
        except Exception:  # noqa: BLE001 - one did not answer
            return False

    def alive(self) -> bool:
        return all(w.proc is not None and w.proc.poll() is None for w in self.workers)

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=max(len(self.workers), 1)) as pool:
            list(pool.map(lambda w: w.stop(), self.workers))

    def describe(self) -> list[dict[str, Any]]:
        """Each worker's /stats (state, readiness, pause reason, last error), or how it ended."""
        out = []
        for worker in self.workers:
            if worker.proc is None or worker.proc.poll() is not None:
                out.append({"exited": None if worker.proc is None else worker.proc.returncode})
                continue
            try:
                stats = worker.stats()
            except Exception as exc:  # noqa: BLE001 - it did not answer
                out.append({"unanswered": str(exc)})
                continue
            keys = ("state", "ready", "why", "paused_reason", "last_error", "totals")
            described = {k: stats.get(k) for k in keys if k in stats}
            if not stats.get("ready"):
                described["stack"] = str(self.dump_stack(worker))
            out.append(described)
        return out

    def progressed_since(self, when: float) -> list[WorkerProcess]:
        """Workers whose data plane has not made progress since `when` (epoch s)."""
        behind = []
        for worker in self.workers:
            try:
                if float(worker.stats().get("last_progress_at") or 0) < when:
                    behind.append(worker)
            except Exception:  # noqa: BLE001 - not answering: behind
                behind.append(worker)
        return behind

    def restart_stuck(self, workers: list[WorkerProcess] | None = None) -> list[dict[str, Any]]:
        """SIGKILL and start again (same instance id) `workers`, default every worker that is not ready,
        the way a supervisor with a readiness-based liveness check would; what each was doing (its data
        plane's innermost frames, from py-spy) is returned and its whole stack kept next to its log."""
        restarted = []
        for worker in self.workers:
            try:
                if workers is None and worker.get("/ready").status_code == 200:
                    continue
                if workers is not None and worker not in workers:
                    continue
                why = worker.get("/ready").json().get("message")
            except Exception as exc:  # noqa: BLE001 - not answering counts as stuck
                why = f"not answering: {exc}"
            stack = self.dump_stack(worker)
            restarted.append({"instance": worker.env.get("REFINERY_WORKER_INSTANCE_ID"), "why": why,
                              "dataplane": dataplane_frames(stack.read_text() if stack else ""),
                              "stack_file": str(stack)})  # fmt: skip
            worker.kill()
            worker.start()
        return restarted

    def restart_hung(self, workers: list[WorkerProcess], *, bound_s: float) -> list[dict[str, Any]]:
        """Restart the workers whose data plane sits in the same call for longer than `bound_s` (the
        longest any of its Kafka calls may take): its innermost frame is the same in two py-spy dumps
        `bound_s` + 5 s apart and it logged nothing in between (a call that returned and was tried
        again logs a warning). Quicker than waiting for a deadline, and evidence of the hang."""
        before = {id(w): (dataplane_frames(self._stack_text(w)), self._log_size(w)) for w in workers}
        if not workers:
            return []
        time.sleep(bound_s + 5.0)
        hung = [
            w for w in workers
            if before[id(w)][0] and dataplane_frames(self._stack_text(w)) == before[id(w)][0]
            and self._log_size(w) == before[id(w)][1]
        ]  # fmt: skip
        restarted = self.restart_stuck(hung) if hung else []
        for entry in restarted:
            entry["same_frame_for_more_than_s"] = bound_s + 5.0
        return restarted

    def _stack_text(self, worker: WorkerProcess) -> str:
        stack = self.dump_stack(worker)
        return stack.read_text() if stack is not None else ""

    @staticmethod
    def _log_size(worker: WorkerProcess) -> int:
        """Lines the data plane logged (librdkafka's own lines, which go on during a hang, left out)."""
        text = worker.log_path.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if '"logger": "refinery.worker' in line)

    @staticmethod
    def dump_stack(worker: WorkerProcess) -> Path | None:
        """Where a stuck worker's threads are (py-spy, a dev dependency), saved next to its log."""
        py_spy = Path(sys.executable).parent / "py-spy"
        if worker.proc is None or not py_spy.exists():
            return None
        path = worker.log_path.with_suffix(".stack.txt")
        dump = subprocess.run([str(py_spy), "dump", "--pid", str(worker.proc.pid)], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        path.write_text(dump.stdout + dump.stderr)
        return path

    def log_count(self, needle: str) -> int:
        return sum(
            p.read_text(errors="replace").count(needle)
            for p in self.tmp.glob(f"{self.space.ns}-worker-*.log")
        )


def dataplane_frames(py_spy_dump: str, depth: int = 2) -> list[str]:
    """The innermost frames of the `refinery-dataplane` thread in a py-spy dump."""
    lines = py_spy_dump.splitlines()
    for i, line in enumerate(lines):
        if '"refinery-dataplane"' in line:
            return [frame.strip() for frame in lines[i + 1 : i + 1 + depth]]
    return []


# --- the SDK feeding the reference workload -----------------------------------------------------------
class WorkloadFeeder:
    """The producer SDK sending the reference workload at `rate` records/s into a namespace, in a thread;
    every send's handle is kept so each one's outcome is known afterwards."""

    def __init__(self, bootstrap: str, registry_url: str, space: Namespace, *, rate: float, seed: int = 0):
        settings = ProducerSettings(
            env="prod", source=space.sources["telemetry"], partitions=INGEST_PARTITIONS,
            delivery_timeout_ms=120_000, block_timeout_s=1,
        )  # fmt: skip
        self.producer = Producer(
            settings,
            kafka=KafkaSettings(bootstrap_servers=bootstrap),
            registry=RegistrySettings(url=registry_url),
        )
        self.space, self.rate = space, rate
        self.generator = WorkloadGenerator(seed=seed)
        self.handles: list[DeliveryHandle] = []
        self.refused: list[str] = []  # sends that raised at once (queue full, broker unknown...)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"feeder-{space.ns}")

    def _run(self) -> None:
        started = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while sent < due and not self._stop.is_set():
                msg = self.generator.next()
                try:
                    self.handles.append(
                        self.producer.send(
                            msg.title,
                            msg.category,
                            msg.version,
                            msg.payload,
                            key=msg.key,
                            attributes=msg.attributes,
                            env=msg.env,
                            source=self.space.sources[msg.source],
                        )
                    )
                except RefineryError as exc:
                    self.refused.append(str(exc))
                sent += 1
            self._stop.wait(0.01)

    def start(self) -> WorkloadFeeder:
        self._thread.start()
        return self

    @property
    def sent(self) -> int:
        return len(self.handles) + len(self.refused)

    def halt(self) -> None:
        """Send no more (the records queued are still delivered by `stop`)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def stop(self, flush_timeout: float = 150.0) -> None:
        """Send no more, wait for every queued record's outcome, close."""
        self.halt()
        self.producer.flush(flush_timeout)
        self.producer.close(10)

    def outcomes(self) -> tuple[set[str], list[str], int]:
        """(message ids acknowledged, failure messages, sends still unresolved)."""
        acked, failed, pending = set(), [], 0
        for handle in self.handles:
            if not handle.done():
                pending += 1
            elif (error := handle.exception()) is not None:
                failed.append(str(error))
            else:
                acked.add(handle.result().message_id)
        return acked, failed, pending


# --- what is measured while it runs -------------------------------------------------------------------
class Sampler:
    """Calls `sample()` every `interval` s in a thread and keeps (seconds since start, value) pairs;
    failed samples (a broker down, a coordinator moving) are skipped."""

    def __init__(self, sample: Callable[[], Any], interval: float = 0.5) -> None:
        self.sample, self.interval = sample, interval
        self.values: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.values.append((time.monotonic() - self.started, self.sample()))
            except Exception:  # noqa: BLE001 - a sample that could not be taken now
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


class UncommittedInput:
    """Records on a group's ingest partitions not yet committed by it (end offsets minus committed): the
    most a rebalance or restart could make the group read again. Asked with a plain consumer that never
    joins the group (admin requests may abort the process while a broker restarts, see
    `LocalKafkaCluster.admin`)."""

    def __init__(self, client_config: Mapping[str, Any], group: str, topics: list[str]) -> None:
        self.consumer = Consumer({**client_config, "group.id": group, "enable.auto.commit": False,
                                  "log_level": 2})  # fmt: skip
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(INGEST_PARTITIONS)]

    def __call__(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=3)
        lag = 0
        for tp in committed:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=3)
            lag += max(high - max(tp.offset, 0), 0)
        return lag

    def close(self) -> None:
        self.consumer.close()


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory_sample(cluster: LocalKafkaCluster, groups: Iterable[WorkerGroup]) -> dict[str, float]:
    """RSS in MiB: the three brokers, the workers, this test process."""
    brokers = sum(cluster.rss_mb().values())
    workers = sum(rss_mb(w.proc.pid if w.proc else None) for g in groups for w in g.workers)
    return {"brokers": round(brokers), "workers": round(workers), "tests": round(rss_mb(os.getpid()))}


def peak_memory(sampler: Sampler) -> dict[str, float]:
    keys = {k for _, v in sampler.values for k in v}
    return {k: max(v.get(k, 0) for _, v in sampler.values) for k in sorted(keys)} | {
        "total": max((sum(v.values()) for _, v in sampler.values), default=0)
    }


@dataclass
class Arrival:
    """One derived record: when the SDK sent its input (`ce_time`) and when a worker produced it (the
    record's timestamp: the worker forwards without one, so the client stamps it at produce())."""

    topic: str
    message_id: str
    sent_at: float  # epoch s
    routed_at: float  # epoch s

    @property
    def latency(self) -> float:
        return self.routed_at - self.sent_at


def arrivals(client_config: Mapping[str, Any], space: Namespace) -> list[Arrival]:
    """Every committed record of the namespace's derived topics, as `Arrival`s."""
    out = []
    for msg in read_after(client_config, space.derived_topics(client_config), {}):
        headers = dict(msg.headers() or [])
        ce_time = headers.get("ce_time")
        if ce_time:
            sent_at = datetime.fromisoformat(ce_time.decode()).timestamp()
            out.append(Arrival(msg.topic() or "", (headers.get("ce_id") or b"").decode(), sent_at,
                               msg.timestamp()[1] / 1000))  # fmt: skip
    return out


def duplicate_sources(
    client_config: Mapping[str, Any], space: Namespace, routed: list[Arrival]
) -> dict[str, dict[str, int]]:
    """Where the inputs of duplicated outputs sit on the ingest topics: per ingest partition, how many
    were repeated and their first and last offsets (to set against the workers' commit and rebalance
    logs)."""
    copies = Counter((a.message_id, a.topic) for a in routed)
    repeated = {message_id for (message_id, _topic), n in copies.items() if n > 1}
    found: dict[str, dict[str, int]] = {}
    if not repeated:
        return found
    for msg in read_after(client_config, list_topics(client_config, space.ingest_pattern), {}):
        message_id = (dict(msg.headers() or []).get("ce_id") or b"").decode()
        if message_id in repeated:
            entry = found.setdefault(
                f"{msg.topic()}[{msg.partition()}]", {"repeated": 0, "first": -1, "last": -1}
            )
            offset = msg.offset() or 0
            entry["repeated"] += 1
            entry["first"] = offset if entry["first"] < 0 else min(entry["first"], offset)
            entry["last"] = max(entry["last"], offset)
    return found


def lost_sources(
    client_config: Mapping[str, Any], space: Namespace, ids: list[str], starts: Offsets | None = None
) -> dict[str, dict[str, Any]]:
    """Where lost records sit, to set against the workers' logs: per message id its ingest coordinate
    and time, and the derived records carrying it when read uncommitted (found there: written in a
    transaction that was aborted or is still open; not found: never written)."""
    wanted = set(ids)
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    router = compile_router(load_route_set(space.routes))
    ingest_at: dict[str, str] = {}
    for msg in read_after(client_config, list_topics(client_config, space.ingest_pattern), starts or {}):
        headers = dict(msg.headers() or [])
        message_id = (headers.get("ce_id") or b"").decode()
        ingest_at[message_id] = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        if message_id in wanted:
            found[message_id] = {
                "ingest": f"{msg.topic()}[{msg.partition()}]@{msg.offset()}",
                "ingest_time_ms": msg.timestamp()[1],
                "routes_to": sorted({d.topic for d in router.route(headers)}),
            }  # fmt: skip
    derived = space.derived_topics(client_config)
    seen: dict[str, dict[tuple[str, int, int], str]] = {}  # isolation -> (topic, partition, offset) -> id
    for isolation in ("read_committed", "read_uncommitted"):
        records = seen[isolation] = {}
        for msg in read_after(client_config, derived, starts or {}, isolation=isolation):
            message_id = (dict(msg.headers() or []).get("ce_id") or b"").decode()
            records[(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)] = message_id
            if message_id in found:
                where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
                found[message_id].setdefault(f"derived_{isolation.split('_')[1]}", []).append(where)
    # the derived records around each lost one: offset, committed or not, and its message id
    for entry in found.values():
        for where in entry.get("derived_uncommitted", []):
            topic, rest = where.split("[", 1)
            partition, offset = (int(x) for x in rest.replace("]@", " ").split())
            committed, written = seen["read_committed"], seen["read_uncommitted"]
            entry.setdefault("around", {})[where] = [  # [offset, committed?, its input on ingest]
                [o, (topic, partition, o) in committed, ingest_at.get(written[(topic, partition, o)])]
                for o in range(offset - 6, offset + 7) if (topic, partition, o) in written
            ]  # fmt: skip
    return found


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


# --- after the run ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One namespace's run, reconciled."""

    mode: str
    report: ReconcileReport
    acked: int
    failed: list[str]
    pending: int
    refused: int
    acked_missing: int  # acknowledged by the broker, absent from the ingest topics afterwards
    max_fanout: int
    max_uncommitted: int
    extra: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        r = self.report
        return {
            "sent": r.sent, "acknowledged": self.acked, "failed_to_caller": len(self.failed),
            "refused_at_send": self.refused, "acked_missing_from_ingest": self.acked_missing,
            "expected_deliveries": r.expected_deliveries, "delivered": r.delivered, "lost": r.lost,
            "duplicated": r.duplicated, "misrouted": r.misrouted, "unmatched": r.unmatched,
            "dlq": r.dlq_found, "max_uncommitted_input": self.max_uncommitted, "max_fanout": self.max_fanout,
            "duplicate_bound": self.max_fanout * self.max_uncommitted, **self.extra,
        }  # fmt: skip


Offsets = dict[tuple[str, int], int]


def end_offsets(client_config: Mapping[str, Any], topics: Iterable[str]) -> Offsets:
    """(topic, partition) -> end offset now, for every partition of `topics` that exists."""
    consumer = Consumer({**client_config, "group.id": f"ends-{uuid.uuid4().hex[:8]}", "log_level": 2})
    try:
        metadata = consumer.list_topics(timeout=30)
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
            for t in set(topics)
            if t in metadata.topics
            for p in metadata.topics[t].partitions
        }
    finally:
        consumer.close()


def namespace_offsets(client_config: Mapping[str, Any], space: Namespace) -> Offsets:
    """Where every topic of the namespace ends now: a later run reads only what comes after."""
    topics = [*list_topics(client_config, space.derived_pattern), space.dlq_topic]
    return end_offsets(client_config, topics)


def read_after(
    client_config: Mapping[str, Any], topics: Iterable[str], starts: Offsets, timeout_s: float = 120.0,
    *, isolation: str = "read_committed",
) -> Iterator[Message]:  # fmt: skip
    """Every committed record of `topics` from `starts` (0 for a partition not in it) to the end they
    had when reading started (`refinery.reconcile.read_topics`, from given offsets); with
    `isolation="read_uncommitted"` also the records of aborted and open transactions."""
    ends = end_offsets(client_config, topics)
    pending = {k for k, end in ends.items() if end > starts.get(k, 0)}
    if not pending:
        return
    consumer = Consumer({**client_config, "group.id": f"window-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": isolation})  # fmt: skip
    try:
        consumer.assign([TopicPartition(t, p, starts.get((t, p), 0)) for t, p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, (
                f"reading {len(pending)} partitions took over {timeout_s:.0f}s"
            )
            for msg in consumer.consume(1000, 0.5):
                err = msg.error()
                if err is None:
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic() or "", msg.partition() or 0))
                else:
                    raise AssertionError(f"reading {msg.topic()!r} failed: {err.str()}")
    finally:
        consumer.close()


def reconcile(
    client_config: Mapping[str, Any],
    space: Namespace,
    starts: Offsets | None = None,
    routes: str | None = None,
) -> ReconcileReport:
    """`refinery.reconcile` over the namespace (what `reconcile_cluster` does), only for the records written
    after `starts`: its ingest records against every topic of the namespace and its DLQ."""
    starts = starts or {}
    reconciler = Reconciler(compile_router(load_route_set(routes or space.routes)))
    for msg in read_after(client_config, list_topics(client_config, space.ingest_pattern), starts):
        coordinate = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        reconciler.expect(coordinate, msg.value(), msg.headers(), msg.key())  # type: ignore[arg-type]
    existing = set(list_topics(client_config, ""))
    derived = (set(reconciler.expected_topics) | set(space.derived_topics(client_config))) & existing
    for msg in read_after(client_config, derived, starts):
        reconciler.observe_derived(msg.topic() or "", msg.headers())  # type: ignore[arg-type]
    if space.dlq_topic in existing:
        for msg in read_after(client_config, [space.dlq_topic], starts):
            reconciler.observe_dead_letter(msg.headers())  # type: ignore[arg-type]
    return reconciler.finish()


def ingest_ids_and_fanout(
    client_config: Mapping[str, Any], space: Namespace, starts: Offsets | None = None
) -> tuple[set[str], int]:
    """Every message id on the namespace's ingest topics (after `starts`), and the most routes one
    of them matches."""
    router = compile_router(load_route_set(space.routes))
    ids, fanout = set(), 0
    for msg in read_after(client_config, list_topics(client_config, space.ingest_pattern), starts or {}):
        headers = dict(msg.headers() or [])
        ids.add((headers.get("ce_id") or b"").decode())
        fanout = max(fanout, len(router.route(headers)))
    return ids, fanout


def settle(
    client_config: Mapping[str, Any], space: Namespace, feeder: WorkloadFeeder, mode: str,
    uncommitted: Sampler, starts: Offsets | None = None,
) -> Outcome:  # fmt: skip
    """After the feeder stopped: reconcile the namespace and check every acknowledged send is on ingest."""
    acked, failed, pending = feeder.outcomes()
    ids, fanout = ingest_ids_and_fanout(client_config, space, starts)
    report = reconcile(client_config, space, starts)
    extra: dict[str, Any] = {}
    if report.lost:  # not yet visible (a transaction still open) or gone? Look again once open ones time out
        extra["unstable_partitions_at_first_read"] = unstable_partitions(client_config, space)
        time.sleep(LOOK_AGAIN_S)
        extra["first_read"] = {"lost": report.lost, "delivered": report.delivered}
        extra["looked_again_after_s"] = LOOK_AGAIN_S
        report = reconcile(client_config, space, starts)
        extra["unstable_partitions_at_second_read"] = unstable_partitions(client_config, space)
        if report.lost:
            lost = report.examples.get("lost", [])
            extra["lost_sources"] = lost_sources(client_config, space, lost, starts)
    if report.duplicated:  # where their inputs sit on ingest, to set against the workers' logs
        extra["duplicate_sources"] = duplicate_sources(client_config, space, arrivals(client_config, space))
    return Outcome(
        mode=mode, report=report, acked=len(acked), failed=failed,
        pending=pending, refused=len(feeder.refused), acked_missing=len(acked - ids), max_fanout=fanout,
        max_uncommitted=max((v for _, v in uncommitted.values), default=0), extra=extra,
    )  # fmt: skip


LOOK_AGAIN_S = 45.0  # longer than the workers' transaction timeout (30 s)


def unstable_partitions(client_config: Mapping[str, Any], space: Namespace) -> dict[str, list[int]]:
    """Derived partitions whose last stable offset is behind their high watermark: a transaction is open
    there, and read_committed readers see nothing written after its start. topic[p] -> [LSO, HWM]."""
    from confluent_kafka import IsolationLevel

    admin = AdminClient({**client_config, "log_level": 2})
    metadata = admin.list_topics(timeout=30)
    partitions = [TopicPartition(t, p) for t in [*space.derived_topics(client_config), space.dlq_topic]
                  if t in metadata.topics for p in metadata.topics[t].partitions]  # fmt: skip
    spec = {tp: OffsetSpec.latest() for tp in partitions}
    stable = admin.list_offsets(spec, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=30)
    high = admin.list_offsets(spec, isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=30)
    out = {}
    for tp in partitions:
        lso = stable[tp].result(timeout=30).offset
        hwm = high[tp].result(timeout=30).offset
        if lso < hwm:
            out[f"{tp.topic}[{tp.partition}]"] = [lso, hwm]
    return out


def leader_by_load(cluster: LocalKafkaCluster, topics: list[str], *, exclude: int | None = None) -> int:
    """The broker (other than `exclude`) leading the partitions of `topics` that hold the most records."""
    consumer = Consumer({**cluster.client_config, "group.id": f"load-{uuid.uuid4().hex[:8]}", "log_level": 2})
    try:
        metadata = consumer.list_topics(timeout=10)
        load: Counter[int] = Counter()
        for topic in topics:
            for p, meta in metadata.topics[topic].partitions.items():
                if meta.leader != exclude:
                    load[meta.leader] += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[
                        1
                    ]
        return load.most_common(1)[0][0]
    finally:
        consumer.close()


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {re.sub(r"[^a-z0-9_]", "_", k.lower()): v for k, v in values.items()}

"""What the data-plane failure tests (`test_poison_records.py`, `test_worker_outages.py`) look at: a raw
producer that reports where each record landed, the worker's health endpoints and metrics, a watcher
that samples them while a test runs, and an independent ledger of the derived topics and the DLQ.

The ledger does not use `refinery.reconcile`: it knows what was sent (message ids and ingest
coordinates, from the delivery reports) and counts what it reads back per (message id, topic), so a
test states its own expectation of which records must be dead letters and why.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from prometheus_client.parser import text_string_to_metric_families

from common.headers import Headers
from common.limits import record_size
from refinery.reconcile.reconciler import list_topics, read_topics
from refinery.routing import dlq
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record

Coordinate = tuple[str, int, int]  # ingest topic, partition, offset
BIG_TOPIC_BYTES = 8 * 1024 * 1024  # ingest topics of the poison tests accept records up to 8 MiB


# --- topics and producing ---------------------------------------------------------------------------
def create_topic(
    bootstrap: str, topic: str, *, partitions: int = 3, config: Mapping[str, str] | None = None
) -> None:
    """Create `topic` with a topic config (it must not exist yet: the config is the point)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, partitions, 1, config=dict(config or {}))], operation_timeout=30
    )
    futures[topic].result(timeout=30)


def set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    """Change one topic config at runtime (`incremental_alter_configs`, SET)."""
    resource = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)],
    )  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


@dataclass(frozen=True)
class Sent:
    """One record the broker acknowledged on an ingest topic."""

    coordinate: Coordinate
    key: bytes | None
    value: bytes | None
    headers: Headers | None

    @property
    def message_id(self) -> bytes:
        return dict(self.headers or ()).get("ce_id") or b""


# topic, partition (None: by key), key, value, headers
Item = tuple[str, int | None, bytes | None, bytes | None, Headers | None]


def big_record_producer(bootstrap: str, **extra: Any) -> Producer:
    """A raw idempotent producer that may write records up to 8 MiB (librdkafka's limit raised)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
            "message.max.bytes": BIG_TOPIC_BYTES + 1_000_000, **extra,
        }
    )  # fmt: skip


def produce(bootstrap: str, items: Iterable[Item], timeout: float = 60.0) -> list[Sent]:
    """Produce every item (in order) and return where each one landed; fails if any is not delivered."""
    producer = big_record_producer(bootstrap)
    acked: list[Sent] = []
    failed: list[str] = []

    def report(key: bytes | None, value: bytes | None, headers: Headers | None) -> Callable[[Any, Any], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(f"{msg.topic()}: {err}")
            else:  # delivery reports carry no headers: keep the ones we sent
                acked.append(
                    Sent((msg.topic() or "", msg.partition() or 0, msg.offset() or 0), key, value, headers)
                )

        return on_delivery

    for topic, partition, key, value, headers in items:
        kwargs: dict[str, Any] = {"partition": partition} if partition is not None else {}
        while True:
            try:
                producer.produce(
                    topic, value, key, headers=headers, on_delivery=report(key, value, headers), **kwargs
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(timeout) == 0, "records still queued after the flush"
    assert failed == [], failed[:5]
    return acked


def sized_record(
    env: str,
    source: str,
    title: str,
    *,
    key: bytes | None = None,
    value_bytes: int | None = None,
    record_bytes: int | None = None,
    category: str = "poison",
) -> tuple[bytes, Headers]:
    """A valid envelope and its headers whose value is exactly `value_bytes` long, or whose whole record
    (`common.limits.record_size` with `key`) is exactly `record_bytes`."""
    assert (value_bytes is None) != (record_bytes is None)
    payload = 0
    for _ in range(10):
        value, headers = record(env, source, title, category, payload=b"z" * payload)
        size = len(value) if value_bytes is not None else record_size(key, value, headers)
        want = value_bytes if value_bytes is not None else record_bytes
        assert want is not None
        if size == want:
            return value, headers
        payload = max(payload + want - size, 0)
    raise AssertionError(f"could not build a record of exactly {want} bytes")


# --- the worker's health ----------------------------------------------------------------------------
def ready(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    """GET /ready: the status code and the JSON body (empty when the body is not JSON)."""
    response = worker.get("/ready")
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {"body": body}


def metrics(worker: WorkerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, by (sample name, sorted labels)."""
    text = worker.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for (n, lbl), v in samples.items() if n == name and set(labels.items()) <= set(lbl))


def by_label(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str
) -> dict[str, float]:
    """{label value: sample value} for the samples called `name` (zero values left out)."""
    return {dict(lbl)[label]: v for (n, lbl), v in samples.items() if n == name and v and label in dict(lbl)}


@dataclass
class Observation:
    at: float  # seconds since the watcher started
    state: str  # /stats "state"; "unanswered" when the worker did not answer
    ready: int | None  # /ready status code; None when the worker did not answer
    paused_reason: str | None = None
    last_error: str | None = None
    ready_message: str | None = None


class HealthWatcher:
    """Samples /stats and /ready in a thread every `interval` s while a test runs."""

    def __init__(self, worker: WorkerProcess, interval: float = 0.25) -> None:
        self.worker = worker
        self.interval = interval
        self.seen: list[Observation] = []
        self.exited: int | None = None  # the worker's exit code if it exited while watched
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> HealthWatcher:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.append(self.sample())
            proc = self.worker.proc
            if proc is not None and proc.poll() is not None:
                self.exited = proc.returncode
                return
            self._stop.wait(self.interval)

    def sample(self) -> Observation:
        at = round(time.monotonic() - self._started, 2)
        try:
            stats = self.worker.stats()
            code, body = ready(self.worker)
        except (httpx.HTTPError, ValueError):
            return Observation(at, "unanswered", None)
        return Observation(at, stats.get("state", "no state"), code, stats.get("paused_reason"),
                           stats.get("last_error"), body.get("message"))  # fmt: skip

    @property
    def states(self) -> Counter[str]:
        """How many samples saw each state."""
        return Counter(o.state for o in self.seen)

    def first(self, check: Callable[[Observation], bool]) -> Observation | None:
        return next((o for o in self.seen if check(o)), None)


def worker_story(log_path: Path) -> str:
    """The worker's log without the per-batch lines (rebalances with their offsets, retries, pauses,
    commit failures): printed by a test before its checks, so that a failure shows what happened."""
    lines = log_path.read_text(errors="replace").splitlines()
    return "\n".join(
        line[:600]
        for line in lines
        if line.startswith("{") and '"records routed"' not in line and "aiokafka" not in line
    )


def wait_ready(worker: WorkerProcess, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until GET /ready is 200; return /stats then."""
    deadline = time.monotonic() + timeout
    code, body = None, {}
    while time.monotonic() < deadline:
        try:
            code, body = ready(worker)
            if code == 200:
                return worker.stats()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"/ready not 200 after {timeout:.0f}s: {code} {body}")


# --- reading back -----------------------------------------------------------------------------------
def derived_topics(client_config: Mapping[str, Any], name: str) -> list[str]:
    """Every non-ingest topic in this test's namespace (`*.{name}.*`): where records could be misrouted."""
    return [t for t in list_topics(client_config, rf"^[a-z]+\.{re.escape(name)}\.") if ".ingest." not in t]


def dead_letter_errors(msg: Message) -> dict[str, str]:
    """The `__refinery.errors.*` headers of a dead letter, decoded."""
    return {
        k: (v or b"").decode("utf-8", "replace")
        for k, v in msg.headers() or []
        if k.startswith(dlq.ERROR_HEADER_PREFIX)
    }


def check_cut_value(dead: Message, original: bytes) -> bool:
    """Assert a dead letter that says its value was cut tells the truth; True when it was cut."""
    errors = dead_letter_errors(dead)
    if errors.get(dlq.VALUE_TRUNCATED) != "true":
        assert dead.value() == original, (
            "a dead letter without the truncated header must carry the whole value"
        )
        return False
    assert errors[dlq.VALUE_SIZE] == str(len(original)), errors
    assert errors[dlq.VALUE_SHA256] == hashlib.sha256(original).hexdigest(), errors
    assert original.startswith(dead.value() or b""), "a cut value must be a prefix of the original"
    assert len(dead.value() or b"") < len(original)
    return True


@dataclass
class Ledger:
    """Per (message id, topic): copies expected and found; dead letters by ingest coordinate."""

    expected: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    found: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    dead: dict[Coordinate, list[Message]] = field(default_factory=dict)
    dead_unknown: int = 0  # dead letters without an ingest coordinate

    @property
    def lost(self) -> int:
        return sum(max(want - self.found[key], 0) for key, want in self.expected.items())

    @property
    def duplicated(self) -> int:
        return sum(max(self.found[key] - want, 0) for key, want in self.expected.items())

    @property
    def misrouted(self) -> int:
        return sum(got for key, got in self.found.items() if key not in self.expected)

    @property
    def delivered(self) -> int:
        return sum(min(self.found[key], want) for key, want in self.expected.items())

    def dead_reasons(self) -> Counter[str]:
        return Counter(dead_letter_errors(m).get(dlq.REASON, "") for ms in self.dead.values() for m in ms)

    def summary(self) -> dict[str, Any]:
        return {
            "expected_deliveries": sum(self.expected.values()), "delivered": self.delivered,
            "lost": self.lost, "duplicated": self.duplicated, "misrouted": self.misrouted,
            "dead_letters": sum(len(ms) for ms in self.dead.values()),
            "dlq_by_reason": dict(self.dead_reasons()),
        }  # fmt: skip


def read_back(
    client_config: Mapping[str, Any],
    name: str,
    routes: str,
    sent: Iterable[Sent],
    *,
    dlq_topic: str,
    not_routed: Callable[[Sent], bool] = lambda s: False,
    rejected_topics: Iterable[str] = (),
) -> Ledger:
    """Expect every sent record (except `not_routed` ones) once in each topic its routes name, except
    `rejected_topics` (whose copies must be dead letters); read every derived topic of the test and
    the DLQ back."""
    router = compile_router(load_route_set(routes))
    rejected = set(rejected_topics)
    ledger = Ledger()
    for s in sent:
        if not_routed(s):
            continue
        for dest in router.route(dict(s.headers or ())):
            if dest.topic not in rejected:
                ledger.expected[(s.message_id, dest.topic)] += 1
    for msg in read_topics(client_config, derived_topics(client_config, name)):
        ledger.found[(dict(msg.headers() or []).get("ce_id") or b"", msg.topic() or "")] += 1
    dlq_exists = dlq_topic in list_topics(client_config, f"^{re.escape(dlq_topic)}$")
    for msg in read_topics(client_config, [dlq_topic] if dlq_exists else []):
        errors = dead_letter_errors(msg)
        try:
            coordinate = (errors[dlq.TOPIC], int(errors[dlq.PARTITION]), int(errors[dlq.OFFSET]))
        except (KeyError, ValueError):
            ledger.dead_unknown += 1
            continue
        ledger.dead.setdefault(coordinate, []).append(msg)
    return ledger


def committed_offset(client_config: Mapping[str, Any], group: str, topic: str, partition: int) -> int:
    """The offset group `group` committed on one partition (-1001 when none)."""
    consumer = Consumer({**client_config, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    except KafkaException:
        return -1001
    finally:
        consumer.close()

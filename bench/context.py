"""What every benchmark shares: the broker, run parameters, progress lines and Kafka helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common.config import REPO_ROOT, KafkaSettings, LocalKafkaSettings
from devstack.local_kafka import LocalKafka

# A full run writes tens of GB (the memory benchmark alone ~20 GB: 3.3M records per contender, ingest plus
# outputs), and the ingest and derived topics are shared by the benchmarks, so nothing deletes them in
# between: a private broker drops what is older than any benchmark reads back (the routing benchmark's
# pre-filled input is the oldest, read within ~10 minutes). Small segments rolled by time, so a partition
# that stays under a segment's size still ages out (the 1 GiB default would keep most of them whole).
# Kafka goes by the records' own timestamps: a benchmark's prepared records carry the time they were
# prepared, so one must write and read them back within 20 minutes of preparing them.
BENCH_RETENTION = {
    "log.retention.ms": str(20 * 60 * 1000),
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.roll.ms": str(5 * 60 * 1000),
    "log.retention.check.interval.ms": str(30 * 1000),
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def kafka_version() -> str:
    """The broker version from the jar we run (the broker API does not report it)."""
    jars = sorted(LocalKafkaSettings().libs_dir.glob("kafka_2.13-*.jar"))
    return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"


def environment_info(bootstrap: str) -> dict[str, Any]:
    import confluent_kafka

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "faust": _version("faust-streaming"),
        "kafka": kafka_version(),
        "bootstrap": bootstrap,
    }


def ensure_broker(settings: KafkaSettings) -> tuple[str, LocalKafka | None]:
    """Reuse the broker at the configured address, or start one there; return (bootstrap, started)."""
    broker = LocalKafka.from_settings(settings)
    outcome = broker.start()
    return broker.bootstrap, (broker if outcome == "started" else None)


def private_broker() -> tuple[str, LocalKafka]:
    """A fresh broker of our own on free ports, data under .run/bench-kafka-<pid> (wipe it when done):
    one directory per harness process, so two `--own-broker` runs at once (a shared machine) do not
    wipe each other's broker, as one shared directory did."""
    broker = private_broker_spec()
    broker.wipe()
    broker.start()
    return broker.bootstrap, broker


def private_broker_spec() -> LocalKafka:
    """The private broker of this harness process, not started: free ports, its own folder, and the
    retention of `BENCH_RETENTION`."""
    from bench.procs import free_port

    home = REPO_ROOT / ".run" / f"bench-kafka-{os.getpid()}"
    settings = LocalKafkaSettings(home=home, controller_port=free_port())
    return LocalKafka(
        port=free_port(), home=settings.home, settings=settings, extra_properties=dict(BENCH_RETENTION)
    )


@contextlib.contextmanager
def run_broker(own: bool, settings: KafkaSettings | None = None) -> Iterator[tuple[str, LocalKafka | None]]:
    """The broker of one harness run, as (bootstrap, the broker if we started it): a private one when
    `own` (wiped afterwards), else the configured one (started if none answers, and then stopped
    afterwards)."""
    started: LocalKafka | None
    if own:
        bootstrap, started = private_broker()
    else:
        bootstrap, started = ensure_broker(settings or KafkaSettings())
    try:
        yield bootstrap, started
    finally:
        if started is not None:
            started.wipe() if own else started.stop()


def restart_fresh(broker: LocalKafka) -> None:
    """Stop a private broker, delete its data and start it again empty, on the same ports."""
    broker.wipe()
    broker.start()


@dataclass
class BenchContext:
    """Run-wide parameters. `quick` shrinks every benchmark to a few seconds."""

    bootstrap: str
    quick: bool = False
    profile: bool = False  # sample contenders with py-spy / cProfile into `profile_dir`
    profile_dir: Path = REPO_ROOT / "bench" / "results" / "profiles"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.monotonic)
    _offsets_reader: Consumer | None = field(default=None, repr=False)

    @property
    def client_config(self) -> dict[str, Any]:
        return {**KafkaSettings(bootstrap_servers=self.bootstrap).client_config()}

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def profile_path(self, name: str) -> Path:
        """Where the profile `name` goes (`.raw` for py-spy's stacks; the summary is `.txt`)."""
        return self.profile_dir / f"{name}.raw"

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def name(self, label: str) -> str:
        """A topic-name component unique to this run."""
        return f"bench-{label}-{self.run_id}"

    # --- Kafka helpers -------------------------------------------------------------------------------
    def admin(self) -> AdminClient:
        return AdminClient(self.client_config)

    def create_topics(self, topics: list[str], partitions: int, config: dict[str, str] | None = None) -> None:
        """Create topics (existing ones are fine)."""
        admin = self.admin()  # keep a reference: a collected client cancels its futures
        futures = admin.create_topics(
            [NewTopic(t, partitions, 1, config=dict(config or {})) for t in topics], operation_timeout=30
        )
        for future in futures.values():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        self.wait_for_leaders(admin, topics)

    @staticmethod
    def wait_for_leaders(admin: AdminClient, topics: list[str], timeout: float = 30.0) -> None:
        """Block until every partition of `topics` has a leader (fresh topics answer NOT_LEADER first)."""
        deadline = time.monotonic() + timeout
        while True:
            meta = admin.list_topics(timeout=10)
            ready = all(
                t in meta.topics
                and meta.topics[t].error is None
                and meta.topics[t].partitions
                and all(p.leader >= 0 for p in meta.topics[t].partitions.values())
                for t in topics
            )
            if ready or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def delete_topics(self, topics: list[str]) -> None:
        """Best-effort clean-up of topics this run created."""
        if not topics:
            return
        admin = self.admin()
        futures = admin.delete_topics(topics, operation_timeout=30)
        for future in futures.values():
            try:
                future.result(timeout=30)
            except KafkaException:
                pass

    def end_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """High watermarks of every partition of `topics` (missing topics count as empty)."""
        if self._offsets_reader is None:
            self._offsets_reader = Consumer(
                {**self.client_config, "group.id": f"bench-offsets-{self.run_id}"}
            )
        consumer = self._offsets_reader
        out: dict[tuple[str, int], int] = {}
        for topic in topics:
            info = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if info is None or info.error is not None:
                continue
            for p in info.partitions:
                out[(topic, p)] = self._high_watermark(consumer, topic, p)
        return out

    def close(self) -> None:
        if self._offsets_reader is not None:
            self._offsets_reader.close()
            self._offsets_reader = None

    @staticmethod
    def _high_watermark(consumer: Consumer, topic: str, partition: int, attempts: int = 50) -> int:
        for attempt in range(attempts):
            try:
                return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
            except KafkaException:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)  # leadership still settling on a fresh topic
        raise AssertionError("unreachable")

    def commit_offsets(self, group_id: str, offsets: dict[tuple[str, int], int]) -> None:
        """Pre-commit start offsets for a consumer group, so a worker under test starts exactly there."""
        consumer = Consumer({**self.client_config, "group.id": group_id, "enable.auto.commit": False})
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        finally:
            consumer.close()

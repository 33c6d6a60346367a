"""The reference workload (/work/shared/workload.md) as ready-to-send records.

Messages come from the SDK's own generator (`producers.workload.WorkloadGenerator`) and are turned into
wire records by the SDK's `Producer.prepare` (payload encoding, envelope, headers), so baselines and
products move byte-identical records. Schemas live in an in-memory registry (`mock://`): the registry
service has its own benchmark, and resolved schemas are cached by the SDK after the first record.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator
from typing import Any, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient

from common.config import KafkaSettings, ProducerSettings
from common.headers import TITLE
from common.topics import ingest_topic
from producers.producer import OutgoingRecord, Producer
from producers.schemas import SchemaCatalog
from producers.workload import ENVS, WorkloadGenerator, WorkloadMessage, register_workload

SOURCES = ("telemetry", "backend")
T = TypeVar("T")


def mock_catalog(name: str = "bench") -> SchemaCatalog:
    """A schema catalog on confluent-kafka's in-memory registry, with the workload registered."""
    catalog = SchemaCatalog(SchemaRegistryClient.new_client({"url": f"mock://{name}"}))
    register_workload(catalog)
    return catalog


def workload_ingest_topics() -> list[str]:
    return [ingest_topic(env, source) for env, _ in ENVS for source in SOURCES]


def sdk_producer(
    bootstrap: str, *, env: str = "prod", source: str = "telemetry", **overrides: Any
) -> Producer:
    """An SDK producer on the in-memory registry (its ingest topics get 12 partitions)."""
    settings = ProducerSettings(env=env, source=source, producer_id="bench", **overrides)
    return Producer(settings, kafka=KafkaSettings(bootstrap_servers=bootstrap), catalog=mock_catalog())


def prepare_records(
    producer: Producer,
    messages: list[WorkloadMessage],
    *,
    fixed_topic: bool = False,
) -> list[OutgoingRecord]:
    """Wire records for `messages`. With `fixed_topic`, every record uses the producer's env and source
    (one ingest topic); otherwise each message's own env and source (the four workload ingest topics)."""
    out = []
    for m in messages:
        env, source = (None, None) if fixed_topic else (m.env, m.source)
        out.append(
            producer.prepare(
                m.title,
                m.category,
                m.version,
                m.payload,
                key=m.key,
                attributes=m.attributes,
                env=env,
                source=source,
            )
        )
    return out


def cycle(items: list[T], count: int) -> Iterator[T]:
    """The first `count` items of `items` repeated."""
    return itertools.islice(itertools.cycle(items), count)


def generate(count: int, size: int | str | None = 1024, seed: int = 0) -> list[WorkloadMessage]:
    return WorkloadGenerator(seed=seed, payload_size=size).take(count)


def synthetic_titles(count: int = 500) -> list[str]:
    """Titles of the scale variant (the workload's mix spread evenly over them)."""
    return [str(10_000 + i) for i in range(count)]


def retitled_headers(records: list[OutgoingRecord], titles: list[str], seed: int = 1) -> list[dict]:
    """Header dicts of `records` with the title replaced by one of `titles` at random (scale variant:
    routing reads headers only, so the payloads need no per-title schema)."""
    rng = random.Random(seed)
    out = []
    for record in records:
        headers = dict(record.headers)
        headers[TITLE] = rng.choice(titles).encode()
        out.append(headers)
    return out


def with_topic(record: OutgoingRecord, topic: str) -> OutgoingRecord:
    return dataclasses.replace(record, topic=topic)

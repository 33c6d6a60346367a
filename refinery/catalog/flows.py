"""What is flowing: a table of flows, each one (env, source, title, category, version) seen on an ingest
topic, with its schema id, format, producers, attribute values, count, live rate and last-seen time.

`FlowObserver` fills the table from the ingest topics, reading record headers only (values are never
decoded), in its own consumer group so it takes nothing away from the workers. Counting happens once
per polled batch, not per record, under one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message

from common import contract
from common import headers as h

log = logging.getLogger(__name__)

FlowKey = tuple[str, str, str, str, str]  # env, source, title, category, version
RATE_WINDOW_S = 30.0
MAX_VALUES_KEPT = 16  # distinct producers / attribute values remembered per flow (bounded memory)


@dataclass
class Flow:
    key: FlowKey
    ingest_topic: str
    schema_ids: set[int] = field(default_factory=set)
    formats: set[str] = field(default_factory=set)
    producers: set[str] = field(default_factory=set)
    attributes: dict[str, set[str]] = field(default_factory=dict)
    attribute_variants: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    records: int = 0
    last_seen_ms: int = 0
    history: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, records)

    def per_second(self, now: float) -> float:
        while len(self.history) > 1 and now - self.history[0][0] > RATE_WINDOW_S:
            self.history.popleft()
        if not self.history:
            return 0.0
        then, count = self.history[0]
        elapsed = max(now - then, 1.0)
        return (self.records - count) / elapsed


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


_KEY_HEADERS = (h.ENV, h.SOURCE, h.TITLE, h.CATEGORY, h.VERSION)


def _routable(key: FlowKey) -> bool:
    """True when the key's header values follow the contract (records with others are dead-lettered)."""
    return all(contract.header_problem(n, v.encode()) is None for n, v in zip(_KEY_HEADERS, key, strict=True))


def _add_bounded(values: set[Any], value: Any) -> None:
    if len(values) < MAX_VALUES_KEPT:
        values.add(value)


class FlowTable:
    """Flows by key; thread-safe (the observer thread writes, web requests read snapshots)."""

    def __init__(self) -> None:
        self._flows: dict[FlowKey, Flow] = {}
        self._lock = threading.Lock()
        self.records_seen = 0
        self.records_without_metadata = 0

    def observe(self, topic: str, headers: Mapping[str, bytes | str | None], timestamp_ms: int) -> None:
        self.observe_many([(topic, headers, timestamp_ms)])

    def observe_many(self, records: Iterable[tuple[str, Mapping[str, bytes | str | None], int]]) -> None:
        now = time.monotonic()
        with self._lock:
            for topic, headers, timestamp_ms in records:
                self.records_seen += 1
                env, source, title, category, version = (_text(headers.get(n)) for n in _KEY_HEADERS)
                key: FlowKey = (env, source, title, category, version)
                flow = self._flows.get(key)
                if flow is None and (not _routable(key) or topic.split(".", 1)[0] != env):
                    # the workers dead-letter these (bad headers, or env_mismatch with the ingest topic)
                    self.records_without_metadata += 1
                    continue
                if flow is None:
                    flow = self._flows[key] = Flow(key=key, ingest_topic=topic)
                    flow.history.append((now, 0))
                flow.records += 1
                flow.last_seen_ms = max(flow.last_seen_ms, timestamp_ms)
                schema_id = _text(headers.get(h.SCHEMA_ID))
                if contract.header_problem(h.SCHEMA_ID, schema_id.encode()) is None:
                    _add_bounded(flow.schema_ids, int(schema_id))
                _add_bounded(flow.formats, _text(headers.get(h.FORMAT)))
                _add_bounded(flow.producers, _text(headers.get(h.PRODUCER)))
                attrs = tuple(
                    sorted((k[len(h.ATTRIBUTE_PREFIX) :], _text(v)) for k, v in headers.items()
                           if k.startswith(h.ATTRIBUTE_PREFIX))
                )  # fmt: skip
                _add_bounded(flow.attribute_variants, attrs)
                for name, value in attrs:
                    _add_bounded(flow.attributes.setdefault(name, set()), value)
            for flow in self._flows.values():
                if not flow.history or now - flow.history[-1][0] >= 1.0:
                    flow.history.append((now, flow.records))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every flow as plain data, busiest first."""
        now = time.monotonic()
        with self._lock:
            flows = [
                {
                    "env": f.key[0],
                    "source": f.key[1],
                    "title": f.key[2],
                    "category": f.key[3],
                    "version": f.key[4],
                    "ingest_topic": f.ingest_topic,
                    "schema_ids": sorted(f.schema_ids),
                    "formats": sorted(x for x in f.formats if x),
                    "producers": sorted(p for p in f.producers if p),
                    "attributes": {k: sorted(v) for k, v in sorted(f.attributes.items())},
                    "attribute_variants": [dict(v) for v in sorted(f.attribute_variants)],
                    "records": f.records,
                    "per_second": round(f.per_second(now), 3),
                    "last_seen_ms": f.last_seen_ms,
                }
                for f in self._flows.values()
            ]
        return sorted(flows, key=lambda f: (-f["per_second"], -f["records"]))


class FlowObserver:
    """A background consumer of the ingest topics that feeds a FlowTable from record headers."""

    def __init__(
        self, table: FlowTable, client_config: Mapping[str, Any], *, group_id: str, ingest_pattern: str,
        start_from: str = "latest",
    ) -> None:  # fmt: skip
        self.table = table
        self._config = {
            **client_config,
            "group.id": group_id,
            "auto.offset.reset": start_from,
            "enable.auto.commit": True,
            "topic.metadata.refresh.interval.ms": 5000,  # see new ingest topics within seconds
        }
        self._pattern = ingest_pattern if ingest_pattern.startswith("^") else f"^{ingest_pattern}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="catalog-flow-observer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            consumer.subscribe([self._pattern])
            while not self._stop.is_set():
                batch = consumer.consume(num_messages=2000, timeout=0.5)
                self.table.observe_many(_records(batch))
                self.error = None
        except KafkaException as exc:
            self.error = str(exc)
            log.error("flow observer stopped", extra={"error": str(exc)})
        finally:
            consumer.close()


def _records(batch: list[Message]) -> Iterable[tuple[str, Mapping[str, bytes | str | None], int]]:
    for msg in batch:
        if msg.error() is not None:
            continue
        yield msg.topic() or "", dict(msg.headers() or ()), msg.timestamp()[1]

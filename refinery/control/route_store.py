"""The live route set: published to a compacted Kafka topic, watched by every worker.

`publish_route_set` writes a validated set's canonical text (with its version hash, who published it
and when) under the key `routes`, then a history entry under a key of its own
(`refinery.control.route_records` says why); compaction keeps the latest `routes` record. Each worker
runs a `RouteWatcher`: its own consumer, no group offsets, partition 0 assigned from the beginning,
reading forever. A valid record replaces the compiled router atomically; an invalid one is logged and
ignored, so the set in force stays in force. `read_route_log` reads the set in force and the history
once, without ever creating the topic (for `routes diff`, `routes show`, the drop guard and
`GET /routes/history`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from common.config import BROKER_DEFAULT_REPLICATION
from common.errors import RefineryError
from common.kafka_admin import TopicCreationError, ensure_compacted_topic
from refinery.control.route_records import (
    HISTORY_PREFIX,
    RECORD_FORMAT,
    ROUTES_KEY,
    Publication,
    PublishedSet,
    decode_history_record,
    decode_published,
    decode_route_record,
    encode_history_record,
    encode_route_record,
    history_key,
    os_user,
    utc_now,
)
from refinery.routing.router import Router, compile_router
from refinery.routing.rules import RouteSet, RuleError, dump_route_set, load_route_file, load_route_set

__all__ = [
    "RECORD_FORMAT",
    "ROUTES_KEY",
    "ROUTES_TOPIC",
    "Publication",
    "PublishedSet",
    "RouteLog",
    "RouteStoreError",
    "RouteWatcher",
    "apply_routes_file",
    "decode_route_record",
    "encode_route_record",
    "ensure_routes_topic",
    "publish_route_set",
    "read_route_log",
    "show_routes",
]

log = logging.getLogger(__name__)

ROUTES_TOPIC = "_refinery_routes"


class RouteStoreError(RefineryError):
    """The routes topic could not be created, written or read (the message says why)."""


def ensure_routes_topic(
    client_config: Mapping[str, Any],
    topic: str = ROUTES_TOPIC,
    *,
    replication_factor: int = BROKER_DEFAULT_REPLICATION,
    timeout_s: float = 30.0,
) -> None:
    """Create the compacted single-partition routes topic unless it exists."""
    try:
        ensure_compacted_topic(
            client_config, topic, replication_factor=replication_factor, timeout_s=timeout_s
        )
    except TopicCreationError as exc:
        raise RouteStoreError(f"could not create routes topic {topic!r}: {exc}") from None


def publish_route_set(
    client_config: Mapping[str, Any],
    topic: str,
    route_set: RouteSet,
    *,
    who: str | None = None,
    forced: bool = False,
    timeout_s: float = 30.0,
) -> Publication:
    """Validate `route_set` again from its canonical text (what workers will load) and publish it with
    who (default `python:<os user>`) and when, then its history entry. No checks of what it replaces:
    callers that act for a person go through `refinery.control.route_changes.apply_route_set`."""
    checked = load_route_set(dump_route_set(route_set))
    publication = Publication(
        checked.version, who or f"python:{os_user()}", utc_now(), len(checked.routes), forced
    )
    ensure_routes_topic(client_config, topic, timeout_s=timeout_s)
    producer = Producer({**client_config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    value = encode_route_record(checked, who=publication.who, when=publication.when, forced=forced)
    # Same partition, idempotent producer: the history entry lands right after the set it describes.
    producer.produce(topic, key=ROUTES_KEY, value=value, on_delivery=on_delivery)
    producer.produce(
        topic, key=history_key(publication), value=encode_history_record(publication), on_delivery=on_delivery
    )
    if producer.flush(timeout_s) > 0:
        raise RouteStoreError(
            f"route set {checked.version} not confirmed by the broker within {timeout_s:.0f}s"
        )
    if failures:
        raise RouteStoreError(f"could not publish route set {checked.version} to {topic!r}: {failures[0]}")
    log.info(
        "published route set",
        extra={
            "topic": topic, "version": checked.version, "routes": len(checked.routes),
            "who": publication.who, "forced": forced,
        },
    )  # fmt: skip
    return publication


def apply_routes_file(
    client_config: Mapping[str, Any], topic: str, path: str | Path, *, who: str | None = None
) -> RouteSet:
    """Load and validate a route file (RuleError says what to fix), then publish it; return the set.
    Unguarded (see `publish_route_set`)."""
    route_set = load_route_file(path)
    publish_route_set(client_config, topic, route_set, who=who)
    return route_set


@dataclass(frozen=True)
class RouteLog:
    """What the routes topic holds: the set in force (None if none) and every publish, newest first."""

    live: PublishedSet | None
    history: list[Publication]


def routes_topic_exists(client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 15.0) -> bool:
    # All topics' metadata: a metadata request naming the topic may make the broker auto-create it.
    try:
        metadata = AdminClient(dict(client_config)).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise RouteStoreError(f"could not list topics to find {topic!r}: {exc.args[0]}") from None
    found = metadata.topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)


def read_route_log(
    client_config: Mapping[str, Any], topic: str = ROUTES_TOPIC, *, timeout_s: float = 15.0
) -> RouteLog:
    """Read the routes topic once, start to end. Read-only: a missing topic is an empty log, never created.
    Invalid records are skipped, as the watchers skip them."""
    if not routes_topic_exists(client_config, topic, timeout_s=timeout_s):
        return RouteLog(None, [])
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"refinery-routes-{uuid.uuid4().hex}",  # required by librdkafka; never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
        }
    )
    live: PublishedSet | None = None
    live_offset = -1
    entries: list[tuple[int, Publication]] = []
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        if high > low:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        next_offset = low
        while next_offset < high:
            if time.monotonic() > deadline:
                raise RouteStoreError(f"could not read routes topic {topic!r} within {timeout_s:.0f}s")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    break
                raise RouteStoreError(f"could not read routes topic {topic!r}: {err}")
            offset = msg.offset() or 0
            next_offset = offset + 1
            key = msg.key() or b""
            try:
                if key == ROUTES_KEY:
                    live = decode_published(msg.value(), timestamp_ms=msg.timestamp()[1])
                    live_offset = offset
                elif key.startswith(HISTORY_PREFIX):
                    entries.append((offset, decode_history_record(msg.value())))
            except RuleError as exc:
                log.warning(
                    "skipping invalid routes-topic record", extra={"offset": offset, "error": str(exc)}
                )
    except KafkaException as exc:
        raise RouteStoreError(f"could not read routes topic {topic!r}: {exc.args[0]}") from None
    finally:
        consumer.close()
    if live is not None and not any(
        o > live_offset and p.version == live.route_set.version for o, p in entries
    ):
        entries.append((live_offset, live.publication))  # written before history entries existed
    entries.sort(key=lambda entry: entry[0], reverse=True)
    return RouteLog(live, [publication for _, publication in entries])


def show_routes(
    client_config: Mapping[str, Any], topic: str = ROUTES_TOPIC, *, timeout_s: float = 15.0
) -> str:
    """The route set currently published on `topic`, as canonical YAML with its version (read-only)."""
    live = read_route_log(client_config, topic, timeout_s=timeout_s).live
    if live is None:
        return f"# no route set has been published to {topic!r}\n"
    pub = live.publication
    return (
        f"# route set version {pub.version} (from {topic!r}), published by {pub.who or 'unknown'}"
        f" at {pub.when or 'unknown time'}\n{live.route_set.canonical_text}"
    )


class RouteWatcher:
    """Keeps a compiled Router current with the routes topic; `current()` is always the set in force."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        topic: str = ROUTES_TOPIC,
        on_change: Callable[[Router], None] | None = None,
        initial: RouteSet | None = None,
        *,
        poll_timeout_s: float = 0.2,
    ) -> None:
        self._config = dict(client_config)
        self.topic = topic
        self._on_change = on_change
        self._router = compile_router(initial) if initial is not None else None
        self._publication: Publication | None = None
        self._poll_timeout = poll_timeout_s
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Make sure the topic exists, then read it in a background thread."""
        if self._thread is not None:
            return
        ensure_routes_topic(self._config, self.topic)
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"refinery-routes-{uuid.uuid4().hex}",  # required by librdkafka; never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        if self._router is not None and self._on_change is not None:
            self._notify(self._router)
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name=f"routes:{self.topic}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> RouteWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def current(self) -> Router | None:
        return self._router

    def publication(self) -> Publication | None:
        """Who published the set in force, and when (None before one is read from the topic)."""
        return self._publication

    def wait_ready(self, timeout: float) -> bool:
        """True once everything on the topic when we started has been read (so `current()` is up to date)."""
        return self._ready.wait(timeout)

    def wait_for_version(self, version: str, timeout: float) -> bool:
        """True once the set with this version hash is in force."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._router is not None and self._router.route_set.version == version, timeout
            )

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                msg = consumer.poll(self._poll_timeout)
                if msg is None:
                    continue
                err = msg.error()
                if err is None:
                    self._apply(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    self._ready.set()
                else:
                    log.warning("routes topic read error", extra={"topic": self.topic, "error": str(err)})
        finally:
            consumer.close()

    def _apply(self, msg: Message) -> None:
        where = {"topic": self.topic, "offset": msg.offset()}
        if (msg.key() or b"").startswith(HISTORY_PREFIX):
            return  # history entries are for read_route_log
        if msg.key() != ROUTES_KEY:
            log.warning(
                "ignoring routes-topic record with unexpected key", extra={**where, "key": repr(msg.key())}
            )
            return
        try:
            published = decode_published(msg.value(), timestamp_ms=msg.timestamp()[1])
        except RuleError as exc:
            log.error(
                "ignoring invalid route set; the set in force stays", extra={**where, "error": str(exc)}
            )
            return
        route_set = published.route_set
        self._publication = published.publication
        if self._router is not None and self._router.route_set.version == route_set.version:
            return
        router = compile_router(route_set)
        # The callback runs before waiters wake, so wait_for_version() returning means it has run.
        self._notify(router)
        with self._changed:
            self._router = router
            self._changed.notify_all()
        log.info(
            "route set in force",
            extra={**where, "version": route_set.version, "routes": len(route_set.routes)},
        )

    def _notify(self, router: Router) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(router)
        except Exception:
            log.exception("route-change callback failed", extra={"topic": self.topic})

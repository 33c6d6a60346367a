"""The live route set: published to a compacted Kafka topic, watched by every worker.

`publish_route_set` writes a validated set's canonical text (with its version hash) under the key
`routes`; compaction keeps the latest. Each worker runs a `RouteWatcher`: its own consumer, no group
offsets, partition 0 assigned from the beginning, reading forever. A valid record replaces the compiled
router atomically; an invalid one is logged and ignored, so the set in force stays in force.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
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
from confluent_kafka.admin import AdminClient, NewTopic

from common.errors import RefineryError
from refinery.routing.router import Router, compile_router
from refinery.routing.rules import RouteSet, RuleError, dump_route_set, load_route_file, load_route_set

log = logging.getLogger(__name__)

ROUTES_TOPIC = "_refinery_routes"
ROUTES_KEY = b"routes"
RECORD_FORMAT = 1
_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


class RouteStoreError(RefineryError):
    """The routes topic could not be created, written or read (the message says why)."""


def encode_route_record(route_set: RouteSet) -> bytes:
    doc = {"format": RECORD_FORMAT, "version": route_set.version, "routes": route_set.canonical_text}
    return json.dumps(doc, sort_keys=True).encode()


def decode_route_record(value: bytes | None) -> RouteSet:
    """The route set in a routes-topic record value; RuleError when it is not a valid one."""
    if not value:
        raise RuleError("routes record is empty")
    try:
        doc = json.loads(value)
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise RuleError(f"routes record is not JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != RECORD_FORMAT
        or not isinstance(doc.get("routes"), str)
    ):
        raise RuleError(f"routes record is not a format-{RECORD_FORMAT} route set document")
    route_set = load_route_set(doc["routes"])
    if doc.get("version") != route_set.version:
        raise RuleError(
            f"routes record says version {doc.get('version')!r} but its text hashes to {route_set.version}"
        )
    return route_set


def ensure_routes_topic(
    client_config: Mapping[str, Any],
    topic: str = ROUTES_TOPIC,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create the compacted single-partition routes topic unless it exists."""
    admin = AdminClient(dict(client_config))
    try:
        existing = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        if existing is not None and existing.error is None and existing.partitions:
            return
        futures = admin.create_topics(
            [NewTopic(topic, 1, replication_factor, config=dict(_TOPIC_CONFIG))], operation_timeout=timeout_s
        )
        futures[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0]
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise RouteStoreError(f"could not create routes topic {topic!r}: {err}") from None


def publish_route_set(
    client_config: Mapping[str, Any], topic: str, route_set: RouteSet, *, timeout_s: float = 30.0
) -> None:
    """Validate `route_set` again from its canonical text (what workers will load) and publish it."""
    checked = load_route_set(dump_route_set(route_set))
    ensure_routes_topic(client_config, topic, timeout_s=timeout_s)
    producer = Producer({**client_config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    producer.produce(topic, key=ROUTES_KEY, value=encode_route_record(checked), on_delivery=on_delivery)
    if producer.flush(timeout_s) > 0:
        raise RouteStoreError(
            f"route set {checked.version} not confirmed by the broker within {timeout_s:.0f}s"
        )
    if failures:
        raise RouteStoreError(f"could not publish route set {checked.version} to {topic!r}: {failures[0]}")
    log.info(
        "published route set",
        extra={"topic": topic, "version": checked.version, "routes": len(checked.routes)},
    )


def apply_routes_file(client_config: Mapping[str, Any], topic: str, path: str | Path) -> RouteSet:
    """Load and validate a route file (RuleError says what to fix), then publish it; return the set."""
    route_set = load_route_file(path)
    publish_route_set(client_config, topic, route_set)
    return route_set


def show_routes(
    client_config: Mapping[str, Any], topic: str = ROUTES_TOPIC, *, timeout_s: float = 15.0
) -> str:
    """The route set currently published on `topic`, as canonical YAML with its version."""
    with RouteWatcher(client_config, topic) as watcher:
        if not watcher.wait_ready(timeout_s):
            raise RouteStoreError(f"could not read routes topic {topic!r} within {timeout_s:.0f}s")
        router = watcher.current()
    if router is None:
        return f"# no route set has been published to {topic!r}\n"
    return (
        f"# route set version {router.route_set.version} (from {topic!r})\n{router.route_set.canonical_text}"
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
        if msg.key() != ROUTES_KEY:
            log.warning(
                "ignoring routes-topic record with unexpected key", extra={**where, "key": repr(msg.key())}
            )
            return
        try:
            route_set = decode_route_record(msg.value())
        except RuleError as exc:
            log.error(
                "ignoring invalid route set; the set in force stays", extra={**where, "error": str(exc)}
            )
            return
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

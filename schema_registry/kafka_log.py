"""The registry's durable log: a compacted one-partition Kafka topic, read into a SchemaStore.

A background thread tails the schemas topic (and the small coordination topic that remembers the highest
schema id ever handed out) and applies every record to the store. Writers produce a record and then wait
until the reader has applied it, so an answer is only sent once the state it describes is visible.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common.client_errors import AUTH_ERRORS
from common.kafka_admin import wait_writable
from schema_registry.contexts import DEFAULT_CONTEXT
from schema_registry.errors import ErrorCode, StoreError
from schema_registry.store import SchemaStore

log = logging.getLogger(__name__)

MAX_ID_KEY = b"max-schema-id"  # the default context's; a named context's is b"max-schema-id:.ctx"
# Replication and min.insync.replicas are the cluster's defaults (replication_factor=-1 below): one dev
# broker gets 1/1, a production cluster what its operators set (e.g. 3/2), as Confluent's registry does.
COMPACTED = {"cleanup.policy": "compact"}
IDLE_WAIT_S = 0.2  # the reader's longest wait for a record (then it notes its positions)
MAX_BATCH = 500
LIST_SLICE_S = 1.0  # how often the start-up's metadata request looks for refused credentials


def ensure_topics(client_config: dict[str, Any], topics: Sequence[str], *, timeout: float = 30.0) -> None:
    """Create the one-partition compacted topics that do not exist yet ("already exists" is fine).
    Refused credentials end it at once (StoreError saying so) rather than after `timeout`."""
    refused: list[KafkaError] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in AUTH_ERRORS:
            refused.append(err)

    config: dict[str, Any] = {**client_config, "error_cb": on_error}
    admin = AdminClient(config)
    existing = _list_topics(admin, timeout, refused)
    for topic in topics:
        if topic in existing and len(existing[topic].partitions) != 1:
            raise StoreError(
                f"topic {topic!r} has {len(existing[topic].partitions)} partitions; "
                "the registry needs exactly one"
            )
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=-1, config=COMPACTED) for t in missing],
        request_timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StoreError(f"cannot create topic {topic!r}: {exc.args[0].str()}") from exc
    # before the first write: a partition whose leader has not created its log yet can lose an idempotent
    # producer's first records without an error (common.kafka_admin)
    not_writable = wait_writable(admin, missing, deadline, timeout)
    if not_writable:
        raise StoreError(str(next(iter(not_writable.values()))))


def _list_topics(admin: AdminClient, timeout: float, refused: list[KafkaError]) -> dict[str, Any]:
    """The cluster's topics, asked in short slices so that an authentication failure reported
    meanwhile (librdkafka retries it until the request's timeout) ends the wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(LIST_SLICE_S, max(deadline - time.monotonic(), 0.1))).topics
        except KafkaException:
            admin.poll(0)  # serves error_cb
            if refused:
                raise StoreError(f"Kafka refused the registry's credentials: {refused[0].str()}") from None
            if time.monotonic() >= deadline:
                raise


class KafkaLog:
    def __init__(
        self,
        client_config: dict[str, Any],
        topic: str,
        coordination_topic: str,
        store: SchemaStore,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self.coordination_topic = coordination_topic
        self.store = store
        self.timeout_s = timeout_s
        self._config = dict(client_config)
        self._applied: dict[str, int] = {topic: -1, coordination_topic: -1}
        self._applied_changed = threading.Condition()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._producer: Producer | None = None
        self._offsets: Consumer | None = None
        self._offsets_lock = threading.Lock()
        self._queries_started = 0
        self._last_query: tuple[int, dict[str, int]] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the topics if needed, then read them to the end before returning."""
        ensure_topics(self._config, [self.topic, self.coordination_topic], timeout=self.timeout_s)
        self._offsets = Consumer({**self._config, "group.id": f"registry-offsets-{uuid.uuid4().hex}"})
        self._producer = Producer({**self._config, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"registry-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 50,
            }
        )
        consumer.assign(
            [TopicPartition(t, 0, OFFSET_BEGINNING) for t in (self.topic, self.coordination_topic)]
        )
        self._reader = threading.Thread(target=self._read_forever, args=(consumer,), name="schemas-reader")
        self._reader.daemon = True
        self._reader.start()
        self.catch_up(timeout=self.timeout_s)
        log.info("schemas topic read", extra={"topic": self.topic, "records": self.store.records_applied})

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._producer is not None:
            self._producer.flush(5)
        if self._offsets is not None:
            self._offsets.close()

    def _read_forever(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                batch = self._next_batch(consumer)
                if not batch:
                    self._note_positions(consumer)
                    continue
                for msg in batch:
                    if msg.error() is not None:
                        log.warning("schemas topic read error", extra={"error": str(msg.error())})
                        continue
                    if msg.topic() == self.topic:
                        self.store.apply(msg.key(), msg.value())
                    elif (msg.key() or b"").startswith(MAX_ID_KEY) and msg.value():
                        context = (msg.key() or b"")[len(MAX_ID_KEY) + 1 :].decode() or DEFAULT_CONTEXT
                        self.store.note_id(int(msg.value() or b"0"), context)
                    with self._applied_changed:
                        self._applied[msg.topic() or ""] = msg.offset() or 0
                with self._applied_changed:
                    self._applied_changed.notify_all()
        finally:
            consumer.close()

    @staticmethod
    def _next_batch(consumer: Consumer) -> list[Any]:
        """The records there are, as soon as there is one: `poll` returns with the first record (or after
        IDLE_WAIT_S without one), then `consume(timeout=0)` takes whatever else has arrived.

        Not `consume(500, timeout)` alone: librdkafka's batch consume returns only once it holds 500
        records or the timeout has passed, so every write waited the whole timeout to be read back."""
        first = consumer.poll(IDLE_WAIT_S)
        if first is None:
            return []
        return [first, *consumer.consume(num_messages=MAX_BATCH - 1, timeout=0)]

    def _note_positions(self, consumer: Consumer) -> None:
        """When idle, count offsets the fetcher skipped (compacted away, transaction markers) as read."""
        positions = consumer.position([TopicPartition(t, 0) for t in self._applied])
        with self._applied_changed:
            for tp in positions:
                if tp.offset >= 0 and tp.offset - 1 > self._applied[tp.topic]:
                    self._applied[tp.topic] = tp.offset - 1
            self._applied_changed.notify_all()

    # --- reading ------------------------------------------------------------------------------------

    def _end_offsets(self) -> dict[str, int]:
        """The end offset of each topic, as of some moment after this call began.

        Concurrent callers share queries: whoever waited for the lock while another query ran only needs
        a query that started after it arrived, and one queued behind it answers all of them at once."""
        arrived_after = self._queries_started
        with self._offsets_lock:
            if self._last_query is not None and self._last_query[0] > arrived_after:
                return self._last_query[1]
            self._queries_started += 1
            number = self._queries_started
            ends = self._query_end_offsets()
            self._last_query = (number, ends)
            return ends

    def _query_end_offsets(self) -> dict[str, int]:
        """Ask the broker; retried briefly (a topic just created has no leader yet). Under _offsets_lock."""
        assert self._offsets is not None, "KafkaLog.start() first"
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return {
                    t: self._offsets.get_watermark_offsets(TopicPartition(t, 0), timeout=self.timeout_s)[1]
                    for t in self._applied
                }
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise StoreError(f"cannot read the end of the schemas topic: {exc}") from exc
                time.sleep(0.2)

    def catch_up(self, timeout: float | None = None) -> None:
        """Wait until every record written so far (by anyone) is applied to the store."""
        ends = self._end_offsets()
        deadline = time.monotonic() + (timeout or self.timeout_s)
        with self._applied_changed:
            while any(self._applied[t] < end - 1 for t, end in ends.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    raise StoreError(
                        f"timed out reading the schemas topic {self.topic!r} to its end",
                        ErrorCode.OPERATION_TIMEOUT,
                    )
                self._applied_changed.wait(remaining)

    def _wait_applied(self, topic: str, offset: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        with self._applied_changed:
            while self._applied[topic] < offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError("timed out waiting to read back a write", ErrorCode.OPERATION_TIMEOUT)
                self._applied_changed.wait(remaining)

    # --- writing ------------------------------------------------------------------------------------

    def write(self, records: Sequence[tuple[bytes, bytes | None]], *, topic: str | None = None) -> None:
        """Produce the records in order and return once the reader has applied the last one."""
        assert self._producer is not None, "KafkaLog.start() first"
        topic = topic or self.topic
        outcome: list[tuple[KafkaError | None, int]] = []

        def delivered(err: KafkaError | None, msg: Any) -> None:
            outcome.append((err, msg.offset() if err is None else -1))

        for key, value in records:
            self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
        remaining = self._producer.flush(self.timeout_s)
        errors = [err for err, _ in outcome if err is not None]
        if remaining or errors or len(outcome) < len(records):
            reason = errors[0].str() if errors else "delivery timed out"
            raise StoreError(f"could not write to the schemas topic {topic!r}: {reason}")
        self._wait_applied(topic, max(offset for _, offset in outcome))

    def remember_max_id(self, schema_id: int, context: str = DEFAULT_CONTEXT) -> None:
        """Record the highest id handed out in a context, so hard deletes never make an id reusable
        after a restart."""
        key = MAX_ID_KEY if context == DEFAULT_CONTEXT else MAX_ID_KEY + b":" + context.encode()
        self.write([(key, str(schema_id).encode())], topic=self.coordination_topic)

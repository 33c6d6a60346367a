"""The producer SDK: validate a payload against its registered schema, wrap it in the envelope, send it.

    with Producer(ProducerSettings(env="prod", source="telemetry")) as producer:
        handle = producer.send("1234", "match_started", 1, {"match_id": "m-1", ...}, key="m-1")
        handle.result()  # Delivered(message_id, topic, partition, offset), or raises DeliveryError

What `send` does, in order (each step raises before anything is queued):
1. looks up the schema of (title, category, version) in the registry (cached; subject rule in
   `producers.schemas`) and refuses with SchemaNotRegisteredError when there is none;
2. validates and serializes the payload by the registered type (`producers.codecs`), naming the bad field;
3. builds the envelope with a fresh UUIDv7 message id (or the caller's `message_id`, a UUID string),
   timestamp (or the caller's `produced_at_ms`) and producer identity (or the caller's `producer`, for
   a proxy writing on behalf of its clients), and mirrors its metadata into `ce_*` headers;
4. makes sure the ingest topic `{env}.{source}.ingest.all-v1` exists (created once, on demand);
5. queues the record and returns a `DeliveryHandle` (`producers.delivery`), resolved when the broker
   acknowledges the record: `result()`, `exception()`, `done()`, `add_done_callback()` as on a Future.

Message ids: pass `message_id=` to keep an id the event already has (a client's event id, a retried
record's id), so dedup routes drop the second copy. It must be a UUID string: any form `uuid.UUID`
reads, written in canonical lowercase text (the contract wants UUIDv7; other versions are accepted but
sort by nothing). `produced_at_ms=` sets the envelope's time (Unix ms, default now). An invalid one
raises InvalidRecordError naming the argument before anything is queued; `OutgoingRecord.message_id`
and `DeliveryHandle.message_id` give the id used.

Keys: the record key is `key` when given; otherwise the first non-empty payload field named in
`ProducerSettings.key_fields` (default `match_id`, then `player_id`); otherwise none. Records with equal
keys go to the same partition (murmur2, like the Java client), so one match's events stay in order.

Delivery: idempotent (`enable.idempotence`, `acks=all`), compressed, batched by `linger_ms`. Delivery
reports resolve handles and call `on_delivery` callbacks (keep those short) on the thread that serves
them: a thread that is sending serves them itself every `SENDS_PER_SERVE` records (as a hand-written
confluent-kafka loop calls `poll(0)`), and a background poll thread serves them whenever no sender has
for `SENDER_ACTIVE_S`. Handing each report to a second thread cost more than the report: the poll
thread takes the GIL back from the busy sender once per report. A callback may call `send` (which then
waits for room without serving reports) but not `flush`, `poll` or `close` (ProducerUsageError:
confluent-kafka aborts the process when its poll re-enters from a callback). Every failed delivery
reaches the handle (DeliveryError), the callback if any, the metrics and the log; none is dropped
silently. Back-pressure: when the local queue is full,
`send` serves delivery reports and retries for up to `block_timeout_s`, then raises QueueFullError (a
BufferError).
`close()` flushes and raises FlushTimeoutError if records are still undelivered.

Client errors: librdkafka's `error_cb` records the last broker-side problem (authentication refused,
all brokers down, a fatal idempotence error); `check_connection()`, QueueFullError and DeliveryError
name it, so wrong credentials read "authentication failed for user 'x' at host:port: ..." rather than
a bare transport failure, and an unreachable cluster reads "Kafka at host:port is unreachable: connection
refused" (`common.kafka_log`). librdkafka's own log goes to the `librdkafka` logger, deduplicated, at
WARNING at most. Counts go to `producers.metrics` (Prometheus) and `stats`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.schema_registry import Schema
from google.protobuf.message import Message as ProtobufMessage

from common import contract
from common.client_errors import ClientErrors
from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.envelope import FORMAT_BY_NAME, encode_envelope, make_envelope, new_message_id, now_ms
from common.headers import Headers, record_headers
from common.kafka_admin import TopicCreationError, TopicEnsurer
from common.kafka_log import describe_failure, error_text, kafka_unreachable, with_log
from common.limits import MAX_RECORD_BYTES, record_size
from common.topics import ingest_topic
from producers.codecs import encode_payload
from producers.delivery import Delivered as Delivered  # re-exported: callers import it from here
from producers.delivery import (
    DeliveryCallback,
    DeliveryHandle,
    DeliveryReports,
    ProducerStats,
    in_delivery_callback,
)
from producers.errors import (
    BrokerUnavailableError,
    DeliveryError,
    FlushTimeoutError,
    InvalidRecordError,
    ProducerClosedError,
    ProducerUsageError,
    QueueFullError,
    SchemaNotRegisteredError,
)
from producers.kafka_config import kafka_config_error, normalize_overrides, producer_config
from producers.metrics import ProducerMetrics, default_metrics
from producers.schemas import ResolvedSchema, SchemaCatalog

log = logging.getLogger(__name__)

SENDS_PER_SERVE = 100  # a sending thread serves the delivery reports waiting every this many records
SENDER_ACTIVE_S = 0.005  # the poll thread leaves reports to senders that served them this recently


@dataclass(slots=True)
class OutgoingRecord:
    """A validated, enveloped record ready to queue. Treat it as read-only (not frozen only because a
    frozen dataclass costs ~1 us more to build, once per record)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    message_id: str
    timestamp_ms: int
    labels: tuple[str, str, str] = ("", "", "")  # (env, source, category), for the sent counter


def default_producer_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


class Producer:
    """A thin, owned wrapper over `confluent_kafka.Producer` that speaks Refinery envelopes."""

    def __init__(
        self,
        settings: ProducerSettings | None = None,
        *,
        kafka: KafkaSettings | None = None,
        registry: RegistrySettings | None = None,
        catalog: SchemaCatalog | None = None,
        kafka_overrides: Mapping[str, Any] | None = None,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        self.settings = settings or ProducerSettings()
        kafka = kafka or KafkaSettings()
        self.producer_id = self.settings.producer_id or default_producer_id()
        self.metrics = metrics or default_metrics()
        self._lock = self.metrics.lock
        self.stats = ProducerStats()
        self._client_errors = ClientErrors(kafka)
        self._reports = DeliveryReports(self.stats, self.metrics, self._client_errors)
        self._bootstrap = kafka.bootstrap_servers
        conf = with_log(producer_config(kafka, self.settings, kafka_overrides))
        conf["error_cb"] = self._client_errors.on_error
        try:
            self._producer = confluent_kafka.Producer(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise kafka_config_error(exc) from None
        self._owns_catalog = catalog is None
        self.catalog = catalog or SchemaCatalog.from_settings(
            registry, timeout_s=self.settings.registry_timeout_s
        )
        admin_conf = {**kafka.client_config(), **normalize_overrides(self.settings.kafka_overrides)}
        admin_conf.update(normalize_overrides(kafka_overrides or {}))
        for producer_only in ("linger.ms", "compression.type", "enable.idempotence", "acks", "partitioner"):
            admin_conf.pop(producer_only, None)
        self._topics = TopicEnsurer(
            with_log(admin_conf),
            partitions=self.settings.partitions,
            replication_factor=self.settings.replication_factor,
            allowed_envs=self.settings.allowed_envs,
            allowed_sources=self.settings.allowed_sources,
            timeout_s=self.settings.registry_timeout_s * 3,
        )
        self._ready_topics: dict[tuple[str, str], str] = {}  # (env, source) -> ingest topic that exists
        self._served_at = 0.0  # monotonic time a sending thread last served delivery reports
        self.metrics.watch_queue(self)
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="refinery-producer-poll", daemon=True)
        self._poller.start()

    # --- public API ---------------------------------------------------------------------------------
    def send(
        self,
        title: str,
        category: str,
        version: int,
        payload: Any,
        *,
        key: str | bytes | None = None,
        attributes: Mapping[str, str] | None = None,
        on_delivery: DeliveryCallback | None = None,
        env: str | None = None,
        source: str | None = None,
        schema: Schema | None = None,
        message_id: str | None = None,
        produced_at_ms: int | None = None,
        producer: str | None = None,
    ) -> DeliveryHandle:
        """Validate, envelope and queue one payload; see the module docstring. `env`/`source` override
        the configured ones for this record; `schema` is only used with `auto_register` (development);
        `message_id` (a UUID string) and `produced_at_ms` replace the fresh id and the current time;
        `producer` the envelope's producer identity (default `producer_id`), for a proxy such as the
        HTTP gateway writing on behalf of its clients."""
        record = self.prepare(
            title,
            category,
            version,
            payload,
            key=key,
            attributes=attributes,
            env=env,
            source=source,
            schema=schema,
            message_id=message_id,
            produced_at_ms=produced_at_ms,
            producer=producer,
        )
        handle = self.try_submit(record, on_delivery=on_delivery)
        return handle if handle is not None else self.submit(record, on_delivery=on_delivery)

    def register(
        self, title: str, category: str, schema_str: str, schema_type: str, *, version: int | None = None
    ) -> ResolvedSchema:
        """Register a schema for (title, category) (see `SchemaCatalog.register`)."""
        return self.catalog.register(title, category, schema_str, schema_type, version=version)

    def prepare(
        self,
        title: str,
        category: str,
        version: int,
        payload: Any,
        *,
        key: str | bytes | None = None,
        attributes: Mapping[str, str] | None = None,
        env: str | None = None,
        source: str | None = None,
        schema: Schema | None = None,
        message_id: str | None = None,
        produced_at_ms: int | None = None,
        producer: str | None = None,
    ) -> OutgoingRecord:
        """Steps 1-4 of `send`: everything that can fail because of the input, before queueing. Takes
        the same arguments as `send` (but no callback); the record's `message_id` is the one used."""
        try:  # inline, not helper calls: this runs once per record
            if self._closed:
                raise ProducerClosedError("this producer is closed")
            message_id = new_message_id() if message_id is None else checked_message_id(message_id)
            if produced_at_ms is None:
                produced_at_ms = now_ms()
            elif type(produced_at_ms) is not int or not 0 <= produced_at_ms < _MAX_TIME_MS:
                raise InvalidRecordError(
                    f"produced_at_ms must be Unix milliseconds (an int from 0 to {_MAX_TIME_MS - 1}), "
                    f"not {produced_at_ms!r:.60}",
                    field="produced_at_ms",
                )
            resolved = self._resolve(title, category, version, schema)
            payload_format, payload_bytes = encode_payload(payload, resolved)
            env = env or self.settings.env
            source = source or self.settings.source
            envelope = make_envelope(
                env=env,
                source=source,
                title=title,
                category=category,
                version=version,
                schema_id=resolved.schema_id,
                payload_format=payload_format,
                payload=payload_bytes,
                producer=producer or self.producer_id,
                attributes=_check_attributes(attributes) if attributes else None,
                message_id=message_id,
                produced_at_ms=produced_at_ms,
            )
            topic = self._ready_topics.get((env, source)) or self.ensure_topic(env, source)
            record_key, value = self._key(key, payload), encode_envelope(envelope)
            headers = record_headers(
                env, source, title, category, envelope.metadata.version, resolved.schema_id,
                FORMAT_BY_NAME[payload_format],
                producer or self.producer_id, message_id, produced_at_ms, attributes,
            )  # fmt: skip
            # The headers mirror the metadata in the value: they add at most ~512 bytes plus ~16 per
            # attribute beyond its size, so only records near half the limit are counted exactly.
            rough = 2 * len(value) + len(record_key or b"") + 16 * len(attributes or ()) + 512
            if rough > MAX_RECORD_BYTES and record_size(record_key, value, headers) > MAX_RECORD_BYTES:
                raise InvalidRecordError(
                    f"record would be {record_size(record_key, value, headers)} bytes (payload "
                    f"{len(payload_bytes)}, with envelope, key, headers and framing); the contract's "
                    f"limit is {MAX_RECORD_BYTES} (common/limits.py)",
                    field="record",
                )
            return OutgoingRecord(
                topic, record_key, value, headers, message_id, produced_at_ms, (env, source, category)
            )
        except Exception as exc:
            self.metrics.count_refused(exc)
            raise

    def submit(
        self,
        record: OutgoingRecord,
        *,
        on_delivery: DeliveryCallback | None = None,
        block_timeout_s: float | None = None,
    ) -> DeliveryHandle:
        """Queue a prepared record; on a full queue wait up to `block_timeout_s` (default from settings)."""
        block = self.settings.block_timeout_s if block_timeout_s is None else block_timeout_s
        deadline: float | None = None
        while (handle := self.try_submit(record, on_delivery=on_delivery)) is None:
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + block
            if now >= deadline:
                raise self.queue_full_error(block)
            self._serve_reports(0.05)
        return handle

    def try_submit(
        self, record: OutgoingRecord, *, on_delivery: DeliveryCallback | None = None
    ) -> DeliveryHandle | None:
        """Queue a prepared record if the local queue has room now; None (nothing counted) if it is full."""
        try:
            if self._closed:
                raise ProducerClosedError("this producer is closed")
            # The handle is the delivery callback itself: one small object alive per queued record.
            handle = DeliveryHandle(self._reports, record.message_id, record.labels, on_delivery)
            self._producer.produce(
                record.topic,
                record.value,
                record.key,
                headers=record.headers,
                timestamp=record.timestamp_ms,
                on_delivery=handle,
            )
        except BufferError:
            return None
        except KafkaException as exc:
            self.metrics.count_refused(exc)
            raise DeliveryError(exc.args[0], message_id=record.message_id, topic=record.topic) from None
        except ProducerClosedError as exc:
            self.metrics.count_refused(exc)
            raise
        with self._lock:
            self.stats.queued += 1
            serve = self.stats.queued % SENDS_PER_SERVE == 0
        if serve:
            self._serve_reports(0)
        return handle

    def queue_full_error(self, waited_s: float) -> QueueFullError:
        """The error for a send that found the queue full for `waited_s` (counted as a refusal)."""
        self.metrics.count_refused(QueueFullError())
        cause = self.broker_problem()
        return QueueFullError(
            f"send queue full for {waited_s:.1f}s ({len(self._producer)} records waiting); "
            + (f"last broker error: {cause}" if cause else "the broker is slow or unreachable")
        )

    def broker_problem(self) -> str | None:
        """The last authentication or broker error librdkafka reported since the last success, if any."""
        return self._client_errors.problem

    def check_connection(self, timeout: float = 5.0) -> None:
        """BrokerUnavailableError unless the cluster answers a metadata request within `timeout`."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            cause = self.broker_problem() or error_text(exc)
            raise BrokerUnavailableError(
                describe_failure(self._bootstrap, f"no answer within {timeout:.0f}s ({cause})")
            ) from None
        self._client_errors.clear()

    def poll(self, timeout: float = 0) -> int:
        """Serve delivery reports now (senders and the background thread do this anyway)."""
        self._refuse_in_callback("poll")
        return self._serve_reports(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is delivered or failed; FlushTimeoutError if time runs out."""
        self._refuse_in_callback("flush")
        if self._closed and len(self._producer) == 0:
            return  # nothing can be queued any more (and a released handle refuses flush)
        limit = self.settings.delivery_timeout_ms / 1000 + 5 if timeout is None else timeout
        remaining = self._producer.flush(limit)
        if remaining:
            raise FlushTimeoutError(
                f"{remaining} records still undelivered after {limit:.1f}s", remaining=remaining
            )

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop. Safe to call twice. Raises FlushTimeoutError if records stay undelivered."""
        if self._closed:
            return
        self._refuse_in_callback("close")
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            self._stop.set()
            self._poller.join()
            self.metrics.unwatch_queue(self)
            if len(self._producer) == 0:
                # Release librdkafka's handle now (its threads would otherwise keep reconnecting until
                # garbage collection); with records still queued the flush above has already raised.
                self._producer.close()
            if self._owns_catalog:
                self.catalog.close()
            if self.stats.failed:
                log.error("producer closed with failed deliveries", extra={"failed": self.stats.failed})

    def __len__(self) -> int:
        """Records queued locally and not yet acknowledged."""
        return len(self._producer)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ensure_topic(self, env: str | None = None, source: str | None = None) -> str:
        """The ingest topic of (env, source) (default: the configured ones), created on first use and
        remembered once it exists; `prepare` calls it, and may block here up to the topic-creation
        timeout, so callers on an event loop call it first in a thread. InvalidInputError for an env or
        source the settings do not allow (even with Kafka down); BrokerUnavailableError at once when
        no bootstrap address accepts a TCP connection (one line naming address and cause)."""
        env = env or self.settings.env
        source = source or self.settings.source
        known = self._ready_topics.get((env, source))
        if known is not None:
            return known
        topic = ingest_topic(env, source)
        self._topics.check_allowed(topic)  # a refused env or source says so even with Kafka down
        unreachable = kafka_unreachable(self._bootstrap, timeout_s=min(2.0, self.settings.registry_timeout_s))
        if unreachable is not None:
            raise BrokerUnavailableError(unreachable)
        try:
            self._topics.ensure(topic)
        except TopicCreationError as exc:
            if exc.error is not None:  # the broker refused it: its reason, as is
                raise
            # no answer in time, or its partitions not yet writable: Kafka is not (fully) there
            cause = self.broker_problem() or str(exc)
            raise BrokerUnavailableError(
                describe_failure(self._bootstrap, f"did not confirm topic {topic!r} in time ({cause})")
            ) from None
        self._ready_topics[(env, source)] = topic
        return topic

    # --- internals ----------------------------------------------------------------------------------
    def _resolve(self, title: str, category: str, version: int, schema: Schema | None) -> ResolvedSchema:
        try:
            return self.catalog.resolve(title, category, version)
        except SchemaNotRegisteredError:
            if not (self.settings.auto_register and schema is not None and schema.schema_str):
                raise
        log.warning(
            "auto-registering a schema (development only)",
            extra={"title": title, "category": category, "version": version},
        )
        self.catalog.register(
            title, category, schema.schema_str, schema.schema_type or "AVRO", version=version
        )
        return self.catalog.resolve(title, category, version)

    def _key(self, key: str | bytes | None, payload: Any) -> bytes | None:
        if key is not None:
            return key.encode() if isinstance(key, str) else bytes(key)
        for name in self.settings.key_fields:
            if isinstance(payload, Mapping):
                value = payload.get(name)
            elif isinstance(payload, ProtobufMessage) and name in payload.DESCRIPTOR.fields_by_name:
                value = getattr(payload, name)
            else:
                return None
            if value not in (None, "", b""):
                return value if isinstance(value, bytes) else str(value).encode()
        return None

    def _serve_reports(self, timeout: float) -> int:
        """Serve waiting delivery reports on this thread (librdkafka's poll, up to `timeout` s for the
        first); inside a caller's delivery callback only wait, since poll must not re-enter there."""
        if in_delivery_callback():
            if timeout > 0:
                time.sleep(timeout)
            return 0
        self._served_at = time.monotonic()
        return self._producer.poll(timeout)

    def _refuse_in_callback(self, call: str) -> None:
        if in_delivery_callback():
            raise ProducerUsageError(
                f"{call}() cannot be called from a delivery callback: it would serve delivery reports "
                "inside one (confluent-kafka aborts the process then); call it after send() returns"
            )

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._served_at < SENDER_ACTIVE_S:
                self._stop.wait(SENDER_ACTIVE_S)  # a sender serves them: stay off its GIL
            else:
                self._producer.poll(0.1)


_MAX_TIME_MS = 2**63  # the envelope's produced_at_ms is a uint64; Kafka's timestamp an int64
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked_message_id(message_id: object) -> str:
    """`message_id` as canonical lowercase UUID text; InvalidRecordError (field `message_id`) unless it
    is a UUID string (any form `uuid.UUID` reads: braces, URN, upper case, no hyphens)."""
    if type(message_id) is str and _CANONICAL_UUID.fullmatch(message_id):
        return message_id  # the usual case, without building a UUID object
    try:
        if not isinstance(message_id, str):
            raise TypeError
        return str(uuid.UUID(message_id))
    except (TypeError, ValueError):
        raise InvalidRecordError(
            f"message_id must be a UUID string (e.g. a UUIDv7 such as {new_message_id()!r}), "
            f"not {message_id!r:.60}",
            field="message_id",
        ) from None


_CHECKED_NAMES: set[str] = set()  # attribute names that follow the contract (a producer uses a few)
_CHECKED_NAMES_MAX = 4096


def _check_attributes(attributes: Mapping[str, str]) -> Mapping[str, str]:
    """`attributes` itself (the envelope copies it) once every name follows the contract and every value
    is a string. A name is matched against the contract once, then remembered."""
    for name, value in attributes.items():
        if name not in _CHECKED_NAMES:
            problem = contract.attribute_name_problem(name)
            if problem is not None:
                raise InvalidRecordError(problem, field="attributes")
            if len(_CHECKED_NAMES) >= _CHECKED_NAMES_MAX:
                _CHECKED_NAMES.clear()
            _CHECKED_NAMES.add(name)
        if not isinstance(value, str):
            raise InvalidRecordError(f"attribute {name!r}: the value must be a string", field="attributes")
    return attributes

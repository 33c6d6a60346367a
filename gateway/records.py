"""Events -> Kafka records, through the producer SDK's public API (no copy of its steps):

1. off the event loop, before the batch is built: the schema of (key's title, category, version) with
   `SchemaCatalog.resolve` (`producers.schemas`, the SDK's cached look-up and subject rule; a schema
   that is not registered is remembered for `negative_ttl_s`) and the ingest topic with
   `Producer.ensure_topic` (created on first use);
2. on the loop, per event: `Producer.prepare`, the steps `Producer.send` takes (validation and
   serialization naming the bad field, attribute names, the envelope and its `ce_*` headers, the key
   rule, the size limit), with the client's event id as `message_id` (a fresh UUIDv7 when it has none)
   so a retried event keeps its id, the request's time as `produced_at_ms` and `gateway:<key id>` as
   the envelope's producer;
3. `Producer.try_submit` (idempotent, acks=all), in `gateway.service`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.schema_registry.error import SchemaRegistryError
from google.protobuf.message import DecodeError

from common.errors import InvalidInputError
from common.kafka_admin import TopicCreationError
from gateway.events import Event, EventRejected
from producers.errors import (
    BrokerUnavailableError,
    InvalidRecordError,
    PayloadValidationError,
    ProducerClosedError,
    RegistryUnavailableError,
    SchemaNotRegisteredError,
)
from producers.producer import OutgoingRecord, Producer
from producers.schemas import ResolvedSchema, subject_for

SchemaKey = tuple[str, str, int]  # title, category, version
# The event field for each `InvalidRecordError.field` of the SDK (a record over the size limit is the
# payload's doing: the rest of the event is small).
EVENT_FIELDS = {"message_id": "id", "record": "payload", "attributes": "attributes"}


class EventFailed(Exception):
    """An event that could not be sent for a reason on our side (registry or Kafka): retry it later."""


@dataclass(frozen=True)
class _Missing:
    error: EventRejected
    until: float


class RecordBuilder:
    def __init__(self, producer: Producer, *, negative_ttl_s: float = 5.0) -> None:
        self.producer = producer
        self.negative_ttl_s = negative_ttl_s
        self._schemas: dict[SchemaKey, ResolvedSchema | _Missing] = {}
        self._topics: dict[tuple[str, str], str | Exception] = {}

    # --- off the event loop: registry look-ups and topic creation -------------------------------------
    async def preload(
        self, title: str, env: str, events: Iterable[Event], sources: Iterable[str]
    ) -> dict[tuple[object, ...], Exception]:
        """Resolve every schema and ingest topic the events need that is not known yet (in a thread);
        return the failures on our side by schema key or (env, source): their events fail (retryable),
        the others go on."""
        now = time.monotonic()
        wanted = {(title, e.category, e.version) for e in events}
        missing = [k for k in wanted if not self._fresh(k, now)]
        topics = [(env, s) for s in set(sources) if (env, s) not in self._topics]
        if not missing and not topics:
            return {}
        return await asyncio.to_thread(self._load, missing, topics)

    def _fresh(self, key: SchemaKey, now: float) -> bool:
        found = self._schemas.get(key)
        return found is not None and (not isinstance(found, _Missing) or found.until > now)

    def _load(
        self, keys: list[SchemaKey], topics: list[tuple[str, str]]
    ) -> dict[tuple[object, ...], Exception]:
        failures: dict[tuple[object, ...], Exception] = {}
        for key in keys:
            try:
                self._schemas[key] = self.producer.catalog.resolve(*key)
            except SchemaNotRegisteredError as exc:
                self._schemas[key] = _Missing(
                    self._not_registered(key, exc), time.monotonic() + self.negative_ttl_s
                )
            except InvalidInputError as exc:  # an illegal category name: never registrable
                self._schemas[key] = _Missing(EventRejected(str(exc), field="category"), float("inf"))
            except (RegistryUnavailableError, SchemaRegistryError) as exc:
                failures[key] = exc
        for env, source in topics:
            try:
                self._topics[(env, source)] = self.producer.ensure_topic(env, source)
            except (BrokerUnavailableError, TopicCreationError) as exc:
                failures[(env, source)] = exc  # not cached: tried again by the next request
            except InvalidInputError as exc:  # the producer's allowed envs / sources refuse it
                self._topics[(env, source)] = exc
        return failures

    def _not_registered(self, key: SchemaKey, exc: Exception) -> EventRejected:
        title, category, version = key
        try:
            versions = self.producer.catalog.client.get_versions(subject_for(title, category))
        except Exception:  # noqa: BLE001 - only to word the message: not found, or unreachable
            versions = []
        if versions:
            return EventRejected(
                f"category {category!r} of title {title!r} has no version {version} registered "
                f"(registered: {sorted(versions)})",
                field="version",
            )
        return EventRejected(f"{exc}", field="category")

    # --- on the event loop: one record per event -----------------------------------------------------
    def build(
        self, event: Event, *, env: str, title: str, source: str, producer_id: str, now_ms: int
    ) -> OutgoingRecord:
        """The record for a valid event; EventRejected naming the field otherwise, EventFailed when its
        schema or topic could not be loaded."""
        schema = self._schemas.get((title, event.category, event.version))
        topic = self._topics.get((env, source))
        try:
            if schema is None:
                raise EventFailed(f"schema of {event.category!r} v{event.version} not loaded")
            if isinstance(schema, _Missing):
                raise schema.error
            if isinstance(topic, Exception):
                raise EventRejected(str(topic), field="source")
            if topic is None:
                raise EventFailed(f"ingest topic of {env}.{source} not ready")
            payload = _protobuf_payload(event.payload, schema) if event.protobuf else event.payload
        except EventRejected as exc:
            self.producer.metrics.count_refused(exc)  # as the SDK counts its own refusals
            raise
        try:  # prepare counts what it refuses
            return self.producer.prepare(
                title,
                event.category,
                event.version,
                payload,
                key=event.key,
                attributes=event.attributes,
                env=env,
                source=source,
                message_id=event.id,
                produced_at_ms=now_ms,
                producer=producer_id,
            )
        except PayloadValidationError as exc:
            raise EventRejected(str(exc), field=_payload_field(exc.field, schema)) from None
        except InvalidRecordError as exc:
            raise EventRejected(str(exc), field=EVENT_FIELDS.get(exc.field, exc.field)) from None
        except (SchemaNotRegisteredError, ProducerClosedError) as exc:  # schema: resolved above, cached
            raise EventFailed(str(exc)) from None
        except InvalidInputError as exc:  # envelope metadata (e.g. an illegal category name)
            raise EventRejected(str(exc), field="category") from None

    def schema_registered(self, title: str, category: str, version: int) -> bool:
        return isinstance(self._schemas.get((title, category, version)), ResolvedSchema)


def _payload_field(name: str | None, schema: object) -> str:
    """`payload.<field>` for the field the SDK named (an Avro field without its record's full name)."""
    if not name or name.startswith("("):
        return "payload"
    avro = getattr(schema, "avro", None)
    record = avro.get("name") if isinstance(avro, dict) else None
    if record and name.startswith(record + "."):
        name = name[len(record) + 1 :]
    return f"payload.{name}"


def _protobuf_payload(data: bytes, schema: ResolvedSchema) -> object:
    if schema.proto is None:
        raise EventRejected(
            f"payload.protobuf was given but schema id {schema.schema_id} is {schema.schema_type}",
            field="payload.protobuf",
        )
    try:
        return schema.proto.message_class.FromString(data)
    except DecodeError as exc:
        raise EventRejected(
            f"payload.protobuf is not a {schema.proto.message_class.DESCRIPTOR.full_name}: {exc}",
            field="payload.protobuf",
        ) from None

"""Events -> Kafka records, through the producer SDK's own steps (no copy of them):

1. the schema of (key's title, category, version): `SchemaCatalog.resolve` (`producers.schemas`, the
   SDK's cached look-up and subject rule), done off the event loop before the batch is built;
2. validation and serialization: `producers.codecs.encode_payload`, the function `Producer.send` calls,
   so a payload passes or fails here exactly as with the SDK, with the same field named;
3. the envelope and its `ce_*` headers: `common.envelope.make_envelope` and
   `common.headers.metadata_to_headers`, as the SDK builds them, but with the client's event id as the
   message id (a fresh UUIDv7 when it has none) so a retried event keeps its id;
4. the SDK's key rule (`key`, else the payload's match_id / player_id) and its ingest topic
   `{env}.{source}.ingest.all-v1`, created on first use;
5. `Producer.try_submit` (idempotent, acks=all), in `gateway.service`.

Steps 3-4 use private parts of `producers.producer` (`Producer._key`, `Producer._ready_topic` and the
attribute check `_check_attributes`): `Producer.prepare` has no way to take a message id. A
`message_id=` (and `produced_at_ms=`) argument on `Producer.prepare` would let this module call
`prepare` itself; until the SDK has it, this is the one place that reaches inside.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.schema_registry.error import SchemaRegistryError
from google.protobuf.message import DecodeError

from common.envelope import encode_envelope, make_envelope, new_message_id
from common.errors import InvalidInputError
from common.headers import metadata_to_headers
from common.kafka_admin import TopicCreationError
from common.limits import MAX_RECORD_BYTES, record_size
from gateway.events import Event, EventRejected
from producers.codecs import encode_payload
from producers.errors import (
    BrokerUnavailableError,
    PayloadValidationError,
    RegistryUnavailableError,
    SchemaNotRegisteredError,
)
from producers.producer import OutgoingRecord, Producer, _check_attributes
from producers.schemas import ResolvedSchema, subject_for

SchemaKey = tuple[str, str, int]  # title, category, version


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
                self._topics[(env, source)] = self.producer._ready_topic(env, source)
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
        """The record for a valid event; EventRejected naming the field otherwise."""
        sdk = self.producer
        try:
            schema = self._schemas.get((title, event.category, event.version))
            if schema is None:
                raise EventFailed(f"schema of {event.category!r} v{event.version} not loaded")
            if isinstance(schema, _Missing):
                raise schema.error
            topic = self._topics.get((env, source))
            if isinstance(topic, Exception):
                raise EventRejected(str(topic), field="source")
            if topic is None:
                raise EventFailed(f"ingest topic of {env}.{source} not ready")
            if event.attributes:
                try:
                    _check_attributes(event.attributes)  # the SDK's own rule for attribute names
                except InvalidInputError as exc:
                    raise EventRejected(str(exc), field="attributes") from None
            payload = event.payload
            if event.protobuf:
                payload = _protobuf_payload(payload, schema)
            payload_format, data = encode_payload(payload, schema)
            message_id = event.id or new_message_id()
            envelope = make_envelope(
                env=env,
                source=source,
                title=title,
                category=event.category,
                version=event.version,
                schema_id=schema.schema_id,
                payload_format=payload_format,
                payload=data,
                producer=producer_id,
                attributes=event.attributes,
                message_id=message_id,
                produced_at_ms=now_ms,
            )
            value = encode_envelope(envelope)
            headers = metadata_to_headers(envelope.metadata)
            key = sdk._key(event.key, payload)
            size = record_size(key, value, headers)
            if size > MAX_RECORD_BYTES:
                raise EventRejected(
                    f"the event makes a {size:,}-byte record; the limit is {MAX_RECORD_BYTES:,} bytes",
                    field="payload",
                )
            return OutgoingRecord(
                topic, key, value, headers, message_id, now_ms, (env, source, event.category)
            )
        except PayloadValidationError as exc:
            sdk.metrics.count_refused(exc)
            raise EventRejected(str(exc), field=_payload_field(exc.field, schema)) from None
        except EventRejected as exc:
            sdk.metrics.count_refused(exc)
            raise
        except InvalidInputError as exc:  # envelope metadata (e.g. an illegal category name)
            sdk.metrics.count_refused(exc)
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

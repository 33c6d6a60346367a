"""Errors raised by the producer SDK and the analyst tools.

Every one derives from `common.errors.RefineryError`; errors caused by bad input also derive from
ValueError (via InvalidInputError). Where confluent-kafka has a matching type we inherit from it too, so
code written against plain confluent-kafka keeps catching what it expects (quix-streams does the same).
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.serialization import SerializationError

from common.errors import InvalidInputError, RefineryError


class SchemaNotRegisteredError(InvalidInputError):
    """No schema is registered for (title, category, version): register it first (API or CLI)."""


class SchemaVersionError(InvalidInputError):
    """Registering a schema would not give the version the caller asked for."""


class PayloadValidationError(InvalidInputError, SerializationError):
    """A payload does not match its registered schema. `field` names the offending field (path)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidRecordError(InvalidInputError):
    """An argument of `Producer.prepare`/`send` other than the payload is invalid. `field` names it:
    `message_id`, `produced_at_ms`, `attributes`, or `record` for a record over the size limit."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class PayloadDecodeError(InvalidInputError, SerializationError):
    """Payload bytes that cannot be decoded with the schema their envelope names."""


class RegistryUnavailableError(RefineryError):
    """The schema registry could not be reached or answered with a server error."""


class ProducerClosedError(RefineryError):
    """send() was called after close()."""


class ProducerUsageError(RefineryError, RuntimeError):
    """A producer method was called where it cannot run (e.g. `flush()` from a delivery callback)."""


class QueueFullError(RefineryError, BufferError):
    """The local send queue stayed full for the whole configured block time (back-pressure)."""


class FlushTimeoutError(RefineryError):
    """flush()/close() gave up with records still undelivered; `remaining` says how many."""

    def __init__(self, message: str, *, remaining: int) -> None:
        super().__init__(message)
        self.remaining = remaining


class DeliveryError(RefineryError, KafkaException):
    """The broker did not acknowledge a record. `error` is librdkafka's KafkaError; `cause` the last
    client-level problem librdkafka reported (e.g. authentication refused), when there was one."""

    def __init__(self, error: KafkaError, *, message_id: str, topic: str, cause: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.message_id = message_id
        self.topic = topic
        self.cause = cause

    def __str__(self) -> str:
        text = f"record {self.message_id} to {self.topic!r} was not delivered: {self.error.str()}"
        return f"{text} (last broker error: {self.cause})" if self.cause else text


class SchemaRejectedError(InvalidInputError):
    """The registry refused a schema (invalid, or incompatible with the subject's earlier versions)."""


class BrokerUnavailableError(RefineryError):
    """The Kafka cluster did not answer within the timeout."""


class UnknownTopicError(InvalidInputError):
    """A topic the caller named does not exist."""

"""What a failed write means for the record behind it: the error policy of the data plane, as data.

Kafka Connect's `errors.tolerance` / `errors.retry.timeout` / dead-letter settings are the model:
- PERMANENT: Kafka will refuse this record (or this topic) every time. Retrying only repeats the
  failure, so the record's output goes to the DLQ (`output_rejected`) and the rest of the batch goes on.
- TRANSIENT: the cluster is unavailable or slow. The write is retried with bounded backoff; once the
  budget is spent the worker pauses instead of spinning.
- FATAL: the producer instance is unusable (e.g. fenced, idempotence state lost): build a new one, then
  retry like a transient error.
"""

from __future__ import annotations

from enum import Enum

from confluent_kafka import KafkaError


class Outcome(Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    FATAL = "fatal"


# Errors that are about the record or its topic, never about the moment.
PERMANENT_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,  # invalid topic
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError._INVALID_ARG,
        KafkaError._BAD_MSG,
    }
)


def classify(err: KafkaError) -> Outcome:
    """The outcome of one failed write (a delivery report or a produce call)."""
    if err.fatal():
        return Outcome.FATAL
    if err.code() in PERMANENT_CODES:
        return Outcome.PERMANENT
    return Outcome.TRANSIENT


def reason_name(err: KafkaError) -> str:
    """A metric label for an error: librdkafka's name, lower case, without the local `_` prefix."""
    return (err.name() or str(err.code())).lstrip("_").lower()

"""The data plane's Kafka clients and internal topics, built from the worker's settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, Producer

from common.config import WorkerSettings
from common.kafka_admin import TopicEnsurer
from common.topics import validate_kafka_topic
from refinery.worker.metrics import WorkerMetrics

INIT_TRANSACTIONS_TIMEOUT_S = 60


class InternalTopics(TopicEnsurer):
    """Our own topics (DLQ, dedup changelog) do not follow the derived-topic naming convention."""

    def check_allowed(self, topic: str) -> None:
        validate_kafka_topic(topic)


def ensure_internal_topics(settings: WorkerSettings, client_config: Mapping[str, Any]) -> None:
    """The DLQ and the dedup changelog (time-retained: every id within the window matters)."""
    InternalTopics(
        client_config,
        partitions=settings.derived_partitions,
        replication_factor=settings.internal_replication,
    ).ensure(settings.dlq_topic)
    retention_ms = str(int(max(settings.dedup_window_s * 3, 3600) * 1000))
    InternalTopics(
        client_config,
        partitions=1,
        replication_factor=settings.internal_replication,
        topic_config={"cleanup.policy": "delete", "retention.ms": retention_ms},
    ).ensure(settings.dedup_changelog)


def derived_topics(settings: WorkerSettings, client_config: Mapping[str, Any]) -> TopicEnsurer:
    return TopicEnsurer(
        client_config,
        partitions_for=settings.partitions_of_derived,
        replication_factor=settings.derived_replication,
        allowed_envs=settings.derived_allowed_envs,
    )


def producer_factory(
    settings: WorkerSettings,
    client_config: Mapping[str, Any],
    transactional_id: str | None,
    on_error: Callable[[Any], None] | None = None,
) -> Callable[[], Producer]:
    """Builds the data plane's producer (again, after a fatal error). `message.max.bytes` is the same
    figure the guard checks records against, so whatever the guard passes can be forwarded."""
    s = settings

    def build() -> Producer:
        conf: dict[str, Any] = {
            **client_config,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_bytes,
            "batch.num.messages": s.batch_num_messages,
            "compression.type": s.compression,
            "queue.buffering.max.messages": s.queue_max_messages,
            "message.max.bytes": s.max_record_bytes,
            "message.timeout.ms": s.message_timeout_ms,
            # at-least-once counts a batch's acknowledgements (`success_reports`), or else completes
            # batches when the producer has nothing outstanding (`refinery.worker.inflight`);
            # exactly-once needs failures only: its flush returns when everything is acknowledged
            "delivery.report.only.error": transactional_id is not None or not s.success_reports,
        }
        if on_error is not None:
            conf["error_cb"] = on_error  # client-level errors (all brokers down, authentication...)
        if transactional_id is not None:
            conf["transactional.id"] = transactional_id
            conf["transaction.timeout.ms"] = s.transaction_timeout_ms
            # librdkafka: a message may not outlive the transaction it belongs to
            conf["message.timeout.ms"] = min(s.message_timeout_ms, s.transaction_timeout_ms)
        producer = Producer(conf)
        if transactional_id is not None:
            producer.init_transactions(INIT_TRANSACTIONS_TIMEOUT_S)
        return producer

    return build


def build_consumer(
    settings: WorkerSettings,
    client_config: Mapping[str, Any],
    metrics: WorkerMetrics,
    *,
    client_id: str,
    on_assign: Callable[[Consumer, list[Any]], None],
    on_revoke: Callable[[Consumer, list[Any]], None],
    on_commit: Callable[[Any, list[Any]], None],
    on_error: Callable[[Any], None],
) -> Consumer:
    s = settings
    consumer = Consumer(
        {
            **client_config,
            "group.id": s.group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": s.metadata_refresh_ms,
            "session.timeout.ms": s.session_timeout_ms,
            "heartbeat.interval.ms": max(s.session_timeout_ms // 3, 100),
            "statistics.interval.ms": int(s.stats_interval_s * 1000),
            "stats_cb": metrics.apply_librdkafka_stats,
            "on_commit": on_commit,
            "error_cb": on_error,  # client-level errors (all brokers down...): served by consume()
            "fetch.min.bytes": s.fetch_min_bytes,
            "fetch.wait.max.ms": s.fetch_wait_max_ms,
            "fetch.queue.backoff.ms": s.fetch_queue_backoff_ms,
            "queued.min.messages": s.queued_min_messages,
            "queued.max.messages.kbytes": s.queued_max_kbytes,
            "max.partition.fetch.bytes": s.max_partition_fetch_bytes,
        }
    )
    pattern = s.ingest_pattern if s.ingest_pattern.startswith("^") else "^" + s.ingest_pattern
    consumer.subscribe([pattern], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    return consumer

"""The data plane's Kafka clients and internal topics, built from the worker's settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from common.config import WorkerSettings
from common.kafka_admin import TopicEnsurer
from common.topics import validate_kafka_topic
from refinery.worker import direct
from refinery.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)
INIT_TRANSACTIONS_TIMEOUT_S = 60


class InternalTopics(TopicEnsurer):
    """Our own topics (DLQ, dedup changelog) do not follow the derived-topic naming convention."""

    def check_allowed(self, topic: str) -> None:
        validate_kafka_topic(topic)


def ensure_internal_topics(settings: WorkerSettings, client_config: Mapping[str, Any]) -> None:
    """The DLQ, the dedup changelog (time-retained: every id within the window matters) and, exactly
    once, the progress topic (`refinery.worker.progress`)."""
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
    if settings.exactly_once:  # the last committed position per input partition: compacted, small
        InternalTopics(
            client_config,
            partitions=1,
            replication_factor=settings.internal_replication,
            topic_config={
                "cleanup.policy": "compact", "segment.bytes": str(4 * 1024 * 1024),
                "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1",
            },
        ).ensure(settings.progress_log)  # fmt: skip


def derived_topics(settings: WorkerSettings, client_config: Mapping[str, Any]) -> TopicEnsurer:
    return TopicEnsurer(
        client_config,
        partitions_for=settings.partitions_of_derived,
        replication_factor=settings.derived_replication,
        allowed_envs=settings.derived_allowed_envs,
    )


class ProducerFactory:
    """Builds the data plane's producer (again, after a fatal error). `message.max.bytes` is the same
    figure the guard checks records against, so whatever the guard passes can be forwarded.
    `counts_acks`: the last producer built carries the acknowledgement interceptor (`count_acks`)."""

    def __init__(
        self,
        settings: WorkerSettings,
        client_config: Mapping[str, Any],
        transactional_id: str | None,
        on_error: Callable[[Any], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client_config = client_config
        self._transactional_id = transactional_id
        self._on_error = on_error
        self.counts_acks = False

    def config(self) -> dict[str, Any]:
        s, transactional_id = self._settings, self._transactional_id
        conf: dict[str, Any] = {
            **self._client_config,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_bytes,
            "batch.num.messages": s.batch_num_messages,
            "compression.type": s.compression,
            "queue.buffering.max.messages": s.queue_max_messages,
            "message.max.bytes": s.max_record_bytes,
            "message.timeout.ms": s.message_timeout_ms,
            # at-least-once counts a batch's acknowledgements (`count_acks`, or `success_reports`), or else
            # completes batches when the producer has nothing outstanding (`refinery.worker.inflight`);
            # exactly-once needs failures only: its flush returns when everything is acknowledged
            "delivery.report.only.error": transactional_id is not None or not s.success_reports,
        }
        if self._on_error is not None:
            conf["error_cb"] = self._on_error  # client-level errors (all brokers down, authentication...)
        if transactional_id is not None:
            conf["transactional.id"] = transactional_id
            conf["transaction.timeout.ms"] = s.transaction_timeout_ms
            # librdkafka: a message may not outlive the transaction it belongs to
            conf["message.timeout.ms"] = min(s.message_timeout_ms, s.transaction_timeout_ms)
        return conf

    def wants_ack_counting(self) -> bool:
        """At-least-once with failure-only reports (a report per record counts them already)."""
        s = self._settings
        return s.count_acks and s.direct_headers and self._transactional_id is None and not s.success_reports

    def __call__(self) -> Producer:
        conf = self.config()
        plugin = direct.ack_plugin() if self.wants_ack_counting() else None
        producer: Producer | None = None
        if plugin is not None:
            try:
                producer = Producer({**conf, "plugin.library.paths": plugin})
            except KafkaException as exc:  # e.g. a librdkafka built without plugin support
                log.warning("acknowledgements are not counted per record (batches complete when the "
                            "producer drains): %s", exc)  # fmt: skip
        self.counts_acks = producer is not None
        if producer is None:
            producer = Producer(conf)
        if self._transactional_id is not None:
            producer.init_transactions(INIT_TRANSACTIONS_TIMEOUT_S)
        return producer


def producer_factory(
    settings: WorkerSettings,
    client_config: Mapping[str, Any],
    transactional_id: str | None,
    on_error: Callable[[Any], None] | None = None,
) -> ProducerFactory:
    return ProducerFactory(settings, client_config, transactional_id, on_error)


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

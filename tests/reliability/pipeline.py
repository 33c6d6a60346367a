"""Helpers for reliability runs through a real `refinery worker`: waiting until it has caught up, and
reconciling everything it wrote with `refinery.reconcile.reconciler`."""

from __future__ import annotations

import re
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from refinery.reconcile.reconciler import Reconciler, ReconcileReport, list_topics, reconcile_cluster
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from tests.support import wait_for


def group_lag(client_config: dict[str, Any], group: str, topics: list[str]) -> int:
    """Records on `topics` not yet committed by consumer group `group`."""
    consumer = Consumer({**client_config, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [TopicPartition(t, p) for t in topics for p in metadata.topics[t].partitions]
        committed = consumer.committed(partitions, timeout=10)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def wait_caught_up(
    client_config: dict[str, Any], group: str, topics: list[str], timeout: float = 180
) -> None:
    wait_for(lambda: group_lag(client_config, group, topics) == 0, timeout=timeout, interval=1.0,
             what=f"group {group} to commit everything on {topics}")  # fmt: skip


def reconcile_worker_output(
    client_config: dict[str, Any],
    routes: str,
    *,
    name: str,
    dlq_topic: str,
    **reconciler_options: Any,
) -> ReconcileReport:
    """Reconcile this test's ingest topics (every topic `*.{name}.ingest.all-v1`) with every other topic
    that carries `name` (so records misrouted anywhere in the test's namespace are found) and the DLQ."""
    ingest = list_topics(client_config, rf"^[a-z]+\.{re.escape(name)}\.ingest\.all-v1$")
    reconciler = Reconciler(compile_router(load_route_set(routes)), **reconciler_options)
    return reconcile_cluster(
        client_config,
        reconciler,
        ingest_topics=ingest,
        dlq_topic=dlq_topic,
        derived_pattern=rf"^[a-z]+\.{re.escape(name)}\.",
    )


def unique_group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

"""One writer among registry replicas, chosen through Kafka.

Every replica joins one consumer group subscribed to the one-partition coordination topic; the member
that gets the partition assigned is the leader and the only one that writes. When it stops (or dies and
its session times out) the group rebalances and another replica takes over. Each member puts its own
URL in its Kafka `client.id`, so followers find the leader by describing the group.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "refinery-registry "


class LeaderElection:
    def __init__(
        self,
        client_config: dict[str, Any],
        coordination_topic: str,
        own_url: str,
        *,
        session_timeout_ms: int = 6000,
        eligible: bool = True,
    ) -> None:
        self.own_url = own_url.rstrip("/")
        self.group_id = f"{coordination_topic}-leader"
        self._topic = coordination_topic
        self._config = dict(client_config)
        self._session_timeout_ms = session_timeout_ms
        self._eligible = eligible
        self._is_leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._admin = AdminClient(self._config)
        self._cached: tuple[float, str | None] = (0.0, None)

    @property
    def is_leader(self) -> bool:
        return self._is_leader.is_set()

    def start(self) -> None:
        if not self._eligible:
            return
        consumer = Consumer(
            {
                **self._config,
                "group.id": self.group_id,
                "client.id": CLIENT_ID_PREFIX + self.own_url,
                "enable.auto.commit": False,
                "session.timeout.ms": self._session_timeout_ms,
                "heartbeat.interval.ms": max(500, self._session_timeout_ms // 6),
                # Sticky + cooperative: a replica joining (or restarting) never moves the partition away
                # from the current leader, so writes are not bounced with 50004 while replicas come and go.
                "partition.assignment.strategy": "cooperative-sticky",
            }
        )
        consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="leader-election", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                consumer.poll(0.2)  # keeps the membership alive; the records themselves are not used here
        finally:
            self._is_leader.clear()
            consumer.close()  # leaves the group, so another replica takes over at once

    def _on_assign(self, _consumer: Consumer, partitions: list[Any]) -> None:
        if partitions:
            self._is_leader.set()
            log.info("became the schema registry leader", extra={"url": self.own_url})

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        if not partitions:  # an incremental (cooperative) rebalance that takes nothing from us
            return
        if self._is_leader.is_set():
            log.info("no longer the schema registry leader", extra={"url": self.own_url})
        self._is_leader.clear()

    def leader_url(self, *, max_age_s: float = 1.0) -> str | None:
        """The URL of the current leader (ours when we lead), or None while there is none."""
        if self.is_leader:
            return self.own_url
        fetched_at, url = self._cached
        if url is not None and time.monotonic() - fetched_at < max_age_s:
            return url
        try:
            group = self._admin.describe_consumer_groups([self.group_id], request_timeout=5)[self.group_id]
            description = group.result(timeout=5)
        except KafkaException as exc:
            log.warning("cannot describe the leader group", extra={"error": str(exc)})
            return None
        url = None
        for member in description.members:
            if member.assignment.topic_partitions and member.client_id.startswith(CLIENT_ID_PREFIX):
                url = member.client_id[len(CLIENT_ID_PREFIX) :]
        self._cached = (time.monotonic(), url)
        return url

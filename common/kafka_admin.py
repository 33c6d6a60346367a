"""Create topics on demand: once, race-safe, cached, and only with names we allow.

Producers create their ingest topics and the refinery its derived topics through `TopicEnsurer`. Several
processes may race to create the same topic; "already exists" counts as success. Names must follow the
convention (`common.topics`) and, when allowlists are configured, use an allowed env and source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from common.config import BROKER_DEFAULT_REPLICATION
from common.errors import RefineryError, TopicNameError
from common.topics import parse_topic


class TopicCreationError(RefineryError):
    """The broker refused to create a topic (the message carries the broker's reason; `error` is the
    broker's `KafkaError`, when there is one, so callers can tell a refusal from a timeout)."""

    def __init__(self, message: str, error: KafkaError | None = None) -> None:
        super().__init__(message)
        self.error = error


class TopicNotAllowedError(TopicNameError):
    """A valid topic name whose env or source is not in the configured allowlist."""


class TopicEnsurer:
    """Make sure topics exist before records are produced to them."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        *,
        partitions: int = 12,
        replication_factor: int = BROKER_DEFAULT_REPLICATION,
        topic_config: Mapping[str, str] | None = None,
        allowed_envs: Collection[str] | None = None,
        allowed_sources: Collection[str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._admin = AdminClient(dict(client_config))
        self._partitions = partitions
        self._replication = replication_factor
        self._topic_config = dict(topic_config or {})
        self._allowed_envs = frozenset(allowed_envs) if allowed_envs else None
        self._allowed_sources = frozenset(allowed_sources) if allowed_sources else None
        self._timeout = timeout_s
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def check_allowed(self, topic: str) -> None:
        """Raise TopicNameError / TopicNotAllowedError unless `topic` may be created."""
        name = parse_topic(topic)
        if self._allowed_envs is not None and name.env not in self._allowed_envs:
            raise TopicNotAllowedError(
                f"topic {topic!r}: env {name.env!r} is not allowed (allowed: {sorted(self._allowed_envs)})",
                part="env",
            )
        if self._allowed_sources is not None and name.source not in self._allowed_sources:
            raise TopicNotAllowedError(
                f"topic {topic!r}: source {name.source!r} is not allowed "
                f"(allowed: {sorted(self._allowed_sources)})",
                part="source",
            )

    def ensure(self, topic: str) -> None:
        self.ensure_many((topic,))

    def ensure_many(self, topics: Iterable[str]) -> None:
        """Create the topics not yet known to exist (one request); raise the first failure."""
        failed = self.create_missing(topics)
        if failed:
            raise next(iter(failed.values()))

    def create_missing(self, topics: Iterable[str]) -> dict[str, RefineryError]:
        """Create those of `topics` not yet known to exist, all in one CreateTopics request, and return
        the ones that failed with why: TopicNameError (a name we may not create, checked first, nothing
        sent for it) or TopicCreationError (the broker refused it, or did not answer within the timeout).
        Every other topic is known to exist afterwards; cheap (a set lookup) once they all are."""
        failed: dict[str, RefineryError] = {}
        missing: list[str] = []
        for topic in dict.fromkeys(topics):
            if topic in self._known:
                continue
            try:
                self.check_allowed(topic)
            except TopicNameError as exc:
                failed[topic] = exc
                continue
            missing.append(topic)
        if not missing:
            return failed
        with self._lock:
            missing = [t for t in missing if t not in self._known]
            if not missing:
                return failed
            new = [
                NewTopic(t, self._partitions, self._replication, config=dict(self._topic_config))
                for t in missing
            ]
            futures = self._admin.create_topics(new, operation_timeout=self._timeout)
            deadline = time.monotonic() + self._timeout  # one answer for all: wait for it once
            for topic, future in futures.items():
                error = _outcome(topic, future, max(0.0, deadline - time.monotonic()), self._timeout)
                if error is None:
                    self._known.add(topic)
                else:
                    failed[topic] = error
        return failed

    def forget(self, topic: str) -> None:
        """Drop a topic from the cache (e.g. after it was deleted) so the next ensure re-creates it."""
        with self._lock:
            self._known.discard(topic)


COMPACTED_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


def ensure_compacted_topic(
    client_config: Mapping[str, Any],
    topic: str,
    *,
    replication_factor: int = BROKER_DEFAULT_REPLICATION,
    timeout_s: float = 30.0,
) -> None:
    """Create a compacted one-partition topic (a small keyed store: route sets, API keys) unless it
    exists, replicated as the broker's `default.replication.factor` unless told otherwise. Raises
    TopicCreationError when Kafka refuses it or does not answer within `timeout_s`."""
    admin = AdminClient(dict(client_config))
    try:
        existing = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        if existing is not None and existing.error is None and existing.partitions:
            return
        futures = admin.create_topics(
            [NewTopic(topic, 1, replication_factor, config=dict(COMPACTED_TOPIC_CONFIG))],
            operation_timeout=timeout_s,
        )
    except KafkaException as exc:
        refused = _refusal(topic, exc)
        if refused is None:
            return
        raise refused from None
    error = _outcome(topic, futures[topic], timeout_s, timeout_s)
    if error is not None:
        raise error


def _outcome(topic: str, future: Any, timeout_s: float, said_timeout_s: float) -> TopicCreationError | None:
    """What one topic's CreateTopics answer means: None when the topic exists now."""
    try:
        future.result(timeout=timeout_s)
    except TimeoutError:  # no answer (broker away or stalled): a creation that may work later
        return TopicCreationError(
            f"could not create topic {topic!r}: Kafka did not answer within {said_timeout_s:g} s"
        )
    except KafkaException as exc:
        return _refusal(topic, exc)
    return None


def _refusal(topic: str, exc: KafkaException) -> TopicCreationError | None:
    """A creation's KafkaException as a TopicCreationError; None when the topic already exists."""
    err = exc.args[0]
    if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
        return None
    return TopicCreationError(
        f"could not create topic {topic!r}: {err}", err if isinstance(err, KafkaError) else None
    )

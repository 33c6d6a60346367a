"""Create topics on demand: once, race-safe, cached, and only with names we allow.

Producers create their ingest topics and the refinery its derived topics through `TopicEnsurer`. Several
processes may race to create the same topic; "already exists" counts as success. Names must follow the
convention (`common.topics`) and, when allowlists are configured, use an allowed env and source.

A topic counts as there only once every partition answers at its leader (`wait_writable`), not when
CreateTopics answers: the broker lists a new partition's leader before that leader has created its log,
and an idempotent producer writing at once can then lose records without any error. Its first request
for the partition fails (no log yet) and goes back to the queue; a later request, sent meanwhile, reaches
the log first and is accepted although its sequence does not start at 0 (the broker holds no state for a
producer it has never seen on that partition); librdkafka takes that success to mean the failed request
was written after all (its "implicit ack") and reports those records delivered. Seen in
`test_broker_killed_and_restarted_mid_stream…`: the first two records of a derived partition missing,
the partition's first batch at sequence 2, no error anywhere (docs/reliability.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from common.config import BROKER_DEFAULT_REPLICATION
from common.errors import RefineryError, TopicNameError
from common.topics import parse_topic

log = logging.getLogger(__name__)
WRITABLE_RETRY_S = 0.05  # between looks at partitions that are not there yet
WRITABLE_ROUND_TIMEOUT_S = 5.0  # one look's request timeout (the caller's deadline bounds the whole wait)
# what a partition answers while its leader has not created it yet (or the metadata has not caught up)
_NOT_THERE_YET = frozenset({
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REPLICA_NOT_AVAILABLE, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC,
    KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN, KafkaError.KAFKA_STORAGE_ERROR, KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.OFFSET_NOT_AVAILABLE,
})  # fmt: skip


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
        partitions_for: Callable[[str], int] | None = None,
        replication_factor: int = BROKER_DEFAULT_REPLICATION,
        topic_config: Mapping[str, str] | None = None,
        allowed_envs: Collection[str] | None = None,
        allowed_sources: Collection[str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._admin = AdminClient(dict(client_config))
        # a topic's partition count at creation: `partitions_for(topic)` when given, else `partitions`
        self._partitions_for = partitions_for or (lambda _topic: partitions)
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
        Every other topic exists afterwards, each of its partitions answering at its leader
        (`wait_writable`); cheap (a set lookup) once they all are."""
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
                NewTopic(t, self._partitions_for(t), self._replication, config=dict(self._topic_config))
                for t in missing
            ]
            futures = self._admin.create_topics(new, operation_timeout=self._timeout)
            deadline = time.monotonic() + self._timeout  # one answer for all: wait for it once
            there: list[str] = []
            for topic, future in futures.items():
                error = _outcome(topic, future, max(0.0, deadline - time.monotonic()), self._timeout)
                if error is None:
                    there.append(topic)
                else:
                    failed[topic] = error
            not_writable = wait_writable(self._admin, there, deadline, self._timeout)
            failed.update(not_writable)
            self._known.update(t for t in there if t not in not_writable)
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
    deadline = time.monotonic() + timeout_s
    error = _outcome(topic, futures[topic], timeout_s, timeout_s)
    if error is None:
        error = wait_writable(admin, [topic], deadline, timeout_s).get(topic)
    if error is not None:
        raise error


def wait_writable(
    admin: AdminClient, topics: Collection[str], deadline: float, said_timeout_s: float
) -> dict[str, TopicCreationError]:
    """Wait until every partition of `topics` (just created, or found existing) answers a ListOffsets at
    its leader, which it does only once the leader holds the partition's log, i.e. once a write to it is
    taken in order (see the module's docstring for the loss this prevents). Looks again every
    `WRITABLE_RETRY_S` while they answer "not there yet"; a topic that answers anything else (e.g. not
    authorised to describe) is not waited for. Returns, by topic, those still not writable at `deadline`
    (monotonic), as a TopicCreationError without a broker error: a transient failure."""
    undescribed = set(topics)  # partition counts first: a topic found existing may have any count
    waiting: set[TopicPartition] = set()
    last_error: dict[str, str] = {}
    while undescribed or waiting:
        timeout = min(WRITABLE_ROUND_TIMEOUT_S, deadline - time.monotonic())
        if timeout <= 0:
            break
        if undescribed:
            described = admin.describe_topics(TopicCollection(sorted(undescribed)), request_timeout=timeout)
            for topic, future in described.items():
                why = _not_there_yet(future, timeout)
                if isinstance(why, str):
                    last_error[topic] = why
                    continue
                undescribed.discard(topic)
                if why is None:
                    waiting.update(TopicPartition(topic, p.id) for p in future.result().partitions)
        timeout = min(WRITABLE_ROUND_TIMEOUT_S, deadline - time.monotonic())  # the describe took some
        if waiting and timeout > 0:
            probes = admin.list_offsets({tp: OffsetSpec.latest() for tp in waiting}, request_timeout=timeout)
            for tp, future in probes.items():
                why = _not_there_yet(future, timeout)
                if isinstance(why, str):
                    last_error[tp.topic] = why
                else:
                    waiting.discard(tp)
        if undescribed or waiting:
            time.sleep(WRITABLE_RETRY_S)
    late = undescribed | {tp.topic for tp in waiting}
    return {
        topic: TopicCreationError(
            f"topic {topic!r} was created but its partitions did not become writable within "
            f"{said_timeout_s:g} s ({last_error.get(topic, 'no answer')})"
        )
        for topic in sorted(late)
    }


def _not_there_yet(future: Any, timeout_s: float) -> str | bool | None:
    """None: answered. A reason (str): not there yet, look again. True: another error, do not wait."""
    try:
        future.result(timeout=timeout_s)
    except TimeoutError:
        return "no answer"
    except KafkaException as exc:
        err = exc.args[0]
        if isinstance(err, KafkaError) and err.code() in _NOT_THERE_YET:
            return err.str()
        log.warning(
            "cannot tell whether a new topic is writable; not waiting for it", extra={"error": str(err)}
        )
        return True
    return None


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

"""Prometheus metrics of the producer SDK, counted in plain dicts and exposed at scrape time.

A prometheus-client `inc()` per record would cost more than the record's share of librdkafka's work, so
producers count into this collector's dicts (one lock, one dict increment per record) and `collect()`
turns them into counter families when Prometheus scrapes. Every producer of a process shares
`default_metrics()` (registered in prometheus-client's default registry, so an application that already
serves `/metrics` exports them too) unless it is given a `ProducerMetrics` of its own (tests).

    refinery_producer_records_sent_total{env,source,category}   records the broker acknowledged
    refinery_producer_delivery_errors_total{reason}            records the broker did not (librdkafka code)
    refinery_producer_send_refused_total{reason}               send() refused before queueing
    refinery_producer_queue_length                             records queued locally, not yet acknowledged
                                                               (librdkafka's count: includes pending events)
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Iterator, Sized
from typing import Any

from confluent_kafka import KafkaException
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from common.errors import InvalidInputError
from producers.errors import (
    BrokerUnavailableError,
    PayloadValidationError,
    ProducerClosedError,
    QueueFullError,
    RegistryUnavailableError,
    SchemaNotRegisteredError,
)

SENT = "refinery_producer_records_sent"
DELIVERY_ERRORS = "refinery_producer_delivery_errors"
SEND_REFUSED = "refinery_producer_send_refused"
QUEUE_LENGTH = "refinery_producer_queue_length"
# send() refusals by exception type, first match wins (the reason label of send_refused_total).
REFUSALS: tuple[tuple[type[BaseException], str], ...] = (
    (SchemaNotRegisteredError, "unregistered_schema"),
    (PayloadValidationError, "invalid_payload"),
    (InvalidInputError, "invalid_input"),
    (QueueFullError, "queue_full"),
    (ProducerClosedError, "closed"),
    (BrokerUnavailableError, "broker_unavailable"),
    (RegistryUnavailableError, "registry_unavailable"),
    (KafkaException, "kafka_error"),
)


class ProducerMetrics(Collector):
    """Counts shared by the producers of one process. `lock` guards every count (and producers' stats)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.lock = threading.Lock()
        self.sent: Counter[tuple[str, str, str]] = Counter()  # (env, source, category)
        self.delivery_errors: Counter[str] = Counter()  # by reason
        self.refused: Counter[str] = Counter()  # by reason
        self._queues: weakref.WeakSet[Any] = weakref.WeakSet()  # live producers (Sized)
        self.registry.register(self)

    def watch_queue(self, producer: Sized) -> None:
        """Add `producer`'s local queue to `refinery_producer_queue_length` while it is alive."""
        self._queues.add(producer)

    def unwatch_queue(self, producer: Sized) -> None:
        self._queues.discard(producer)

    def count_refused(self, exc: BaseException) -> None:
        """Count a send() refused with `exc` (reason from REFUSALS, else "other")."""
        reason = next((name for kind, name in REFUSALS if isinstance(exc, kind)), "other")
        with self.lock:
            self.refused[reason] += 1

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Names only (so registering does not call `collect`, which reads live producers)."""
        yield CounterMetricFamily(SENT, "", labels=["env", "source", "category"])
        yield CounterMetricFamily(DELIVERY_ERRORS, "", labels=["reason"])
        yield CounterMetricFamily(SEND_REFUSED, "", labels=["reason"])
        yield GaugeMetricFamily(QUEUE_LENGTH, "")

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self.lock:
            sent, errors, refused = dict(self.sent), dict(self.delivery_errors), dict(self.refused)
        family = CounterMetricFamily(
            SENT, "Records the broker acknowledged", labels=["env", "source", "category"]
        )
        for labels, value in sent.items():
            family.add_metric(list(labels), value)
        yield family
        for name, doc, counts in (
            (DELIVERY_ERRORS, "Records the broker did not acknowledge, by librdkafka error", errors),
            (SEND_REFUSED, "send() calls refused before queueing, by reason", refused),
        ):
            family = CounterMetricFamily(name, doc, labels=["reason"])
            for reason, value in counts.items():
                family.add_metric([reason], value)
            yield family
        queued = sum(len(producer) for producer in list(self._queues))
        yield GaugeMetricFamily(QUEUE_LENGTH, "Records queued locally, not yet acknowledged", value=queued)


_default: ProducerMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> ProducerMetrics:
    """The process-wide metrics, registered in prometheus-client's default registry on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ProducerMetrics(REGISTRY)
        return _default

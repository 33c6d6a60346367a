"""Prometheus metrics of one gateway process (its own CollectorRegistry, which also holds the SDK's
producer metrics of the gateway's producer), served at `/metrics`.

    refinery_gateway_requests_total{status}                 POST /v1/events answers by HTTP status
    refinery_gateway_refusals_total{reason}                 requests refused whole (unauthorized, ...)
    refinery_gateway_events_total{outcome,env,title,category} events accepted / rejected / failed
    refinery_gateway_batch_events                           events per request (histogram)
    refinery_gateway_request_seconds                        POST /v1/events latency (histogram)
    refinery_gateway_inflight_events                        events sent to Kafka, not yet acknowledged
    refinery_gateway_api_keys                               active API keys this process knows
    refinery_gateway_kafka_up                               1 while Kafka answers the gateway's producer

`category` is the event's category when its schema is registered, else `unregistered` (clients choose
categories: an unbounded label would let them create series at will); titles and envs come from keys.
With several server processes, each scrape sees the process that answered it: run one process per
container where Prometheus scrapes (compose does).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNREGISTERED = "unregistered"
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "refinery_gateway_requests", "POST /v1/events answers by HTTP status", ["status"], registry=r
        )
        self.refusals = Counter(
            "refinery_gateway_refusals", "Requests refused whole, by reason", ["reason"], registry=r
        )
        self.events = Counter(
            "refinery_gateway_events",
            "Events by outcome (accepted: Kafka acknowledged; rejected: invalid; failed: not delivered)",
            ["outcome", "env", "title", "category"],
            registry=r,
        )
        self.batch_events = Histogram(
            "refinery_gateway_batch_events", "Events per request", buckets=BATCH_BUCKETS, registry=r
        )
        self.latency = Histogram(
            "refinery_gateway_request_seconds",
            "POST /v1/events latency, body read to response",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "refinery_gateway_inflight_events", "Events sent to Kafka and not yet acknowledged", registry=r
        )
        self.keys = Gauge("refinery_gateway_api_keys", "Active API keys this process knows", registry=r)
        self.kafka_up = Gauge("refinery_gateway_kafka_up", "1 while Kafka answers the producer", registry=r)
        self._children: dict[tuple[str, ...], Any] = {}

    def count_events(self, outcome: str, env: str, title: str, category: str, n: int = 1) -> None:
        key = (outcome, env, title, category)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.events.labels(*key)
        child.inc(n)

    def count_request(self, status: int, seconds: float | None = None) -> None:
        key = ("status", str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(str(status))
        child.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def refuse(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

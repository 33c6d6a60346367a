"""Prometheus metrics of one registry app (its own CollectorRegistry, so several apps can coexist)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RegistryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "registry_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "registry_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.registrations = Counter(
            "registry_registrations",
            "Schema registrations by outcome (new, existing, rejected)",
            ["outcome"],
            registry=self.registry,
        )
        self.compatibility_failures = Counter(
            "registry_compatibility_failures",
            "Schemas found incompatible (register or check)",
            registry=self.registry,
        )
        self.forwarded = Counter(
            "registry_forwarded_writes", "Writes forwarded to the leader", ["status"], registry=self.registry
        )
        self.is_leader = Gauge(
            "registry_is_leader", "1 while this instance is the writer", registry=self.registry
        )
        # labelled children by label values: `labels()` takes a lock and builds a tuple on every call
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((method, route, status))
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._request_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

"""Worker metrics: Prometheus series for /metrics and live per-route rates for /routes and /stats.

The data plane counts into plain dicts while it processes a batch (`BatchCounts`) and hands them over
once per batch (`WorkerMetrics.apply`): a prometheus-client `inc()` per record would cost more than the
routing itself. The per-record latency histogram is kept the same way (`BulkHistogram`: bucket counts
updated in bulk, exposed through a custom collector).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter as CountDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class BatchCounts:
    """What one batch did, counted in plain dicts on the hot path."""

    records_in: CountDict[str] = field(default_factory=CountDict)  # by ingest topic
    routed: CountDict[str] = field(default_factory=CountDict)  # by route
    deduplicated: CountDict[str] = field(default_factory=CountDict)  # by route
    dlq: CountDict[str] = field(default_factory=CountDict)  # by reason
    origin: CountDict[tuple[bytes, bytes, bytes]] = field(default_factory=CountDict)  # (env, title, category)
    unmatched: int = 0
    topics_created: int = 0


class BulkHistogram(Collector):
    """A histogram whose observations arrive many at a time (one lock per batch, not per value)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = list(buckets)
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        bounds, local = self._bounds, [0] * len(self._counts)
        total = 0.0
        for value in values:
            local[bisect.bisect_left(bounds, value)] += 1
            total += value
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, local, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=total)


class RateTracker:
    """Per-key rates (records/s) computed from cumulative totals at each `tick`."""

    def __init__(self) -> None:
        self.totals: CountDict[str] = CountDict()
        self.rates: dict[str, float] = {}
        self._last: CountDict[str] = CountDict()
        self._last_at = time.monotonic()
        self._lock = threading.Lock()

    def add(self, counts: CountDict[str]) -> None:
        with self._lock:
            self.totals.update(counts)

    def tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._last_at, 1e-6)
            self.rates = {k: (v - self._last[k]) / elapsed for k, v in self.totals.items()}
            self._last, self._last_at = CountDict(self.totals), now

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {k: {"total": float(v), "per_second": round(self.rates.get(k, 0.0), 3)}
                    for k, v in self.totals.items()}  # fmt: skip


class WorkerMetrics:
    """Every series the worker exports. Metric names are part of the dashboards' contract."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "refinery_records_in", "Records consumed from ingest topics", ["topic"], registry=r
        )
        self.routed = Counter(
            "refinery_records_routed", "Records written to derived topics", ["route"], registry=r
        )
        self.deduplicated = Counter(
            "refinery_records_deduplicated", "Route outputs skipped: message id already seen", ["route"],
            registry=r,
        )  # fmt: skip
        self.dlq = Counter(
            "refinery_records_dlq", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.unmatched = Counter("refinery_records_unmatched", "Valid records no route matched", registry=r)
        self.by_origin = Counter(
            "refinery_records_by_origin", "Valid records consumed, by envelope env/title/category",
            ["env", "title", "category"], registry=r,
        )  # fmt: skip
        self.batches = Counter("refinery_batches", "Batches processed, by outcome", ["outcome"], registry=r)
        self.batch_duration = Histogram(
            "refinery_batch_duration_seconds", "Time to route, write and commit one batch", registry=r,
            buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.record_latency = BulkHistogram(
            "refinery_record_latency_seconds",
            "From a record's ingest timestamp until its outputs were acknowledged",
            LATENCY_BUCKETS,
        )
        r.register(self.record_latency)
        self.consumer_lag = Gauge(
            "refinery_consumer_lag", "Records not yet consumed, per ingest partition", ["topic", "partition"],
            registry=r,
        )  # fmt: skip
        self.dedup_ids = Gauge("refinery_dedup_ids", "Message ids held by the dedup store", registry=r)
        self.topics_created = Counter(
            "refinery_topics_created", "Derived topics ensured on demand", registry=r
        )
        self.registry_unreachable = Counter(
            "refinery_registry_unreachable", "Records let through because the registry was unreachable",
            registry=r,
        )  # fmt: skip
        self.registry_denied = Counter(
            "refinery_registry_denied",
            "Schema-id checks the registry refused (401/403): the worker pauses, it never lets them through",
            registry=r,
        )
        self.routes_active = Gauge("refinery_routes_active", "Routes in the live route set", registry=r)
        # --- health of the data plane (refinery.worker.health) ---
        self.state = Gauge(
            "refinery_worker_state",
            "1 for the data plane's current state (starting, running, retrying, paused, stopped)",
            ["state"], registry=r,
        )  # fmt: skip
        self.ready = Gauge(
            "refinery_worker_ready", "1 when the worker is ready (GET /ready is 200)", registry=r
        )
        self.last_progress = Gauge(
            "refinery_worker_last_progress_timestamp_seconds",
            "Unix time of the data plane's last progress (a batch completed, or idle with nothing to read)",
            registry=r,
        )
        self.retries = Counter(
            "refinery_worker_retries",
            "Writes retried after a transient error, by reason (the librdkafka error name)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.pauses = Counter(
            "refinery_worker_pauses",
            "Times the data plane paused consumption (retry budget spent, DLQ unwritable, registry denied)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.direct_headers = Gauge(
            "refinery_worker_direct_headers",
            "1 when the compiled loops read and copy headers from librdkafka's own lists "
            "(REFINERY_WORKER_DIRECT_HEADERS; 0: confluent-kafka's API, slower, the log says why)",
            registry=r,
        )
        self.ack_counting = Gauge(
            "refinery_worker_ack_counting",
            "1 when the producer's interceptor counts acknowledged records, so at-least-once batches "
            "complete without draining the producer (REFINERY_WORKER_COUNT_ACKS; 0: not counted, the log "
            "says why, or not needed: success reports, exactly-once)",
            registry=r,
        )
        self.wedged = Gauge(
            "refinery_worker_wedged",
            "1 while the data plane is stuck inside a Kafka call past its timeout (the watchdog exits soon)",
            registry=r,
        )
        self.wedges = Counter(
            "refinery_worker_wedges",
            "Kafka calls found running past their timeout by the watchdog, by call",
            ["call"], registry=r,
        )  # fmt: skip
        self.route_rates = RateTracker()
        self.dlq_rates = RateTracker()
        self.started_at = time.time()
        self._children: dict[tuple[object, object], Any] = {}
        # --- dedup store rebuilds (refinery.dedup.store.DedupChangelog.restore, via apply_restore) ---
        self.dedup_restore_seconds = Histogram(
            "refinery_dedup_restore_seconds",
            "Time to rebuild the dedup store of newly assigned partitions (changelog read and settling)",
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )  # fmt: skip
        self.dedup_restored_ids = Counter(
            "refinery_dedup_restored_ids", "Message ids loaded into the dedup store by rebuilds", registry=r
        )
        self.dedup_batches_settled = Counter(
            "refinery_dedup_batches_settled",
            "Unfinished dedup batches (intent without DONE) settled by rebuilds", registry=r,
        )  # fmt: skip
        self.dedup_batches_unsettled = Counter(
            "refinery_dedup_batches_unsettled",
            "Unfinished dedup batches a rebuild could not settle in time (left to the next one)", registry=r,
        )  # fmt: skip
        self.dedup_settle_records_read = Counter(
            "refinery_dedup_settle_records_read",
            "Derived-topic records read while settling unfinished dedup batches", registry=r,
        )  # fmt: skip

        # --- exactly-once resume points (refinery.worker.progress) ---
        self.progress_read_seconds = Histogram(
            "refinery_progress_read_seconds",
            "Time to read the progress topic for newly assigned partitions (exactly-once)",
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )  # fmt: skip
        self.progress_reads_incomplete = Counter(
            "refinery_progress_reads_incomplete",
            "Progress topic reads that did not reach its end in time (resumed at the committed offsets)",
            registry=r,
        )  # fmt: skip
        self.resume_corrections = Counter(
            "refinery_resume_corrections",
            "Assigned partitions whose committed offset was behind their last committed transaction",
            registry=r,
        )  # fmt: skip

    def apply(self, counts: BatchCounts, duration_s: float, latencies: Iterable[float]) -> None:
        child = self._child
        for topic, n in counts.records_in.items():
            child(self.records_in, topic).inc(n)
        for route, n in counts.routed.items():
            child(self.routed, route).inc(n)
        for route, n in counts.deduplicated.items():
            child(self.deduplicated, route).inc(n)
        for reason, n in counts.dlq.items():
            child(self.dlq, reason).inc(n)
        for origin, n in counts.origin.items():
            child(self.by_origin, origin).inc(n)
        if counts.unmatched:
            self.unmatched.inc(counts.unmatched)
        if counts.topics_created:
            self.topics_created.inc(counts.topics_created)
        child(self.batches, "committed").inc()
        self.batch_duration.observe(duration_s)
        self.record_latency.observe_many(latencies)
        self.route_rates.add(counts.routed)
        self.dlq_rates.add(counts.dlq)

    def _child(self, metric: Any, key: str | tuple[bytes, ...]) -> Any:
        """`metric.labels(...)`, cached per (metric, label values): prometheus-client validates the
        values and takes a lock on every `labels()` call, ~45 of them per batch; with the small batches
        of a live feed that cost more than the batch's routing. Bounded by the label sets themselves."""
        cache_key = (metric, key)  # metric objects hash by identity
        found = self._children.get(cache_key)
        if found is None:
            values = (key,) if isinstance(key, str) else tuple(v.decode() for v in key)
            found = self._children[cache_key] = metric.labels(*values)
        return found

    def apply_librdkafka_stats(self, stats_json: str) -> None:
        """Consumer lag per assigned partition, from librdkafka's statistics callback."""
        stats: dict[str, Any] = json.loads(stats_json)
        self.consumer_lag.clear()
        for topic, tstats in stats.get("topics", {}).items():
            for partition, pstats in tstats.get("partitions", {}).items():
                lag = pstats.get("consumer_lag", -1)
                if partition != "-1" and lag >= 0 and pstats.get("fetch_state") not in (None, "none"):
                    self.consumer_lag.labels(topic, partition).set(lag)

    def totals(self) -> dict[str, Any]:
        def value(counter: Any) -> float:
            return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))

        return {
            "records_in": value(self.records_in),
            "routed": value(self.routed),
            "deduplicated": value(self.deduplicated),
            "dlq": value(self.dlq),
            "unmatched": value(self.unmatched),
            "batches": value(self.batches),
            "dedup_ids": self.dedup_ids._value.get(),
            "resume_corrections": value(self.resume_corrections),  # exactly-once (refinery.worker.progress)
            "progress_reads_incomplete": value(self.progress_reads_incomplete),
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def apply_restore(self, report: Any) -> None:
        """The figures of one dedup store rebuild (a `refinery.dedup.store.RestoreReport`)."""
        self.dedup_restore_seconds.observe(report.seconds)
        self.dedup_restored_ids.inc(report.ids_restored)
        self.dedup_batches_settled.inc(report.batches_settled)
        self.dedup_batches_unsettled.inc(report.batches_unsettled)
        self.dedup_settle_records_read.inc(report.derived_records_read)

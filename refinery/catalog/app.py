"""The catalog service: `GET /catalog` (JSON), `GET /catalog/ui` (the home page: search, topics, lineage,
flows), the analyst views of `refinery.catalog.pages` (a page per topic, the dead-letter workbench, the
lineage laid out by Graphviz), `GET /metrics`, `GET /health`
(200 while the process serves) and `GET /ready` (200 once the ingest observer runs without error and the
route set has been read; otherwise 503 `{"error_code": 50301, "message": why}`, as the workers answer).

    refinery-catalog            # serves on REFINERY_CATALOG_HOST:REFINERY_CATALOG_PORT

Inputs: its own header-only observer of the ingest topics (flows, rates, last seen), the route set in
force (the routes topic, read like the workers read it), every worker's `GET /routes` (per-route rates)
and `GET /stats` (REFINERY_CATALOG_WORKER_URLS), and the schema registry's REST API
(REFINERY_REGISTRY_URL, through `common.registry_client`: its credentials and its reading of "not found").
A source that does not answer is reported in `sources`, never an error page.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from common.config import CatalogSettings, KafkaSettings, RegistrySettings, WorkerSettings
from common.docs_ui import install_docs
from common.errors import ConfigError
from common.kafka_log import with_log
from common.registry_client import (
    TRANSPORT_ERRORS,
    is_access_denied,
    is_not_found,
    redacted_url,
    registry_client,
)
from producers.schemas import SchemaCatalog
from refinery.catalog.build import build_catalog
from refinery.catalog.flows import FlowObserver, FlowTable
from refinery.catalog.pages import analyst_views
from refinery.catalog.schema_history import SchemaHistory
from refinery.catalog.topic_stats import TopicStats
from refinery.control.route_store import RouteWatcher

_REGISTRY_ERRORS: tuple[type[Exception], ...] = (SchemaRegistryError, *TRANSPORT_ERRORS)


class CatalogMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.flows = Gauge(
            "refinery_catalog_flows", "Distinct flows seen on ingest topics", registry=self.registry
        )
        self.source_errors = Counter(
            "refinery_catalog_source_errors", "Worker or registry requests that failed", ["source"],
            registry=self.registry,
        )  # fmt: skip


class RecordsSeen(Collector):
    """`refinery_catalog_records_seen_total`: a counter (the value only grows), read from the flow table
    at each scrape."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "refinery_catalog_records_seen", "Ingest records whose headers the catalog read",
            value=self.table.records_seen,
        )  # fmt: skip


class CatalogSources:
    """Reads the workers and the registry; schema look-ups are cached (a schema id never changes)."""

    def __init__(
        self,
        settings: CatalogSettings,
        registry: RegistrySettings,
        metrics: CatalogMetrics,
        *,
        schema_client: SchemaRegistryClient | None = None,
    ) -> None:
        self.settings = settings
        self.registry_url = redacted_url(registry.url).rstrip("/")
        self.registry = schema_client or registry_client(registry, timeout=settings.timeout_s)
        self.client = httpx.AsyncClient(timeout=settings.timeout_s)  # the workers (no registry credentials)
        self.metrics = metrics
        self._schemas: dict[int, dict[str, Any]] = {}

    async def workers(self) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
        """Per-route rates summed over the workers (each routes its share of the partitions), and each
        worker's status."""
        answers = await asyncio.gather(*(self._worker(url) for url in self.settings.worker_url_list))
        rates: dict[str, dict[str, float]] = {}
        for route_rates, _ in answers:
            for name, routed in (route_rates or {}).items():
                total = rates.setdefault(name, {"total": 0.0, "per_second": 0.0})
                for key in total:
                    total[key] += float(routed.get(key, 0.0))
        return rates, [status for _, status in answers]

    async def _worker(self, url: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """A worker's per-route rates and status from its `/stats` (open even with route auth on). A
        worker that answers but is not ready (paused, stalled, starting) is not `ok`: it says why."""
        try:
            stats_resp = await self.client.get(f"{url}/stats")
            stats_resp.raise_for_status()
        except httpx.HTTPError as exc:
            self.metrics.source_errors.labels("worker").inc()
            return None, {"url": url, "ok": False, "state": "down", "error": f"{type(exc).__name__}: {exc}"}
        stats = stats_resp.json()
        ready = bool(stats.get("ready", stats.get("running")))
        status = {
            "url": url, "ok": ready, "worker": stats.get("worker"), "running": stats.get("running"),
            "state": stats.get("state"), "ready": ready, "why": stats.get("why"),
            "paused_reason": stats.get("paused_reason"), "last_error": stats.get("last_error"),
            "last_progress_at": stats.get("last_progress_at"),
            "routes_version": stats.get("routes_version"), "totals": stats.get("totals"),
        }  # fmt: skip
        return stats.get("routes") or {}, status

    async def schemas(self, ids: set[int]) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
        missing = sorted(ids - set(self._schemas))
        status: dict[str, Any] = {"url": self.registry_url, "ok": True}
        for schema_id in missing:
            try:
                found = await asyncio.to_thread(self._schema, schema_id)
            except _REGISTRY_ERRORS as exc:
                self.metrics.source_errors.labels("registry").inc()
                status = {"url": self.registry_url, "ok": False, "error": _registry_error(exc)}
                break
            if found is not None:
                self._schemas[schema_id] = found
        return {i: self._schemas[i] for i in ids if i in self._schemas}, status

    def _schema(self, schema_id: int) -> dict[str, Any] | None:
        """The schema's format and subjects (blocking: run in a thread); None if it is not registered."""
        try:
            schema = self.registry.get_schema(schema_id)
            versions = self.registry.get_schema_versions(schema_id)
        except SchemaRegistryError as exc:
            if is_not_found(exc):
                return None  # not cached: it may be registered later
            raise
        subjects = [{"subject": v.subject, "version": v.version} for v in versions]
        return {
            "format": schema.schema_type or "AVRO",  # Confluent omits the type for Avro
            "subject": subjects[0]["subject"] if subjects else None,
            "subject_version": subjects[0]["version"] if subjects else None,
            "subjects": subjects,
        }

    def close(self) -> None:
        self.registry.close()


def _registry_error(exc: BaseException) -> str:
    if is_access_denied(exc):
        assert isinstance(exc, SchemaRegistryError)
        return (
            f"access denied (HTTP {exc.http_status_code}): check REFINERY_REGISTRY_USERNAME / "
            "REFINERY_REGISTRY_PASSWORD and the user's role"
        )
    return f"{type(exc).__name__}: {exc}"


def create_app(
    settings: CatalogSettings | None = None,
    kafka: KafkaSettings | None = None,
    registry: RegistrySettings | None = None,
    worker: WorkerSettings | None = None,
    *,
    observe: bool = True,
) -> FastAPI:
    settings = settings or CatalogSettings()
    kafka = kafka or KafkaSettings()
    worker = worker or WorkerSettings()
    metrics = CatalogMetrics()
    table = FlowTable()
    metrics.registry.register(RecordsSeen(table))
    ProcessCollector(registry=metrics.registry)  # process_* series (CPU, memory, fds)
    sources = CatalogSources(settings, registry or RegistrySettings(), metrics)
    observer = FlowObserver(
        table, with_log(kafka.client_config()), group_id=settings.group_id,
        ingest_pattern=worker.ingest_pattern, start_from=settings.start_from,
    )  # fmt: skip
    routes = RouteWatcher(with_log(kafka.client_config()), worker.routes_topic)  # librdkafka log: logging

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if observe:
            await asyncio.to_thread(routes.start)
            observer.start()
        try:
            yield
        finally:
            await asyncio.to_thread(observer.stop)
            await asyncio.to_thread(routes.stop)
            await sources.client.aclose()
            await asyncio.to_thread(sources.close)

    app = FastAPI(title="Refinery catalog", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)  # /docs and /redoc with their assets served from here, not a CDN
    app.state.flows = table
    app.state.observer = observer
    page = files("refinery.catalog").joinpath("static/catalog.html").read_text()

    async def catalog() -> dict[str, Any]:
        flows = table.snapshot()
        ids = {i for f in flows for i in f["schema_ids"]}
        (route_rates, workers), (schemas, registry_status) = await asyncio.gather(
            sources.workers(), sources.schemas(ids)
        )
        metrics.flows.set(len(flows))
        observer_status = {"ok": observer.error is None, "error": observer.error,
                           "records_seen": table.records_seen,
                           "records_without_metadata": table.records_without_metadata}  # fmt: skip
        return build_catalog(
            flows, routes.current(), route_rates, schemas,
            {"workers": workers, "registry": registry_status, "ingest_observer": observer_status},
        )  # fmt: skip

    app.add_api_route("/catalog", catalog, methods=["GET"])
    app.include_router(
        analyst_views(
            catalog,
            TopicStats(
                with_log(kafka.client_config()), dlq_topic=worker.dlq_topic, timeout_s=settings.timeout_s
            ),
            SchemaHistory(sources.registry),
            SchemaCatalog(sources.registry),
            kafka,
        )
    )

    @app.get("/catalog/ui", response_class=HTMLResponse)
    async def catalog_ui() -> str:
        return page

    def not_ready() -> str | None:
        """Why the catalog cannot answer fully yet, or None."""
        if not observe:
            return None
        if observer.error is not None:
            return f"ingest observer stopped: {observer.error}"
        if not observer.running:
            return "ingest observer not running"
        if not routes.wait_ready(0):
            return f"route set not read yet from {worker.routes_topic!r}"
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        why = not_ready()
        if why is None:
            return JSONResponse({"ready": True})
        return JSONResponse({"error_code": 50301, "message": why}, status_code=503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> int:
    import argparse

    import uvicorn

    from common.logs import configure_logging

    parser = argparse.ArgumentParser(prog="refinery-catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="bind address (default REFINERY_CATALOG_HOST)")
    parser.add_argument("--port", type=int, help="port (default REFINERY_CATALOG_PORT)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = CatalogSettings(**overrides)
        configure_logging()
        app = create_app(settings)
    except ConfigError as exc:  # e.g. a registry URL without http://: one line, no traceback
        print(f"refinery-catalog: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Web views on Faust's web server: GET/POST /routes, GET /stats, GET /metrics.

Errors use the Confluent-style body `{"error_code": ..., "message": ...}` like the schema registry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from refinery.control.app import app
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import RuleError, load_route_set

INVALID_ROUTE_SET = 42201  # Confluent's "unprocessable entity" family, as for an invalid schema
NOT_READY = 50301


def _routes_doc() -> dict[str, Any]:
    routing = app.routing
    router = routing.watcher.current() if routing is not None and routing.watcher is not None else None
    route_set = getattr(router, "route_set", None)
    rates = app.metrics.route_rates.snapshot()
    routes = []
    for route in getattr(route_set, "routes", ()):
        doc = route.to_doc()
        doc["routed"] = rates.get(route.name, {"total": 0.0, "per_second": 0.0})
        routes.append(doc)
    return {"version": getattr(route_set, "version", None), "routes": routes}


@app.page("/routes")
class RoutesView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json(_routes_doc())

    async def post(self, request: web.Request) -> web.Response:
        """Apply a new route set (YAML or JSON body). An invalid set is refused; the old one stays."""
        text = (await self.read_request_content(request)).decode("utf-8", "replace")
        try:
            route_set = load_route_set(text)
        except RuleError as exc:
            return self.json({"error_code": INVALID_ROUTE_SET, "message": str(exc)}, status=422)
        settings = app.worker_settings
        await asyncio.to_thread(
            publish_route_set, app.kafka_settings.client_config(), settings.routes_topic, route_set
        )
        return self.json({"version": route_set.version, "routes": route_set.route_names()})


@app.page("/stats")
class StatsView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        metrics = app.metrics
        routing = app.routing
        dataplane = routing.dataplane if routing is not None else None
        return self.json(
            {
                "worker": dataplane.instance_id if dataplane is not None else None,
                "running": bool(dataplane is not None and dataplane.running),
                "routes_version": routing.routes_version if routing is not None else None,
                "totals": metrics.totals(),
                "routes": metrics.route_rates.snapshot(),
                "dlq": metrics.dlq_rates.snapshot(),
            }
        )


@app.page("/metrics")
class MetricsView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        body = generate_latest(app.metrics.registry)
        return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

"""Route-set web views on Faust's web server: GET/POST /routes.

Errors use the Confluent-style body `{"error_code": ..., "message": ...}` like the schema registry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust import web

from refinery.control.app import app
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import RuleError, load_route_set

INVALID_ROUTE_SET = 42201  # Confluent's "unprocessable entity" family, as for an invalid schema


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

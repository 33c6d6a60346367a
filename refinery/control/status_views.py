"""Status web views on Faust's web server: GET /stats, /health, /ready and /metrics."""

from __future__ import annotations

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from refinery.control.app import app


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

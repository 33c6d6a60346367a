"""Status web views on Faust's web server: GET /stats, /health, /ready and /metrics."""

from __future__ import annotations

from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from refinery.control.app import app

NOT_READY = 50301  # Confluent-style code family for "service unavailable"


def _health() -> Any:
    routing = app.routing
    dataplane = routing.dataplane if routing is not None else None
    return dataplane.health if dataplane is not None else None


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
                **(
                    dataplane.health.snapshot()
                    if dataplane is not None
                    else {"state": "starting", "ready": False}
                ),
                "routes_version": routing.routes_version if routing is not None else None,
                "totals": metrics.totals(),
                "routes": metrics.route_rates.snapshot(),
                "dlq": metrics.dlq_rates.snapshot(),
            }
        )


@app.page("/health")
class HealthView(web.View):
    """Alive: the process serves HTTP and its data plane thread has not ended nor is stuck in a call."""

    async def get(self, request: web.Request) -> web.Response:
        health = _health()
        if health is not None and not health.alive:
            return self.json({"error_code": NOT_READY, "message": "the data plane has stopped"}, status=503)
        if health is not None and health.wedged_why is not None:
            return self.json({"error_code": NOT_READY, "message": f"wedged: {health.wedged_why}"}, status=503)
        return self.json({"status": "alive"})


@app.page("/ready")
class ReadyView(web.View):
    """Ready: routing and making progress (or idle with nothing to read); 503 says why not."""

    async def get(self, request: web.Request) -> web.Response:
        health = _health()
        if health is None:
            return self.json({"error_code": NOT_READY, "message": "starting: no data plane yet"}, status=503)
        readiness = health.readiness()
        if not readiness.ready:
            return self.json({"error_code": NOT_READY, "message": readiness.why}, status=503)
        return self.json({"status": "ready", "state": health.state})


@app.page("/metrics")
class MetricsView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        body = generate_latest(app.metrics.registry)
        return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

"""Services started with the Faust app: the live route set and the data-plane thread around it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode

from refinery.control.app import RefineryApp, app
from refinery.control.route_store import RouteWatcher
from refinery.worker.dataplane import DataPlane

log = logging.getLogger(__name__)


@app.service
class RoutingService(mode.Service):
    """Keeps every worker's copy of the route set current (`RouteWatcher` reads the routes topic from
    the start, so each worker holds all rules) and runs the batched data plane in a thread. If the
    data plane dies, the worker crashes with it, so a supervisor restarts it instead of it idling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refinery_app: RefineryApp = app
        self.watcher: RouteWatcher | None = None
        self.dataplane: DataPlane | None = None
        self.routes_version: str | None = None

    async def on_start(self) -> None:
        settings, kafka = app.worker_settings, app.kafka_settings
        self.watcher = RouteWatcher(kafka.client_config(), settings.routes_topic, on_change=self._on_routes)
        await asyncio.to_thread(self.watcher.start)
        self.dataplane = DataPlane(settings, kafka, self.watcher.current, app.metrics)
        self.dataplane.start()
        app.routing = self
        log.info("refinery worker started", extra={"instance": self.dataplane.instance_id})

    async def on_stop(self) -> None:
        if self.dataplane is not None:
            await asyncio.to_thread(self.dataplane.stop)
        if self.watcher is not None:
            await asyncio.to_thread(self.watcher.stop)

    def _on_routes(self, router: Any) -> None:
        route_set = getattr(router, "route_set", None)
        self.routes_version = getattr(route_set, "version", None)
        app.metrics.routes_active.set(len(getattr(route_set, "routes", ())))
        log.info("route set changed", extra={"version": self.routes_version})

    @mode.Service.timer(1.0)
    async def _watch_dataplane(self) -> None:
        if self.dataplane is not None:
            self.dataplane.health.readiness()  # keeps refinery_worker_ready current between scrapes
            if self.dataplane.error is not None:
                await self.crash(self.dataplane.error)

    @mode.Service.timer(app.worker_settings.stats_interval_s)
    async def _tick_rates(self) -> None:
        app.metrics.route_rates.tick()
        app.metrics.dlq_rates.tick()

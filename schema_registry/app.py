"""The app factory: wires store, Kafka log, leader election and service into a FastAPI app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from common.config import KafkaSettings, RegistrySettings
from common.docs_ui import install_docs
from schema_registry.api import contexts, health, policies, schemas, subjects
from schema_registry.api.asgi import ClientToleranceMiddleware
from schema_registry.api.auth import Authenticator
from schema_registry.api.context_paths import ContextPathMiddleware
from schema_registry.api.errors import install_error_handlers
from schema_registry.api.middleware import AuthMiddleware, LeaderForwarder, MetricsMiddleware
from schema_registry.api.read_cache import ReadCacheMiddleware
from schema_registry.api.responses import RegistryJSONResponse
from schema_registry.kafka_log import KafkaLog
from schema_registry.leadership import LeaderElection
from schema_registry.metrics import RegistryMetrics
from schema_registry.service import RegistryService
from schema_registry.store import SchemaStore

log = logging.getLogger(__name__)


def create_app(settings: RegistrySettings | None = None, kafka: KafkaSettings | None = None) -> FastAPI:
    """A registry app; Kafka is only contacted when the app starts (lifespan)."""
    settings = settings or RegistrySettings()
    client_config = (kafka or KafkaSettings()).client_config()
    store = SchemaStore()
    kafka_log = KafkaLog(
        client_config,
        settings.topic,
        settings.coordination_topic_name,
        store,
        timeout_s=settings.store_timeout_s,
    )
    election = LeaderElection(
        client_config,
        settings.coordination_topic_name,
        settings.own_url,
        session_timeout_ms=settings.leader_session_timeout_ms,
        eligible=settings.leader_eligible,
    )
    service = RegistryService(store, kafka_log, lambda: election.is_leader)
    service.policies.default_level = settings.default_compatibility.upper()
    metrics = RegistryMetrics()
    forwarder = LeaderForwarder(
        election, kafka_log, metrics, wait_for_leader_s=settings.leader_session_timeout_ms / 1000 * 2
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(kafka_log.start)
        election.start()
        log.info("schema registry ready", extra={"topic": settings.topic, "url": settings.own_url})
        try:
            yield
        finally:
            await forwarder.close()
            await asyncio.to_thread(election.close)
            await asyncio.to_thread(kafka_log.close)

    app = FastAPI(
        title="Refinery schema registry",
        description="Confluent Schema Registry compatible REST API, stored in a compacted Kafka topic.",
        default_response_class=RegistryJSONResponse,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)  # /docs and /redoc with their assets served from here, not a CDN
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    app.state.election = election
    install_error_handlers(app)
    # plain ASGI middleware, outermost last: tolerance, /contexts/{ctx} prefix, metrics, auth, read cache,
    # forwarding, routes
    app.add_middleware(forwarder.middleware)
    app.add_middleware(ReadCacheMiddleware, store=store)
    app.add_middleware(AuthMiddleware, authenticator=Authenticator(settings.auth_users, settings.auth_tokens))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(ContextPathMiddleware)
    app.add_middleware(ClientToleranceMiddleware)
    for router in (subjects.router, schemas.router, contexts.router, policies.router, health.router):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, str]:
        return {}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        metrics.is_leader.set(1 if election.is_leader else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app

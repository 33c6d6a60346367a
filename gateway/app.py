"""The gateway's HTTP app: `POST /v1/events`, `/health`, `/ready`, `/metrics` and the OpenAPI docs
(`/docs`, `/redoc`), whose Swagger UI and ReDoc assets the gateway serves itself (`common.docs_ui`), so
the docs work without reaching any CDN.

Order of the checks on `POST /v1/events` (each refusal writes nothing): API key (401) -> the key's
bucket not empty (429) -> Content-Type and Content-Encoding (415) -> Content-Length (413) -> the body,
read within REFINERY_GATEWAY_BODY_TIMEOUT_S (408) and capped (413) -> decompression, capped (413) ->
parsing (400; 413 for too many events) -> scope (403) -> rate limit for the batch's events (429) ->
Kafka reachable and room in the send queue (503) -> per event: schema and payload (rejected), send,
and the answer once Kafka acknowledged (`gateway.service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from common.config import GatewaySettings, KafkaSettings, ProducerSettings, RegistrySettings
from common.docs_ui import install_docs
from gateway import docs
from gateway.events import BodyError, check_encoding, decompress, media_type, parse_body
from gateway.keys import ApiKey, KeyRing, KeyWatcher, ensure_keys_topic, key_id_of
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter
from gateway.records import RecordBuilder
from gateway.service import Ingestor, KafkaHealth, Refusal, event_sources
from producers.metrics import ProducerMetrics
from producers.producer import Producer

log = logging.getLogger(__name__)

KEYS_READY_TIMEOUT_S = 60.0
# The cyclic GC, as the worker's data plane sets it (refinery.worker.dataplane.tune_gc): what is alive
# once the app has started (FastAPI, pydantic, protobuf, the clients) is frozen out of collections, and
# young collections run every 20,000 net allocations instead of 700: a request allocates a few thousand
# objects (its events, records, handles), acyclic garbage that reference counting frees anyway.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers=headers, media_type="application/json")


def unauthorized(message: str) -> Refusal:
    return Refusal(401, 40101, message, reason="unauthorized")


def api_key_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else None
    return request.headers.get("x-api-key")


def authenticate(ring: KeyRing, token: str | None) -> ApiKey:
    """The active key a request carries, else a 401 Refusal saying why (never quoting the key)."""
    if not token:
        raise unauthorized("no API key: send 'Authorization: Bearer <key>' (or 'X-Api-Key: <key>')")
    key_id = key_id_of(token)
    key = ring.get(key_id) if key_id else None
    if key is None or not key.matches(token):
        raise unauthorized("unknown API key")
    if not key.active:
        raise unauthorized(f"API key {key.id} was revoked at {key.revoked_at}")
    return key


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, or a BodyError: 413 past `limit` bytes, 408 if it has not all come in `timeout_s`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []

    async def collect() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        raise BodyError(
            408,
            40801,
            f"the request body did not arrive within {timeout_s:g}s (REFINERY_GATEWAY_BODY_TIMEOUT_S)",
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> BodyError:
    return BodyError(413, 41301, f"the body is over {limit:,} bytes (REFINERY_GATEWAY_MAX_BODY_BYTES)")


class Gateway:
    """What the app's routes share; built by the lifespan (Kafka is contacted only when the app starts)."""

    def __init__(
        self,
        settings: GatewaySettings,
        kafka: KafkaSettings,
        registry: RegistrySettings,
        producer_settings: ProducerSettings | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry = registry
        self.producer_settings = producer_settings or ProducerSettings(
            delivery_timeout_ms=settings.delivery_timeout_ms, linger_ms=settings.linger_ms
        )
        self.metrics = GatewayMetrics()
        self.limiter = RateLimiter(
            settings.rate_limit_events_per_s,
            burst_s=settings.burst_s,
            min_capacity=settings.max_events,
            processes=settings.workers,
        )
        self.watcher = KeyWatcher(kafka.client_config(), settings.keys_topic)
        self.producer: Producer | None = None
        self.ingestor: Ingestor | None = None
        self.health: KafkaHealth | None = None

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        conf = self.kafka.client_config()
        await asyncio.to_thread(
            ensure_keys_topic, conf, settings.keys_topic, replication_factor=settings.keys_replication
        )
        self.watcher.start()
        if not await asyncio.to_thread(self.watcher.wait_ready, KEYS_READY_TIMEOUT_S):
            log.warning(
                "keys topic not read to its end yet; /ready says so", extra={"topic": settings.keys_topic}
            )
        producer = Producer(
            self.producer_settings,
            kafka=self.kafka,
            registry=self.registry,
            metrics=ProducerMetrics(self.metrics.registry),
        )
        self.producer = producer
        self.metrics.inflight.set_function(lambda: len(producer))
        self.metrics.keys.set_function(self.watcher.ring.active_count)
        self.health = KafkaHealth(producer, settings.kafka_check_interval_s, lambda ok: None)
        self.metrics.kafka_up.set_function(lambda: 1 if self.health and self.health.ok else 0)
        await asyncio.to_thread(self.health.check)
        self.ingestor = Ingestor(
            producer,
            RecordBuilder(producer, negative_ttl_s=settings.schema_negative_ttl_s),
            self.metrics,
            self.health,
            max_inflight_events=settings.max_inflight_events,
            delivery_timeout_s=settings.delivery_timeout_ms / 1000 + 1,
            retry_after_s=settings.retry_after_s,
        )
        prober = asyncio.create_task(self.health.run())
        tune_gc()
        log.info(
            "gateway ready",
            extra={
                "port": settings.port,
                "keys": self.watcher.ring.active_count(),
                "kafka_up": self.health.ok,
            },
        )
        try:
            yield
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            try:
                await asyncio.to_thread(producer.close, 10)
            except Exception:
                log.exception("gateway producer did not close cleanly")
            self.watcher.close()

    # --- POST /v1/events -----------------------------------------------------------------------------
    async def post_events(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await self._post_events(request)
        except (Refusal, BodyError) as exc:
            response = self._refusal(exc)
        self.metrics.count_request(response.status_code, time.perf_counter() - started)
        return response

    def _refusal(self, exc: Refusal | BodyError) -> Response:
        headers: dict[str, str] = {}
        if isinstance(exc, Refusal):
            reason, doc = exc.reason, exc.body()
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="refinery-gateway"'
        else:
            reason = {400: "malformed", 408: "body_timeout", 413: "too_large", 415: "unsupported"}.get(
                exc.status, "bad_body"
            )
            doc = {"error_code": exc.code, "message": exc.message}
            if exc.status in (408, 413):  # the rest of the body may still be coming: do not read it
                headers["Connection"] = "close"
        self.metrics.refuse(reason)
        return _json(exc.status, doc, headers)

    async def _post_events(self, request: Request) -> Response:
        settings = self.settings
        assert self.ingestor is not None, "the app has not started"
        key = authenticate(self.watcher.ring, api_key_of(request))
        wait = self.limiter.empty(key.id, key.rate)
        if wait:
            raise self._rate_limited(key, wait)
        kind = media_type(request.headers.get("content-type"))
        encoding = check_encoding(request.headers.get("content-encoding"))
        body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        data = decompress(body, encoding, settings.max_decompressed_bytes)
        batch = parse_body(data, kind, settings.max_events)
        sources = event_sources(key, batch)
        wait = self.limiter.take(key.id, key.rate, batch.size)
        if wait:
            raise self._rate_limited(key, wait)
        outcome = await self.ingestor.ingest(key, batch, sources)
        headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else None
        return _json(outcome.status, outcome.body, headers)

    def _rate_limited(self, key: ApiKey, wait: int) -> Refusal:
        rate = key.rate or self.settings.rate_limit_events_per_s
        return Refusal(
            429, 42901, f"API key {key.id} is over its rate limit of {rate:g} events/s; retry in {wait}s",
            reason="rate_limited", retry_after=wait,
        )  # fmt: skip

    # --- probes --------------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, dict[str, Any]]:
        problems = []
        if not self.watcher.ready:
            problems.append(f"keys topic {self.settings.keys_topic!r} not read to its end yet")
        if self.health is None or not self.health.ok:
            problems.append(f"Kafka unavailable: {self.health.problem if self.health else 'not started'}")
        doc = {"ready": not problems, "keys": self.watcher.ring.active_count(), "problems": problems}
        return not problems, doc


def create_app(
    settings: GatewaySettings | None = None,
    kafka: KafkaSettings | None = None,
    registry: RegistrySettings | None = None,
    producer_settings: ProducerSettings | None = None,
) -> FastAPI:
    gateway = Gateway(settings or GatewaySettings(), kafka or KafkaSettings(), registry or RegistrySettings(),
                      producer_settings)  # fmt: skip
    app = FastAPI(
        title="Refinery ingest gateway",
        description="Send event batches over HTTP: validated against their registered schemas like the "
        "producer SDK does, enveloped and written to Kafka before the answer. Authenticate with an API "
        "key (`Authorization: Bearer rgw_...`), created with `refinery-gateway keys create`.",
        version="1",
        lifespan=gateway.lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)  # /docs and /redoc with their assets served from here, not a CDN
    app.state.gateway = gateway

    @app.post(
        "/v1/events",
        summary="Send a batch of events",
        openapi_extra={"requestBody": docs.REQUEST_BODY},
        responses=docs.RESPONSES,
        response_model=None,
    )
    async def post_events(request: Request) -> Response:
        return await gateway.post_events(request)

    @app.get("/health", summary="Alive (the process answers)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Ready: keys read and Kafka reachable (503 otherwise)")
    async def ready() -> Response:
        ok, doc = gateway.ready()
        return _json(200 if ok else 503, doc)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_environment() -> FastAPI:
    """The app with every setting from the environment (uvicorn's factory for several processes)."""
    from common.logs import configure_logging

    configure_logging()
    return create_app()

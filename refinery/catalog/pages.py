"""The catalog's analyst views, mounted by `refinery.catalog.app`:

- `GET /catalog/topics`: every topic (derived, ingest, DLQ) with kind, partitions and records retained;
- `GET /catalog/topics/{name}?records=N`: one topic: partitions, size, rate, consumer groups and lag
  (`topic_stats`), flows, routes and producers (`topic_page`), the schema text of every version of its
  subjects with diffs (`schema_history`), and its newest N records decoded by schema id (`samples`);
- `GET /catalog/dlq?limit=&reason=&title=&since=`: the dead-letter workbench (`dlq_view`);
- `GET /catalog/search?q=`: topics, routes and flows matching every word;
- `GET /catalog/lineage.svg`: the lineage laid out by Graphviz (`lineage_svg`); 503 naming what to install
  when `dot` is missing;
- the pages: `/catalog/ui/topic?name=`, `/catalog/ui/dlq`, `/catalog/ui/lineage` and their shared
  `/catalog/static/catalog.css` and `catalog.js`.

Kafka or the registry not answering is a 503 `{"error_code": 50302, "message"}` naming it; an unknown
topic a 404 `{"error_code": 40401, ...}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from common.config import KafkaSettings
from common.errors import RefineryError
from common.kafka_log import error_text
from common.registry_client import TRANSPORT_ERRORS
from common.times import parse_time_ms
from producers.schemas import SchemaCatalog
from refinery.catalog.dlq_view import dlq_document
from refinery.catalog.lineage_svg import LayoutUnavailable, lineage_dot, render_svg
from refinery.catalog.samples import newest_records
from refinery.catalog.schema_history import SchemaHistory
from refinery.catalog.topic_page import search, topic_context
from refinery.catalog.topic_stats import TopicStats
from refinery.routing import dlq

PAGES = ("topic", "dlq", "lineage")
ASSETS = {"catalog.css": "text/css", "catalog.js": "text/javascript"}
MAX_RECORDS = 200
REGISTRY_ERRORS: tuple[type[Exception], ...] = (SchemaRegistryError, *TRANSPORT_ERRORS)
MAX_DEAD_LETTERS = 2000


def _unavailable(what: str, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error_code": 50302, "message": f"{what}: {error_text(exc)}"}, status_code=503)


def analyst_views(
    catalog: Callable[[], Awaitable[dict[str, Any]]],
    stats: TopicStats,
    history: SchemaHistory,
    schemas: SchemaCatalog,
    kafka: KafkaSettings,
) -> APIRouter:
    """The routes above; `catalog` returns the current catalog document (`GET /catalog`)."""
    router = APIRouter()
    static = files("refinery.catalog").joinpath("static")

    @router.get("/catalog/topics")
    async def topics() -> Any:
        try:
            return {"topics": await asyncio.to_thread(stats.topics)}
        except KafkaException as exc:
            return _unavailable(f"Kafka at {kafka.bootstrap_servers} did not list topics", exc)

    @router.get("/catalog/topics/{name}")
    async def topic(name: str, records: int = Query(20, ge=0, le=MAX_RECORDS)) -> Any:
        try:
            described = await asyncio.to_thread(stats.describe, name)
        except KafkaException as exc:
            return _unavailable(f"Kafka at {kafka.bootstrap_servers} did not describe {name!r}", exc)
        if described is None:
            return JSONResponse({"error_code": 40401, "message": f"topic {name!r} does not exist"}, 404)
        context = topic_context(name, described["kind"], await catalog())
        subjects, schema_error = [], None
        try:
            for subject in context["subjects"]:
                found = await asyncio.to_thread(history.subject, subject)
                if found is not None:
                    subjects.append(found)
        except REGISTRY_ERRORS as exc:
            schema_error = f"the schema registry did not answer: {exc}"
        sampled = []
        if records:
            try:
                sampled = await asyncio.to_thread(newest_records, name, records, catalog=schemas, kafka=kafka)
            except (KafkaException, RefineryError) as exc:
                return _unavailable(f"reading the newest records of {name!r} failed", exc)
        page_records = [r.to_page() for r in sampled]
        mean = sum(r["value_bytes"] for r in page_records) / len(page_records) if page_records else None
        approx_bytes = round(mean * described["records"]) if mean is not None else None
        if described["kind"] == "dlq":
            workers = {r.headers.get(dlq.WORKER) for r in sampled}
            context["producers"] = sorted(w for w in workers if w)
        return {
            **described,
            **context,
            "approx_bytes": approx_bytes,
            "schemas": subjects,
            "schema_error": schema_error,
            "records_shown": page_records,
        }

    @router.get("/catalog/dlq")
    async def dead_letters(
        limit: int = Query(200, ge=1, le=MAX_DEAD_LETTERS),
        reason: str | None = None,
        title: str | None = None,
        since: str | None = None,
    ) -> Any:
        try:
            since_ms = parse_time_ms(since, option="since") if since else None
        except ValueError as exc:
            return JSONResponse({"error_code": 42201, "message": str(exc)}, 422)
        dlq_topic = stats.dlq_topic
        try:
            exists = await asyncio.to_thread(stats.describe, dlq_topic)
            sampled = (
                await asyncio.to_thread(newest_records, dlq_topic, limit, catalog=schemas, kafka=kafka)
                if exists is not None
                else []
            )
        except (KafkaException, RefineryError) as exc:
            return _unavailable(f"reading the dead-letter topic {dlq_topic!r} failed", exc)
        doc = dlq_document(
            sampled, topic=dlq_topic, reason=reason or None, title=title or None, since_ms=since_ms
        )
        return {**doc, "records_total": exists["records"] if exists else 0}

    @router.get("/catalog/search")
    async def search_view(q: str = "") -> Any:
        try:
            listed = await asyncio.to_thread(stats.topics)
        except KafkaException as exc:
            return _unavailable(f"Kafka at {kafka.bootstrap_servers} did not list topics", exc)
        return search(q, listed, await catalog())

    @router.get("/catalog/lineage.svg")
    async def lineage_svg() -> Response:
        doc = await catalog()
        try:
            svg = await asyncio.to_thread(render_svg, lineage_dot(doc["lineage"]))
        except LayoutUnavailable as exc:
            return JSONResponse({"error_code": 50303, "message": str(exc)}, status_code=503)
        return Response(svg, media_type="image/svg+xml")

    def page(name: str) -> Callable[[], Awaitable[str]]:
        text = static.joinpath(f"{name}.html").read_text()

        async def serve() -> str:
            return text

        return serve

    for name in PAGES:
        router.add_api_route(f"/catalog/ui/{name}", page(name), response_class=HTMLResponse, methods=["GET"])

    @router.get("/catalog/static/{asset}")
    async def asset(asset: str) -> Response:
        if asset not in ASSETS:
            raise HTTPException(404, f"no asset {asset!r}")
        return Response(static.joinpath(asset).read_text(), media_type=ASSETS[asset])

    return router

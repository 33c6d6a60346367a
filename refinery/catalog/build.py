"""Assemble the catalog from its three inputs (pure functions, no I/O):

- flows observed on the ingest topics (`refinery.catalog.flows`),
- the route set in force (read from the routes topic by `refinery.control.route_store.RouteWatcher`,
  exactly as the workers read it) and the per-route rates the workers report on `GET /routes`,
- the schemas of the flows' schema ids, as the registry serves them.

Which routes a flow feeds is decided by the workers' own router (`refinery.routing.router`) run on the flow's
headers, once per attribute combination seen on that flow, so the catalog can never disagree with the
routing it describes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from common import headers as h
from producers.schemas import subject_for
from refinery.routing.router import Router, RoutingError


def flow_headers(flow: Mapping[str, Any], attributes: Mapping[str, str]) -> dict[str, bytes]:
    values = {h.ENV: flow["env"], h.SOURCE: flow["source"], h.TITLE: flow["title"],
              h.CATEGORY: flow["category"], h.VERSION: flow["version"]}  # fmt: skip
    if flow.get("schema_ids"):
        values[h.SCHEMA_ID] = str(flow["schema_ids"][0])
    if flow.get("formats"):
        values[h.FORMAT] = flow["formats"][0]
    values.update({h.attribute_header(k): v for k, v in attributes.items()})
    return {k: v.encode() for k, v in values.items()}


def routes_for_flow(router: Router | None, flow: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The (route, derived topic) pairs this flow feeds, and any routing errors it meets.

    A route that matches only some attribute combinations (e.g. `platform: pc`) carries `when`: the
    combinations for which it matches."""
    if router is None:
        return [], []
    variants: list[dict[str, str]] = flow.get("attribute_variants") or [{}]
    hits: dict[tuple[str, str], list[dict[str, str]]] = {}
    errors: list[str] = []
    for attributes in variants:
        try:
            destinations = router.route(flow_headers(flow, attributes))
        except RoutingError as exc:
            errors.append(str(exc))
            destinations = list(exc.partial)
        for d in destinations:
            hits.setdefault((d.route, d.topic), []).append(attributes)
    routes = []
    for (route, topic), matched in hits.items():
        entry: dict[str, Any] = {"route": route, "topic": topic}
        if len(matched) < len(variants):
            entry["when"] = matched
        routes.append(entry)
    return routes, sorted(set(errors))


def describe_schema(
    schema_id: int, schemas: Mapping[int, Mapping[str, Any]], flow: Mapping[str, Any]
) -> dict[str, Any]:
    """The registry's view of a schema id. The registry stores one id per distinct schema text, so an
    id may sit under several subjects: report this flow's own subject (the SDK's naming rule)."""
    found = schemas.get(schema_id)
    if found is None:
        return {"id": schema_id, "registered": False}
    subjects = found.get("subjects") or []
    own = subject_for(flow["title"], flow["category"])
    chosen = next((s for s in subjects if s.get("subject") == own), subjects[0] if subjects else {})
    return {"id": schema_id, "registered": True, "format": found.get("format"),
            "subject": chosen.get("subject"), "subject_version": chosen.get("version"),
            "shared_with": len(subjects) - 1 if chosen else 0}  # fmt: skip


def build_catalog(
    flows: list[dict[str, Any]],
    router: Router | None,
    route_rates: Mapping[str, Mapping[str, float]],
    schemas: Mapping[int, Mapping[str, Any]],
    sources: Mapping[str, Any],
) -> dict[str, Any]:
    """The catalog document served on `GET /catalog`. `route_rates`: route -> {total, per_second},
    summed over the workers."""
    entries = []
    for flow in flows:
        routes, errors = routes_for_flow(router, flow)
        entries.append(
            {
                **{k: v for k, v in flow.items() if k not in ("attribute_variants", "schema_ids")},
                "last_seen": _rfc3339(flow["last_seen_ms"]),
                "schemas": [describe_schema(i, schemas, flow) for i in flow.get("schema_ids") or []],
                "routes": routes,
                "routing_errors": errors,
            }
        )
    route_set = router.route_set if router is not None else None
    routes = [
        {**route.to_doc(), "per_second": route_rates.get(route.name, {}).get("per_second", 0.0),
         "total": route_rates.get(route.name, {}).get("total", 0.0)}
        for route in (route_set.routes if route_set is not None else ())
    ]  # fmt: skip
    return {
        "generated_at": _rfc3339(int(time.time() * 1000)),
        "sources": dict(sources),
        "route_set": {"version": route_set.version if route_set is not None else None, "routes": routes},
        "flows": entries,
        "lineage": lineage(entries, route_rates),
    }


def lineage(flows: list[dict[str, Any]], route_rates: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Nodes and edges for the picture: producers -> ingest topics -> routes -> derived topics.

    Edge rates: producer->ingest and ingest->route are the observed flow rates; route->derived topic
    sums the flows feeding that pair (the worker's per-route rate is on the route node)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], float] = {}

    def node(kind: str, name: str, **extra: Any) -> str:
        node_id = f"{kind}:{name}"
        nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": name, **extra})
        return node_id

    def edge(a: str, b: str, rate: float) -> None:
        edges[(a, b)] = edges.get((a, b), 0.0) + rate

    for flow in flows:
        rate = float(flow.get("per_second") or 0.0)
        ingest = node("ingest", flow["ingest_topic"])
        for producer in flow.get("producers") or ["(unknown producer)"]:
            edge(node("producer", producer), ingest, rate / max(len(flow.get("producers") or [1]), 1))
        for hit in flow["routes"]:
            rates = route_rates.get(hit["route"], {})
            route = node("route", hit["route"], per_second=rates.get("per_second", 0.0))
            edge(ingest, route, rate)
            edge(route, node("derived", hit["topic"]), rate)
        if not flow["routes"]:
            edge(ingest, node("unrouted", "no route matches"), rate)
    return {
        "nodes": list(nodes.values()),
        "edges": [{"from": a, "to": b, "per_second": round(r, 3)} for (a, b), r in edges.items()],
    }


def _rfc3339(ms: int) -> str | None:
    if ms <= 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"

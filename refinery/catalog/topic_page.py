"""What the catalog knows about one topic besides Kafka's own figures (pure functions, no I/O): the flows
that reach it, the routes feeding it (or, for an ingest topic, the routes it feeds), its producers and the
registry subjects of its records. Everything comes from the catalog document (`build.build_catalog`), so
the topic page agrees with the flows table and the lineage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from common.errors import TopicNameError
from common.topics import parse_topic
from producers.schemas import subject_for


def _flow_name(flow: Mapping[str, Any]) -> str:
    return f"{flow['env']}/{flow['source']}/{flow['title']}/{flow['category']}/v{flow['version']}"


def topic_context(name: str, kind: str | None, catalog: Mapping[str, Any]) -> dict[str, Any]:
    """Flows, routes in and out, producers and subjects of topic `name` (kind from `topic_stats`)."""
    flows = catalog.get("flows") or []
    route_docs = {r["name"]: r for r in (catalog.get("route_set") or {}).get("routes") or []}
    if kind == "ingest":
        feeding = [f for f in flows if f["ingest_topic"] == name]
        routes_in: set[str] = set()
        routes_out = {r["route"] for f in feeding for r in f["routes"]}
    else:
        feeding = [f for f in flows if any(r["topic"] == name for r in f["routes"])]
        routes_in = {r["route"] for f in feeding for r in f["routes"] if r["topic"] == name}
        routes_in |= {n for n, r in route_docs.items() if (r.get("to") or {}).get("topic") == name}
        routes_out = set()
    subjects = {subject_for(f["title"], f["category"]) for f in feeding}
    if kind == "derived":
        try:
            parsed = parse_topic(name)
            subjects.add(subject_for(parsed.title, parsed.category))  # asked even before a flow is seen
        except TopicNameError:
            pass

    def route_entry(route: str) -> dict[str, Any]:
        doc = route_docs.get(route, {"name": route})
        return {
            "name": route,
            "match": doc.get("match"),
            "to": doc.get("to"),
            "per_second": doc.get("per_second", 0.0),
        }

    return {
        "flows": [
            {
                "flow": _flow_name(f),
                "ingest_topic": f["ingest_topic"],
                "per_second": f["per_second"],
                "records": f["records"],
                "schemas": f["schemas"],
            }
            for f in feeding
        ],
        "routes_in": [route_entry(r) for r in sorted(routes_in)],
        "routes_out": [route_entry(r) for r in sorted(routes_out)],
        "producers": sorted({p for f in feeding for p in f.get("producers") or []}),
        "subjects": sorted(subjects),
    }


def search(query: str, topics: Sequence[Mapping[str, Any]], catalog: Mapping[str, Any]) -> dict[str, Any]:
    """Topics, routes and flows whose names contain every word of `query` (case-insensitive)."""
    words = [w for w in query.lower().split() if w]

    def hit(*texts: str) -> bool:
        joined = " ".join(texts).lower()
        return bool(words) and all(w in joined for w in words)

    flows = catalog.get("flows") or []
    routes = (catalog.get("route_set") or {}).get("routes") or []
    return {
        "query": query,
        "topics": [dict(t) for t in topics if hit(t["name"], t["kind"])],
        "routes": [
            {"name": r["name"], "to": r.get("to")} for r in routes if hit(r["name"], str(r.get("to")))
        ],
        "flows": [
            {
                "flow": _flow_name(f),
                "ingest_topic": f["ingest_topic"],
                "subjects": sorted({s["subject"] for s in f["schemas"] if s.get("subject")}),
                "topics": sorted({r["topic"] for r in f["routes"]}),
            }
            for f in flows
            if hit(_flow_name(f), *(s.get("subject") or "" for s in f["schemas"]))
        ],
    }

"""The catalog document from observed flows, the workload route set and registry answers (no services)."""

from __future__ import annotations

from typing import Any

from common import headers as h
from common.config import REPO_ROOT
from refinery.catalog.build import build_catalog
from refinery.catalog.flows import FlowTable
from refinery.routing.router import Router, compile_router
from refinery.routing.rules import load_route_file

WORKLOAD_ROUTES = REPO_ROOT / "refinery" / "routes" / "workload.yaml"


def record(
    env: str, source: str, title: str, category: str, version: int, schema_id: int, **attrs: str
) -> dict:
    out = {h.ENV: env, h.SOURCE: source, h.TITLE: title, h.CATEGORY: category, h.VERSION: str(version),
           h.SCHEMA_ID: str(schema_id), h.FORMAT: "avro", h.PRODUCER: "demo/1"}  # fmt: skip
    out.update({h.attribute_header(k): v for k, v in attrs.items()})
    return {k: v.encode() for k, v in out.items()}


def workload_router() -> Router:
    return compile_router(load_route_file(WORKLOAD_ROUTES))


RATES = {"pc-kills": {"total": 10.0, "per_second": 1.5}}


def observed() -> FlowTable:
    table = FlowTable()
    prod, dev, t0 = "prod.telemetry.ingest.all-v1", "dev.telemetry.ingest.all-v1", 1_700_000_000_000
    table.observe_many(
        [(prod, record("prod", "telemetry", "1234", "player_killed", 2, 7, platform="pc"), t0),
         (prod, record("prod", "telemetry", "1234", "player_killed", 2, 7, platform="ps"), t0 + 500),
         (prod, record("prod", "telemetry", "5678", "session_heartbeat", 1, 9, platform="ps"), t0 + 100),
         (dev, record("dev", "telemetry", "2345", "crash_report", 1, 11), t0 + 200),
         (prod, {h.ENV: b"prod"}, t0 + 300)]  # no metadata: the workers dead-letter it
    )  # fmt: skip
    return table


def by_key(catalog: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {(f["env"], f["title"], f["category"], f["version"]): f for f in catalog["flows"]}


def test_flows_carry_their_schema_rate_and_last_seen() -> None:
    # The registry keeps one id per schema text: id 7 is shared by two titles' subjects.
    subjects = [{"subject": "2345.player_killed-value", "version": 2},
                {"subject": "1234.player_killed-value", "version": 2}]  # fmt: skip
    schemas = {7: {"format": "AVRO", "subjects": subjects}}
    catalog = build_catalog(observed().snapshot(), workload_router(), RATES, schemas, {"workers": []})
    flows = by_key(catalog)
    assert len(flows) == 3  # the record without metadata is not a flow
    kills = flows[("prod", "1234", "player_killed", "2")]
    assert kills["records"] == 2
    assert kills["schemas"] == [{"id": 7, "registered": True, "format": "AVRO", "shared_with": 1,
                                 "subject": "1234.player_killed-value", "subject_version": 2}]  # fmt: skip
    assert kills["last_seen"] == "2023-11-14T22:13:20.500Z"
    assert kills["attributes"] == {"platform": ["pc", "ps"]}
    assert flows[("prod", "5678", "session_heartbeat", "1")]["schemas"] == [{"id": 9, "registered": False}]


def test_routes_come_from_the_workers_router_with_attribute_conditions() -> None:
    flows = by_key(build_catalog(observed().snapshot(), workload_router(), RATES, {}, {}))
    kills = {r["route"]: r for r in flows[("prod", "1234", "player_killed", "2")]["routes"]}
    assert kills["prod-1234-by-category"]["topic"] == "prod.telemetry.1234.player_killed-v2"
    assert kills["kills-v2"]["topic"] == "prod.telemetry.all.player_killed-v2"
    assert kills["pc-kills"] == {"route": "pc-kills", "topic": "prod.telemetry.all.pc_kills-v2",
                                 "when": [{"platform": "pc"}]}  # fmt: skip
    assert "when" not in kills["kills-v2"]
    crashes = {r["route"]: r["topic"] for r in flows[("dev", "2345", "crash_report", "1")]["routes"]}
    assert crashes == {"dev-everything": "dev.all.all.all-v1",
                       "crashes-outside-prod": "dev.telemetry.all.crash_report-v1"}  # fmt: skip
    assert flows[("prod", "5678", "session_heartbeat", "1")]["routes"] == []


def test_route_set_lists_every_route_with_worker_rates() -> None:
    catalog = build_catalog([], workload_router(), RATES, {}, {})
    routes = {r["name"]: r for r in catalog["route_set"]["routes"]}
    assert len(routes) == 8
    assert catalog["route_set"]["version"] == load_route_file(WORKLOAD_ROUTES).version
    assert routes["pc-kills"]["per_second"] == 1.5 and routes["kills-v2"]["per_second"] == 0.0
    assert routes["prod-purchases"]["to"] == {"topic": "prod.backend.all.purchase-v1"}


def test_lineage_links_producers_ingest_routes_and_derived_topics() -> None:
    catalog = build_catalog(observed().snapshot(), workload_router(), RATES, {}, {})
    nodes = {n["id"]: n for n in catalog["lineage"]["nodes"]}
    edges = {(e["from"], e["to"]) for e in catalog["lineage"]["edges"]}
    assert nodes["route:pc-kills"]["per_second"] == 1.5
    assert ("producer:demo/1", "ingest:prod.telemetry.ingest.all-v1") in edges
    assert ("ingest:prod.telemetry.ingest.all-v1", "route:kills-v2") in edges
    assert ("route:kills-v2", "derived:prod.telemetry.all.player_killed-v2") in edges
    assert ("ingest:prod.telemetry.ingest.all-v1", "unrouted:no route matches") in edges
    assert {n["kind"] for n in nodes.values()} == {"producer", "ingest", "route", "derived", "unrouted"}


def test_without_a_route_set_flows_are_still_listed() -> None:
    catalog = build_catalog(observed().snapshot(), None, {}, {}, {"workers": [{"ok": False}]})
    assert len(catalog["flows"]) == 3
    assert all(f["routes"] == [] for f in catalog["flows"])
    assert catalog["route_set"] == {"version": None, "routes": []}


def test_a_record_whose_env_contradicts_its_ingest_topic_is_not_a_flow() -> None:
    """The workers dead-letter it (env_mismatch), so the catalog must not draw it as routed."""
    table = FlowTable()
    table.observe(
        "prod.telemetry.ingest.all-v1", record("dev", "telemetry", "1234", "player_killed", 2, 7), 1
    )
    assert table.snapshot() == [] and table.records_without_metadata == 1

"""The lineage laid out by Graphviz: the reference workload's flows give 24+ derived topics, each one box
with its full name, none overlapping; without `dot` the view says what to install (no services)."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from common.config import CatalogSettings, RegistrySettings
from refinery.catalog import lineage_svg
from refinery.catalog.app import create_app
from refinery.catalog.build import build_catalog
from refinery.catalog.flows import FlowTable
from tests.refinery.catalog.browser import node_boxes, overlapping
from tests.refinery.catalog.test_build import record, workload_router

TITLES = ("1234", "2345", "3456", "4567", "5678", "6789")
CATEGORIES = {"match_started": 1, "player_killed": 2, "session_heartbeat": 1, "crash_report": 1}


def workload_catalog() -> dict:
    """Every (env, source, title, category) of the reference workload seen once, routed by its route set."""
    table = FlowTable()
    for env in ("prod", "dev"):
        for source in ("telemetry", "backend"):
            categories = {**CATEGORIES, **({"purchase": 1} if source == "backend" else {})}
            for title in TITLES:
                for category, version in categories.items():
                    headers = record(env, source, title, category, version, 3, platform="pc")
                    table.observe(f"{env}.{source}.ingest.all-v1", headers, 1_700_000_000_000)
    return build_catalog(table.snapshot(), workload_router(), {}, {}, {})


@pytest.fixture
def dot() -> str:
    found = shutil.which("dot")
    if found is None:
        hint = "Graphviz's dot is missing (scripts/setup.sh installs it as root: apt-get install graphviz)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{hint} in CI")
        pytest.skip(hint)
    return found


def test_the_workload_lineage_has_a_readable_box_per_derived_topic(dot: str) -> None:
    catalog = workload_catalog()
    derived = {n["label"] for n in catalog["lineage"]["nodes"] if n["kind"] == "derived"}
    assert len(derived) >= 24
    svg = ET.fromstring(lineage_svg.render_svg(lineage_svg.lineage_dot(catalog["lineage"])))
    boxes = node_boxes(svg)
    assert {n.removeprefix("derived:") for n in boxes if n.startswith("derived:")} == derived
    assert overlapping(boxes) == []
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert derived <= texts  # every name in full, never cut
    links = {a.get("{http://www.w3.org/1999/xlink}href") for a in svg.iter("{http://www.w3.org/2000/svg}a")}
    assert "/catalog/ui/topic?name=prod.telemetry.all.pc_kills-v2" in links


def test_edges_follow_the_rate_in_a_few_steps() -> None:
    dot_text = lineage_svg.lineage_dot(
        {"nodes": [{"id": "ingest:a", "kind": "ingest", "label": "a"},
                   {"id": "route:r", "kind": "route", "label": "r", "per_second": 12.0}],
         "edges": [{"from": "ingest:a", "to": "route:r", "per_second": 10.0},
                   {"from": "route:r", "to": "derived:b", "per_second": 0.0}]}
    )  # fmt: skip
    assert '"ingest:a" -> "route:r" [penwidth="6"' in dot_text
    assert '"route:r" -> "derived:b" [penwidth="1"' in dot_text
    assert 'label="r  (12/s)"' in dot_text


def test_without_dot_the_view_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineage_svg, "dot_path", lambda: None)
    lineage_svg.render_svg.cache_clear()
    with pytest.raises(lineage_svg.LayoutUnavailable, match="apt-get install graphviz"):
        lineage_svg.render_svg("digraph { a -> b }\n")
    app = create_app(CatalogSettings(), registry=RegistrySettings(), observe=False)
    with TestClient(app) as client:
        answer = client.get("/catalog/lineage.svg")
    assert answer.status_code == 503
    assert answer.json()["error_code"] == 50303 and "Graphviz" in answer.json()["message"]

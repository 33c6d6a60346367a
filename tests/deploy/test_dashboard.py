"""The committed Grafana dashboard loads and every PromQL expression in it queries series our services,
the gateway and the producer SDK really export (collected from their own metrics classes) or that
Prometheus makes (`up`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
from prometheus_client import CollectorRegistry

from common.config import REPO_ROOT
from gateway.metrics import GatewayMetrics
from producers.metrics import ProducerMetrics
from refinery.catalog.app import CatalogMetrics
from refinery.worker.metrics import WorkerMetrics
from schema_registry.metrics import RegistryMetrics

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "refinery.json"
PROMETHEUS_SERIES = {"up"}  # written by Prometheus itself for every scrape target


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry exposes, including the suffixes prometheus-client adds (`_total`,
    `_bucket`, ...) for metrics that have no labelled child yet."""
    names = {sample.name for family in registry.collect() for sample in family.samples}
    return names | set(registry._names_to_collectors)


@pytest.fixture(scope="module")
def known_series() -> set[str]:
    names = set(PROMETHEUS_SERIES)
    exporters = (WorkerMetrics(), RegistryMetrics(), CatalogMetrics(), ProducerMetrics(), GatewayMetrics())
    for metrics in exporters:
        names |= exported_names(metrics.registry)
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def selectors(expr: Any) -> Iterator[Any]:
    """Every vector selector in a parsed PromQL expression."""
    if isinstance(expr, promql_parser.VectorSelector):
        yield expr
    elif isinstance(expr, promql_parser.MatrixSelector):
        yield expr.vector_selector
    elif isinstance(expr, promql_parser.Call):
        for arg in expr.args:
            yield from selectors(arg)
    elif isinstance(expr, promql_parser.BinaryExpr):
        yield from selectors(expr.lhs)
        yield from selectors(expr.rhs)
    elif isinstance(expr, promql_parser.AggregateExpr | promql_parser.ParenExpr | promql_parser.UnaryExpr
                    | promql_parser.SubqueryExpr):  # fmt: skip
        yield from selectors(expr.expr)


def test_dashboard_is_valid_and_covers_the_pipeline() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    titles = {p["title"] for p in panels(dashboard)}
    for needed in ("Throughput per route", "DLQ by reason", "Deduplicated outputs", "Consumer lag",
                   "End-to-end latency", "Registry requests", "Registry errors", "Producer send rate",
                   "Producer delivery errors", "Gateway events by outcome",
                   "Gateway request latency"):  # fmt: skip
        assert needed in titles
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_query_uses_metrics_we_export(known_series: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    checked = 0
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = promql_parser.parse(target["expr"])  # raises on a syntax error
            names = [s.name for s in selectors(expr)]
            assert names, f"{panel['title']}: {target['expr']} selects no metric"
            unknown = [n for n in names if n not in known_series]
            assert not unknown, f"{panel['title']}: {target['expr']} uses {unknown}, which nothing exports"
            checked += 1
    assert checked >= 15


def test_datasource_is_the_provisioned_one() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = (
        REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    ).read_text()
    assert "uid: prometheus" in datasource
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]


def test_variables_env_title_instance_filter_the_panels(known_series: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["env", "title", "instance"]
    for name, variable in variables.items():
        query = variable["query"]["query"]
        inner, _, label = query.removeprefix("label_values(").removesuffix(")").rpartition(", ")
        assert label == name, query
        selector = promql_parser.parse(inner)
        assert isinstance(selector, promql_parser.VectorSelector) and selector.name in known_series, query
        assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"
    worker_series = {n for n in exported_names(WorkerMetrics().registry) if n.startswith("refinery_")}
    per_instance = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            for selector in selectors(promql_parser.parse(target["expr"])):
                matchers = {m.name: m.value for m in selector.matchers.matchers}
                if selector.name in worker_series or matchers.get("job") == "worker":
                    assert matchers.get("instance") == "$instance", f"{panel['title']}: {target['expr']}"
                if selector.name == "refinery_records_by_origin_total":
                    assert matchers.get("env") == "$env" and matchers.get("title") == "$title", target["expr"]
            if "by (instance)" in target["expr"]:
                per_instance.append(panel["title"])
    assert {"Ready per worker instance", "Ingest rate per worker instance",
            "Consumer lag per worker instance"} <= set(per_instance)  # fmt: skip

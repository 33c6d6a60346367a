"""The live route set on the real broker: publish, watch, refuse invalid sets, ignore bad records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from refinery.control.route_store import (
    ROUTES_KEY,
    RouteWatcher,
    apply_routes_file,
    publish_route_set,
    show_routes,
)
from refinery.routing.router import Router
from refinery.routing.rules import FixedTopic, Route, RouteSet, RuleError, load_route_file, load_route_set
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

WORKLOAD_ROUTES = Path(__file__).resolve().parents[3] / "refinery" / "routes" / "workload.yaml"
SMALL = "routes:\n  - {name: dev-all, match: {env: dev}, to: {topic: dev.all.all.all-v1}}\n"


def config(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap}


def test_published_set_reaches_a_watcher(kafka_bootstrap: str, unique_name: str) -> None:
    rs = load_route_file(WORKLOAD_ROUTES)
    seen: list[Router] = []
    with RouteWatcher(config(kafka_bootstrap), unique_name, on_change=seen.append) as watcher:
        assert watcher.wait_ready(30)
        assert watcher.current() is None
        publish_route_set(config(kafka_bootstrap), unique_name, rs)
        assert watcher.wait_for_version(rs.version, 20)
        router = watcher.current()
        assert router is not None and router.route_set == rs
        assert [r.route_set.version for r in seen] == [rs.version]
    admin = AdminClient(config(kafka_bootstrap))
    resource = ConfigResource(ConfigResource.Type.TOPIC, unique_name)
    topic_config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert topic_config["cleanup.policy"].value == "compact"


def test_two_watchers_see_every_update(kafka_bootstrap: str, unique_name: str) -> None:
    first = load_route_set(SMALL)
    second = load_route_file(WORKLOAD_ROUTES)
    publish_route_set(config(kafka_bootstrap), unique_name, first)
    with (
        RouteWatcher(config(kafka_bootstrap), unique_name) as a,
        RouteWatcher(config(kafka_bootstrap), unique_name) as b,
    ):
        assert a.wait_for_version(first.version, 20) and b.wait_for_version(first.version, 20)
        publish_route_set(config(kafka_bootstrap), unique_name, second)
        assert a.wait_for_version(second.version, 20) and b.wait_for_version(second.version, 20)
        assert show_routes(config(kafka_bootstrap), unique_name).endswith(second.canonical_text)


def test_invalid_sets_are_refused_before_publishing(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    bad_file = tmp_path / "routes.yaml"
    bad_file.write_text(SMALL.replace("dev.all.all.all-v1", "prod.all.all.all-v1"))
    with pytest.raises(RuleError, match="route 'dev-all': to: the match admits env"):
        apply_routes_file(config(kafka_bootstrap), unique_name, bad_file)
    looping = RouteSet(
        routes=(Route("loop", load_route_set(SMALL).routes[0].match, FixedTopic("dev.x.ingest.all-v1")),)
    )
    with pytest.raises(RuleError, match=r"route 'loop': to\.topic: .*ingest topic"):
        publish_route_set(config(kafka_bootstrap), unique_name, looping)
    assert consume_all(kafka_bootstrap, [unique_name], timeout=5, idle=1) == []
    assert show_routes(config(kafka_bootstrap), unique_name).startswith("# no route set has been published")


def test_invalid_records_on_the_topic_are_ignored(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = load_route_set(SMALL)
    newer = load_route_file(WORKLOAD_ROUTES)
    with RouteWatcher(config(kafka_bootstrap), unique_name, initial=good) as watcher:
        assert watcher.current() is not None and watcher.current().route_set == good  # type: ignore[union-attr]
        raw = Producer(config(kafka_bootstrap))
        for value in (b"not json", b'{"format": 1, "routes": "routes: [", "version": "x"}', None):
            raw.produce(unique_name, key=ROUTES_KEY, value=value)
        raw.produce(unique_name, key=b"other", value=b"{}")
        assert raw.flush(10) == 0
        wait_for(
            lambda: len([r for r in caplog.records if r.getMessage().startswith("ignoring")]) == 4,
            timeout=20,
            what="the watcher to log and skip the four bad records",
        )
        assert watcher.current().route_set == good  # type: ignore[union-attr]
        routes_file = tmp_path / "routes.yaml"
        routes_file.write_text(WORKLOAD_ROUTES.read_text())
        assert apply_routes_file(config(kafka_bootstrap), unique_name, routes_file) == newer
        assert watcher.wait_for_version(newer.version, 20)
        assert watcher.current().route_set == newer  # type: ignore[union-attr]

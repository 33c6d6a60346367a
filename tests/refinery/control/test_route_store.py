"""The live route set on the real broker: publish, watch, refuse invalid sets, ignore bad records, record
who and when with a history that survives compaction, read without creating the topic, the drop guard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from refinery.control.route_changes import RouteChangeRefused, apply_route_set
from refinery.control.route_store import (
    RECORD_FORMAT,
    ROUTES_KEY,
    RouteWatcher,
    apply_routes_file,
    ensure_routes_topic,
    publish_route_set,
    read_route_log,
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


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient(config(bootstrap)).list_topics(timeout=30).topics


def test_each_publish_records_who_and_when_and_history_survives(
    kafka_bootstrap: str, unique_name: str
) -> None:
    first, second = load_route_set(SMALL), load_route_file(WORKLOAD_ROUTES)
    before = datetime.now(UTC) - timedelta(seconds=1)
    published = [
        publish_route_set(config(kafka_bootstrap), unique_name, first, who="alice"),
        publish_route_set(config(kafka_bootstrap), unique_name, second, who="bob"),
        publish_route_set(config(kafka_bootstrap), unique_name, first, who="carol"),  # a rollback
    ]
    route_log = read_route_log(config(kafka_bootstrap), unique_name)
    assert route_log.live is not None and route_log.live.route_set == first
    assert route_log.live.publication == published[-1]
    assert route_log.history == published[::-1]  # newest first, the rollback its own entry
    assert [(p.who, p.route_count) for p in route_log.history] == [("carol", 1), ("bob", 8), ("alice", 1)]
    for pub in route_log.history:
        assert pub.when is not None and before <= datetime.fromisoformat(pub.when) <= datetime.now(UTC)
    # three `routes` records (compaction will keep the newest) and three history keys that never repeat
    # (so compaction keeps every one)
    keys = [m.key() for m in consume_all(kafka_bootstrap, [unique_name], timeout=10, idle=1)]
    assert keys.count(ROUTES_KEY) == 3 and len({k for k in keys if k != ROUTES_KEY}) == 3
    assert show_routes(config(kafka_bootstrap), unique_name).startswith(
        f"# route set version {first.version} (from {unique_name!r}), published by carol at "
    )
    assert publish_route_set(config(kafka_bootstrap), unique_name, first).who.startswith("python:")  # type: ignore[union-attr]


def test_watcher_reports_the_publication_and_skips_history(
    kafka_bootstrap: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    rs = load_route_set(SMALL)
    published = publish_route_set(config(kafka_bootstrap), unique_name, rs, who="ops")
    with RouteWatcher(config(kafka_bootstrap), unique_name) as watcher:
        assert watcher.wait_for_version(rs.version, 20) and watcher.wait_ready(20)
        assert watcher.publication() == published
    assert not [r for r in caplog.records if "unexpected key" in r.getMessage()]


def test_reading_never_creates_the_topic_and_old_records_still_count(
    kafka_bootstrap: str, unique_name: str
) -> None:
    empty = read_route_log(config(kafka_bootstrap), unique_name)
    assert (empty.live, empty.history) == (None, [])
    assert show_routes(config(kafka_bootstrap), unique_name).startswith("# no route set has been published")
    assert not topic_exists(kafka_bootstrap, unique_name)
    # a record from before who/when/history existed: decoded, dated by its Kafka timestamp
    rs = load_route_set(SMALL)
    ensure_routes_topic(config(kafka_bootstrap), unique_name)
    old = json.dumps({"format": RECORD_FORMAT, "version": rs.version, "routes": rs.canonical_text}).encode()
    raw = Producer(config(kafka_bootstrap))
    raw.produce(unique_name, key=ROUTES_KEY, value=old)
    assert raw.flush(10) == 0
    route_log = read_route_log(config(kafka_bootstrap), unique_name)
    assert route_log.live is not None and route_log.live.route_set == rs
    [legacy] = route_log.history
    assert (legacy.version, legacy.who, legacy.route_count) == (rs.version, None, 1) and legacy.when
    newer = publish_route_set(
        config(kafka_bootstrap), unique_name, load_route_file(WORKLOAD_ROUTES), who="ops"
    )
    assert read_route_log(config(kafka_bootstrap), unique_name).history == [newer]  # the old set is gone


def test_apply_refuses_drastic_drops_unless_forced(kafka_bootstrap: str, unique_name: str) -> None:
    workload = load_route_file(WORKLOAD_ROUTES)
    conf = config(kafka_bootstrap)
    with pytest.raises(RouteChangeRefused, match="no routes"):
        apply_route_set(conf, unique_name, load_route_set("routes: []\n"), who="ops")
    assert not topic_exists(kafka_bootstrap, unique_name)  # refused before anything was written
    first = apply_route_set(conf, unique_name, workload, who="ops")
    assert first.diff.added == workload.route_names() and not first.publication.forced
    with pytest.raises(RouteChangeRefused, match=r"would drop 8 of the 8 live routes") as refused:
        apply_route_set(conf, unique_name, load_route_set(SMALL), who="ops")
    assert refused.value.dropped == workload.route_names()
    assert read_route_log(conf, unique_name).live.route_set == workload  # type: ignore[union-attr]
    forced = apply_route_set(conf, unique_name, load_route_set(SMALL), who="boss", force=True)
    assert forced.publication.forced and forced.diff.removed == workload.route_names()
    history = read_route_log(conf, unique_name).history
    assert [(p.who, p.forced) for p in history] == [("boss", True), ("ops", False)]

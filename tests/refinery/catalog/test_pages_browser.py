"""The catalog's analyst pages in headless Chromium against the real broker, a real registry and a real
worker: the topic page (partitions read from Kafka, a consumer group's lag, the route feeding it, the
schema diff between versions, records decoded by schema id), the dead-letter workbench (reasons, decoded
payload or hex, the replay command), the lineage laid out by Graphviz (a node per derived topic, no boxes
overlapping, 30+ derived topics) and search.

One pipeline per module: a worker routing `player_killed` records by title into `prod.<src>.<title>...`,
the SDK sending Avro v2 records for one title (v1 and v2 registered), raw records for 31 more titles, and
bad records that the worker dead-letters.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from common.config import (
    CatalogSettings,
    KafkaSettings,
    ProducerSettings,
    RegistrySettings,
    WorkerSettings,
)
from producers.producer import Producer
from producers.schemas import SchemaCatalog
from producers.workload import WorkloadGenerator
from refinery.catalog.app import create_app
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.browser import chromium_or_skip
from tests.refinery.catalog.browser import (
    inline_svg,
    loaded_dom,
    node_boxes,
    overlapping,
    serving,
)
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration
SCHEMAS = Path(__file__).resolve().parents[3] / "producers" / "workload_schemas"
TITLE = "1234"
OTHER_TITLES = [f"9{i:03d}" for i in range(31)]
ROUTES = """
envs: [prod, dev]
routes:
  - name: kills-by-title
    match: {category: player_killed}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
"""


@dataclass
class Pipeline:
    name: str
    bootstrap: str
    catalog_url: str
    chromium: str
    topic: str  # the derived topic of TITLE's kills
    sent: list[dict]  # the payloads the SDK sent
    group: str  # a consumer group with committed offsets on `topic`

    def dom(self, path: str) -> str:
        return loaded_dom(self.chromium, self.catalog_url + path)


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    chromium = chromium_or_skip("the catalog page tests")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing (bash scripts/setup.sh installs it as root)")
    tmp = tmp_path_factory.mktemp("catalog-pages")
    name = f"catpages{uuid.uuid4().hex[:8]}"  # topics, groups and the worker's own
    kafka, registry = KafkaSettings(bootstrap_servers=kafka_bootstrap), RegistrySettings(url=registry_url)
    env = worker_env(kafka_bootstrap, name, tmp)
    publish_route_set(
        {"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"], load_route_set(ROUTES)
    )
    catalog = SchemaCatalog.from_settings(registry)
    for version in (1, 2):
        text = (SCHEMAS / f"player_killed_v{version}.avsc").read_text()
        catalog.register(TITLE, "player_killed", text, "AVRO", version=version)
    v2 = catalog.resolve(TITLE, "player_killed", 2)
    catalog.close()
    kills = [m.payload for m in WorkloadGenerator(seed=7).take(400) if m.category == "player_killed"][:12]
    sent = [{**p, "match_id": f"m-catalog-{i}", "weapon": f"weapon-{i}"} for i, p in enumerate(kills)]
    ingest = f"prod.{name}.ingest.all-v1"
    with Producer(
        ProducerSettings(env="prod", source=name, partitions=3), kafka=kafka, registry=registry
    ) as sdk:
        for payload in sent:
            sdk.send(TITLE, "player_killed", 2, payload, attributes={"platform": "pc"})
        sdk.flush(30)
    # 31 more titles (raw payloads: the worker routes on headers alone), and records it dead-letters
    others = [
        (f"k{t}".encode(), *record("prod", name, t, "player_killed", version=2, schema_id=v2.schema_id))
        for t in OTHER_TITLES
    ]
    (good,) = consume_all(kafka_bootstrap, [ingest], expected=1, timeout=30, idle=2)[:1]
    lying = [(k, b"dev" if k == "ce_env" else v) for k, v in good.headers() or []]
    bad = [(b"no-headers", b"\xde\xad\xbe\xef not an envelope", None), (b"lying-env", good.value(), lying)]
    send(kafka_bootstrap, ingest, [*others, *bad])
    worker = WorkerProcess(env, tmp / "worker.log").start()
    topic = f"prod.{name}.{TITLE}.player_killed-v2"
    group = f"{name}-analyst"
    try:
        consume_all(
            kafka_bootstrap,
            [topic],
            expected=len(sent),
            timeout=60,
            idle=5,
            extra_config={"group.id": group, "enable.auto.commit": True, "auto.commit.interval.ms": 100},
        )
        wait_for(
            lambda: (
                len(consume_all(kafka_bootstrap, [env["REFINERY_WORKER_DLQ_TOPIC"]], timeout=10, idle=2)) >= 2
            ),
            timeout=60,
            what="two dead letters",
        )
        with Producer(
            ProducerSettings(env="prod", source=name, partitions=3), kafka=kafka, registry=registry
        ) as sdk:
            sdk.send(TITLE, "player_killed", 2, {**sent[0], "match_id": "m-after-commit"})
            sdk.flush(30)  # one record past the analyst group's commit: lag 1
        wait_for(
            lambda: (
                sum(1 for _ in consume_all(kafka_bootstrap, [topic], timeout=10, idle=2)) == len(sent) + 1
            ),
            timeout=60,
            what="the record after the commit",
        )
        app = create_app(
            CatalogSettings(group_id=f"{name}-catalog", start_from="earliest", worker_urls=worker.url),
            kafka,
            registry,
            WorkerSettings(
                routes_topic=env["REFINERY_WORKER_ROUTES_TOPIC"],
                dlq_topic=env["REFINERY_WORKER_DLQ_TOPIC"],
                ingest_pattern=env["REFINERY_WORKER_INGEST_PATTERN"],
            ),
        )
        with serving(app) as url:
            wait_for(
                lambda: len(httpx.get(f"{url}/catalog", timeout=10).json()["flows"]) >= 1 + len(OTHER_TITLES),
                timeout=60,
                what="every flow in the catalog",
            )
            yield Pipeline(name, kafka_bootstrap, url, chromium, topic, sent, group)
    finally:
        worker.stop()


def _text(dom: str) -> str:
    """The page's text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", dom))


def test_topic_page_shows_kafka_facts_groups_routes_schema_diff_and_decoded_records(
    pipeline: Pipeline,
) -> None:
    partitions = len(
        AdminClient({"bootstrap.servers": pipeline.bootstrap})
        .list_topics(timeout=10)
        .topics[pipeline.topic]
        .partitions
    )
    assert partitions == 3  # REFINERY_WORKER_DERIVED_PARTITIONS in the harness
    dom = pipeline.dom(f"/catalog/ui/topic?name={quote(pipeline.topic)}&records=20")
    assert re.search(r'id="fact-partitions"><b>3</b><span>partitions</span>', dom), dom[:3000]
    assert re.search(rf'id="fact-records"><b>{len(pipeline.sent) + 1}</b>', dom)
    assert re.search(r'id="fact-groups"><b>[1-9]\d*</b>', dom)
    group = re.search(
        rf'<tr data-group="{pipeline.group}"><td>{pipeline.group}</td><td class="num group-lag">(\d+)</td>',
        dom,
    )
    assert group is not None and int(group.group(1)) == 1, "the analyst group is one record behind"
    assert 'data-route="kills-by-title"' in dom
    # the schema text of both versions, and the diff adding v2's field
    assert f'data-subject="{TITLE}.player_killed-value"' in dom
    assert 'data-version="1"' in dom and 'data-version="2"' in dom
    found = re.search(r'<pre class="diff">.*?</pre>', dom, re.S)
    assert found is not None
    diff = _text(found.group(0))
    assert '+      "name": "headshot",' in diff and "--- v1" in diff and "+++ v2" in diff
    # the newest records decoded by schema id: every field value the SDK sent
    payloads = [json.loads(_text(p)) for p in re.findall(r'<pre class="payload">(.*?)</pre>', dom, re.S)]
    by_match = {p["match_id"]: p for p in payloads}
    assert len(payloads) == len(pipeline.sent) + 1
    for sent in pipeline.sent:
        assert by_match[sent["match_id"]]["weapon"] == sent["weapon"]
        assert by_match[sent["match_id"]]["killer_id"] == sent["killer_id"]
    assert "m-after-commit" in by_match
    assert "schema id " in _text(dom) and "avro" in _text(dom)


def test_ingest_and_dlq_topics_have_pages_too(pipeline: Pipeline) -> None:
    ingest = pipeline.dom(f"/catalog/ui/topic?name=prod.{pipeline.name}.ingest.all-v1&records=5")
    assert "Routes reading it" in ingest and 'data-route="kills-by-title"' in ingest
    assert re.search(r'id="fact-partitions"><b>3</b>', ingest)
    dlq = pipeline.dom(f"/catalog/ui/topic?name=_{pipeline.name}-dlq&records=5")
    assert 'class="kind dlq">dlq<' in dlq and "dead-letter workbench" in dlq


def test_dead_letter_workbench_shows_reasons_payloads_and_the_replay_command(pipeline: Pipeline) -> None:
    dom = pipeline.dom("/catalog/ui/dlq")
    text = _text(dom)
    assert re.search(r'data-value="missing_header">missing_header \(1\)', dom)
    assert re.search(r'data-value="env_mismatch">env_mismatch \(1\)', dom)
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr class="dead-letter" data-reason="(\w+)".*?</tr>', dom, re.S)
    }
    # no headers, not an envelope: the value as hex
    assert "de ad be ef 20 6e 6f 74" in rows["missing_header"]
    # a valid envelope with a lying header: decoded by its schema id
    payload = re.search(r'<pre class="payload">(.*?)</pre>', rows["env_mismatch"], re.S)
    assert payload is not None, rows["env_mismatch"]
    decoded = json.loads(_text(payload.group(1)))
    original = {p["match_id"]: p for p in pipeline.sent}[decoded["match_id"]]
    assert {k: decoded[k] for k in ("killer_id", "victim_id", "weapon")} == {
        k: original[k] for k in ("killer_id", "victim_id", "weapon")
    }
    since = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(rf"refinery dlq replay --reason env_mismatch --since {since} --dry-run", text)
    assert re.search(r"refinery dlq replay --reason missing_header --since \S+ --dry-run", text)
    # filtering by reason keeps only that reason's dead letters
    only = pipeline.dom("/catalog/ui/dlq?reason=env_mismatch")
    assert only.count('<tr class="dead-letter"') == 1 and 'data-reason="env_mismatch"' in only


def test_lineage_has_a_box_per_derived_topic_and_none_overlap(pipeline: Pipeline) -> None:
    dom = pipeline.dom("/catalog/ui/lineage")
    boxes = node_boxes(inline_svg(dom))
    derived = {n for n in boxes if n.startswith("derived:")}
    expected = {f"derived:prod.{pipeline.name}.{t}.player_killed-v2" for t in [TITLE, *OTHER_TITLES]}
    assert derived == expected and len(derived) >= 30
    assert {n.split(":")[0] for n in boxes} >= {"producer", "ingest", "route", "derived"}
    assert overlapping(boxes) == []
    for topic in expected:  # full names, never cut, each a link to its page
        assert f">{topic.removeprefix('derived:')}</text>" in dom.replace("&#45;", "-")
    assert 'data-id="route:kills-by-title"' in dom


def test_search_finds_topics_and_flows(pipeline: Pipeline) -> None:
    dom = pipeline.dom(f"/catalog/ui?q={pipeline.name}+{TITLE}")
    hits = set(re.findall(r'<div class="hit" data-topic="([^"]+)"', dom))
    assert hits == {pipeline.topic}
    assert f"prod/{pipeline.name}/{TITLE}/player_killed/v2" in _text(dom)
    none = pipeline.dom("/catalog/ui?q=no-such-thing-anywhere")
    assert "0 results" in _text(none)


def test_consumer_commit_is_visible_without_the_browser(pipeline: Pipeline) -> None:
    """The JSON behind the topic page agrees with a consumer's own view of its committed offsets."""
    doc = httpx.get(f"{pipeline.catalog_url}/catalog/topics/{pipeline.topic}?records=0", timeout=30).json()
    consumer = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": pipeline.group})
    committed = consumer.committed([TopicPartition(pipeline.topic, p) for p in range(3)], timeout=10)
    consumer.close()
    (group,) = [g for g in doc["groups"] if g["group"] == pipeline.group]
    assert {p["partition"]: p["committed"] for p in group["partitions"]} == {
        tp.partition: tp.offset for tp in committed if tp.offset >= 0
    }
    assert doc["records"] == len(pipeline.sent) + 1 and len(doc["partitions"]) == 3

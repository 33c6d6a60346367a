"""Topics the pipeline creates itself, on a cluster whose brokers default to replication 3 and
min.insync.replicas=2: with the default settings every creator asks the broker for its defaults
(`replication_factor=-1`, no min.insync.replicas of its own), so each topic gets the cluster's 3 / 2.
The SDK's ingest topics, the workers' derived topics, DLQ and dedup changelog are checked by the fault and
scaling tests, whose harness runs with the default settings too; here the small stores: the routes topic
(`publish_route_set`, `refinery routes apply`, every worker's RouteWatcher), the gateway's API keys and the
registry's `_schemas` and coordination topics."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from common.kafka_admin import TopicEnsurer
from devstack.local_cluster import LocalKafkaCluster
from gateway.keys import ensure_keys_topic
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from tests.reliability.cluster.harness import MIN_ISR, REPLICAS, replication_of
from tests.schema_registry.processes import RegistryProcess

pytestmark = pytest.mark.integration

ROUTES = """
routes:
  - name: everything
    match: {env: prod}
    to: {template: "{env}.{source}.all.everything-v1"}
"""


def test_a_routes_topic_created_on_first_publish_is_replicated(cluster: LocalKafkaCluster) -> None:
    topic = f"_routes_{uuid.uuid4().hex[:8]}"
    publish_route_set(cluster.client_config, topic, load_route_set(ROUTES), timeout_s=10)
    assert replication_of(cluster.client_config, [topic]) == {topic: (REPLICAS, MIN_ISR)}


def test_the_gateway_keys_topic_and_an_ingest_topic_are_replicated(cluster: LocalKafkaCluster) -> None:
    keys = f"_keys_{uuid.uuid4().hex[:8]}"
    ingest = f"prod.c{uuid.uuid4().hex[:6]}.ingest.all-v1"
    ensure_keys_topic(cluster.client_config, keys, timeout_s=10)
    TopicEnsurer(cluster.client_config, partitions=1).ensure(ingest)
    replication = replication_of(cluster.client_config, [keys, ingest])
    assert replication == {keys: (REPLICAS, MIN_ISR), ingest: (REPLICAS, MIN_ISR)}


def test_the_registry_creates_its_topics_with_the_cluster_min_insync_replicas(
    cluster: LocalKafkaCluster, tmp_path: Path
) -> None:
    topic = f"_schemas_new_{uuid.uuid4().hex[:8]}"
    registry = RegistryProcess(cluster.bootstrap, topic, log_path=tmp_path / "registry.log")
    try:
        registry.start()
    finally:
        registry.stop()
    replication = replication_of(cluster.client_config, [topic, f"{topic}_coordination"])
    assert set(replication.values()) == {(REPLICAS, MIN_ISR)}, replication

"""One local 3-node KRaft cluster (`devstack.local_cluster`) for every test in this folder, started on
first use on free ports with its data in a temp dir and wiped when the folder's tests are done; and one
schema registry replica on it for the SDK. Each test starts from a healthy cluster: every node running
(none paused) and no partition under-replicated."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator

import pytest

from common.config import RegistrySettings
from devstack.local_cluster import LocalKafkaCluster
from producers.schemas import SchemaCatalog
from producers.workload import register_workload
from tests.reliability.cluster.harness import CLUSTER_HEAP, create_replicated_topics
from tests.reliability.figures import record_figures
from tests.schema_registry.processes import RegistryProcess
from tests.support import free_port


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="package")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    ports = _free_ports(6)
    cluster = LocalKafkaCluster(ports=ports[:3], controller_ports=ports[3:],
                                home=tmp_path_factory.mktemp("kafka-cluster"), heap=CLUSTER_HEAP)  # fmt: skip
    started = time.monotonic()
    cluster.start(timeout=180)
    record_figures("kafka_cluster_start", nodes=cluster.size, heap=CLUSTER_HEAP,
                   start_s=round(time.monotonic() - started, 1), rss_mb=cluster.rss_mb())  # fmt: skip
    yield cluster
    logs = tmp_path_factory.mktemp("kafka-cluster-logs")  # kept (pytest keeps the last 3 runs' temp dirs)
    for node_id, node in cluster.nodes.items():
        if node.log_file.exists():
            shutil.copy(node.log_file, logs / f"node-{node_id}.log")
        # the group and transaction coordinators' logs too (a few MB): what a committed offset or a
        # transaction's markers did is only in them (kafka-dump-log.sh --offsets-decoder, or
        # --transaction-log-decoder)
        # Only the segments: their indexes are preallocated sparse files (10 MB each) that a copy fills in.
        for segment in (
            *node.data_dir.glob("__consumer_offsets-*/*.log"),
            *node.data_dir.glob("__transaction_state-*/*.log"),
        ):
            target = logs / f"node-{node_id}" / segment.parent.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(segment, target / segment.name)
    cluster.wipe()


@pytest.fixture
def cluster(kafka_cluster: LocalKafkaCluster) -> LocalKafkaCluster:
    """The package's cluster, healthy: a node a previous test left stopped or paused is brought back."""
    for node_id, node in kafka_cluster.nodes.items():
        if node.pid() is None:
            kafka_cluster.start_node(node_id, timeout=120)
        else:
            kafka_cluster.resume(node_id)
    kafka_cluster.wait_healthy(timeout=120)
    return kafka_cluster


@pytest.fixture(scope="package")
def cluster_registry_url(
    kafka_cluster: LocalKafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A registry replica on the cluster, its topics created first with three replicas and
    min.insync.replicas=2 (the registry would create them with min.insync.replicas=1)."""
    topic = f"_schemas_cluster_{uuid.uuid4().hex[:8]}"
    create_replicated_topics(kafka_cluster.client_config, [topic, f"{topic}_coordination"], compacted=True)
    log_path = tmp_path_factory.mktemp("cluster-registry") / "registry.log"
    registry = RegistryProcess(kafka_cluster.bootstrap, topic, log_path=log_path).start()
    yield registry.url
    registry.stop()


@pytest.fixture(scope="package")
def workload_registry_url(cluster_registry_url: str) -> str:
    """The cluster's registry with every schema of the reference workload registered."""
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=cluster_registry_url))
    try:
        register_workload(catalog)
    finally:
        catalog.close()
    return cluster_registry_url

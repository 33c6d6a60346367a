"""The local cluster's layout and configuration (no JVM started here: the cluster itself runs in
tests/reliability/cluster/, whose fixture starts it once for all its fault tests)."""

from pathlib import Path

import pytest

from devstack.local_cluster import LocalKafkaCluster
from devstack.local_kafka import main
from tests.support import free_port


def test_nodes_have_their_own_ports_and_dirs_and_one_quorum(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster.on_ports(29092, 3, home=tmp_path)
    assert cluster.bootstrap == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
    voters = "1@127.0.0.1:29095,2@127.0.0.1:29096,3@127.0.0.1:29097"
    for node_id, node in cluster.nodes.items():
        props = node.server_properties()
        assert props["node.id"] == str(node_id)
        assert props["controller.quorum.voters"] == voters
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{29091 + node_id},CONTROLLER://127.0.0.1:{29094 + node_id}"
        )
        assert props["log.dirs"] == str(tmp_path / f"node-{node_id}" / "data")
        assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        assert node.settings.heap == "256m"


def test_a_smaller_cluster_caps_replication_at_its_size(tmp_path: Path) -> None:
    props = LocalKafkaCluster.on_ports(29092, 2, home=tmp_path).nodes[1].server_properties()
    assert props["default.replication.factor"] == "2" and props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "2"


def test_status_of_a_cluster_that_is_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFINERY_LOCAL_KAFKA_HOME", str(tmp_path / "kafka"))  # the cluster's: ./kafka-cluster
    port = free_port()
    assert main(["status", "--brokers", "3", "--bootstrap", f"127.0.0.1:{port}"]) == 1
    out = capsys.readouterr().out
    assert out.count(": down") == 3 and "active controller: None" in out

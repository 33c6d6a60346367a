"""The local broker runner: start, reuse, stop, restart with data kept (a throwaway broker, own port)."""

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.local_kafka import LocalKafka, port_open
from tests.support import free_port

pytestmark = pytest.mark.integration


def test_start_reuse_stop_restart(tmp_path: Path, kafka_bootstrap: str) -> None:
    port = free_port()
    broker = LocalKafka(port=port, home=tmp_path / "kafka")
    broker.settings = broker.settings.model_copy(update={"controller_port": free_port()})
    try:
        assert broker.start() == "started"
        assert LocalKafka(port=port, home=tmp_path / "other").start() == "reused"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("kept.topic.x.y-v1", 1, 1)])["kept.topic.x.y-v1"].result(timeout=30)
        assert broker.stop() is True
        assert not port_open("127.0.0.1", port)
        assert broker.stop() is False
        assert broker.start() == "started"
        topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
        assert "kept.topic.x.y-v1" in topics
    finally:
        broker.wipe()
    assert not port_open("127.0.0.1", port)


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URL-safe base64 ids begin with "-" one time in 64; kafka-storage must still take it as the id."""
    cluster_id = "-" + LocalKafka._cluster_id()[1:]
    monkeypatch.setattr(LocalKafka, "_cluster_id", staticmethod(lambda: cluster_id))
    broker = LocalKafka(port=free_port(), home=tmp_path / "kafka")
    broker.settings = broker.settings.model_copy(update={"controller_port": free_port()})
    broker._format_storage(broker._write_config(), broker.ensure_jars())
    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta

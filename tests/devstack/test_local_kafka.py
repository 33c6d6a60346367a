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

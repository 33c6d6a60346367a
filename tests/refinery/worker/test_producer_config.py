"""The data plane producer's librdkafka configuration as the settings shape it (no broker). What the
broker then stores is checked end to end in test_worker_pipeline.py (outputs compressed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.config import WorkerSettings
from refinery.worker.clients import producer_factory


def _conf(settings: WorkerSettings, transactional_id: str | None = None) -> dict[str, object]:
    return producer_factory(settings, {"bootstrap.servers": "127.0.0.1:1"}, transactional_id).config()


def test_outputs_are_lz4_compressed_unless_configured_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _conf(WorkerSettings())["compression.type"] == "lz4"
    assert _conf(WorkerSettings(exactly_once=True), "tx-1")["compression.type"] == "lz4"
    monkeypatch.setenv("REFINERY_WORKER_COMPRESSION", "none")
    assert _conf(WorkerSettings())["compression.type"] == "none"
    monkeypatch.setenv("REFINERY_WORKER_COMPRESSION", "zstd")
    assert _conf(WorkerSettings())["compression.type"] == "zstd"
    monkeypatch.setenv("REFINERY_WORKER_COMPRESSION", "brotli")  # not a codec Kafka knows
    with pytest.raises(ValidationError, match="compression"):
        WorkerSettings()


def test_the_guarantees_stay_whatever_the_codec() -> None:
    conf = _conf(WorkerSettings(compression="gzip", linger_ms=0))
    assert (conf["enable.idempotence"], conf["acks"], conf["linger.ms"]) == (True, "all", 0)

"""The worker's /metrics registry carries process_* series and no `_created` series."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from common.config import KafkaSettings, WorkerSettings
from refinery.control.app import create_app


def test_worker_registry_has_process_series_and_no_created(tmp_path: Path) -> None:
    app = create_app(WorkerSettings(data_dir=tmp_path), KafkaSettings())
    app.metrics.topics_created.inc()
    text = generate_latest(app.metrics.registry).decode()
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text
    assert "refinery_topics_created_total 1.0" in text and "_created" not in text.replace(
        "topics_created", ""
    )

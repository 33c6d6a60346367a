"""`refinery dlq replay`: dead letters back to their ingest topic, against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common.headers import Headers
from common.times import parse_time_ms
from common.topics import ingest_topic
from refinery.control.dlq_replay import REPLAY_HEADER, replay_dead_letters, replay_headers
from refinery.routing.dlq import DlqReason, dlq_headers, fit_dead_letter

pytestmark = pytest.mark.integration
REFINERY = Path(sys.executable).parent / "refinery"


def dead_letter(ingest: str, reason: DlqReason, n: int, topic: str | None = None) -> Headers:
    original = [("ce_id", f"0190-{n}".encode()), ("ce_env", b"dev"), ("attr.platform", b"pc")]
    return dlq_headers(
        original, reason=reason, message="no such schema id", topic=topic or ingest, partition=n % 3,
        offset=n, timestamp_ms=1, worker="w-1",
    )  # fmt: skip


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Record]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    out = []
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        wanted = sum(ends.values())
        deadline = time.monotonic() + 20
        while len(out) < wanted and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    out.append((msg.key(), msg.value(), list(msg.headers() or [])))
    finally:
        consumer.close()
    return out


def test_replay_sends_exact_originals_and_counts_what_it_skips(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    dlq, ingest = f"{unique_name}_dlq", ingest_topic(unique_name, "telemetry")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(dlq, 2, 1), NewTopic(ingest, 3, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    now_ms = int(time.time() * 1000)
    unknown = DlqReason.UNKNOWN_SCHEMA
    kept = dead_letter(ingest, unknown, 1)
    producer.produce(dlq, b"envelope-1", b"k1", headers=kept, partition=0)
    producer.produce(dlq, b"envelope-2", b"k2", headers=dead_letter(ingest, unknown, 2), partition=1)
    key, value, cut_headers = fit_dead_letter(b"k3", b"x" * 5000, dead_letter(ingest, unknown, 3), 1500)
    producer.produce(dlq, value, key, headers=cut_headers, partition=0)  # cut to fit: not replayed
    producer.produce(dlq, b"v4", b"k4", headers=dead_letter(ingest, DlqReason.MALFORMED_HEADER, 4))
    producer.produce(dlq, b"v5", b"k5", headers=dead_letter(ingest, unknown, 5, topic="dev.a.b.c-v1"))
    old = now_ms - 3 * 3600 * 1000  # dead-lettered 3 h ago: outside --since 1h
    producer.produce(dlq, b"v6", b"k6", headers=dead_letter(ingest, unknown, 6), timestamp=old, partition=1)
    assert producer.flush(30) == 0
    conf = {"bootstrap.servers": kafka_bootstrap}
    since = parse_time_ms("1h", option="--since")

    dry = replay_dead_letters(conf, dlq, reason="unknown_schema", since_ms=since, dry_run=True)
    assert (dry.scanned, dry.matched, dry.replayed, dry.cut, dry.no_origin) == (5, 4, 2, 1, 1)
    assert dry.summary() == (
        "would replay 2 of 4 dead letters with reason 'unknown_schema' (5 read): 1 cut (not replayed), "
        f"1 without an ingest topic of origin; to: {ingest} (2)"
    )
    assert read_all(kafka_bootstrap, ingest, 3) == []

    environ = {k: v for k, v in os.environ.items() if not k.startswith("REFINERY_")}
    environ |= {"REFINERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REFINERY_WORKER_DLQ_TOPIC": dlq,
                "REFINERY_WORKER_DATA_DIR": str(tmp_path)}  # fmt: skip
    proc = subprocess.run(
        [str(REFINERY), "dlq", "replay", "--reason", "unknown_schema", "--since", "1h"],
        env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [dry.summary().replace("would replay", "replayed")]

    replayed = sorted(read_all(kafka_bootstrap, ingest, 3))
    assert [(k, v) for k, v, _ in replayed] == [(b"k1", b"envelope-1"), (b"k2", b"envelope-2")]
    headers = replayed[0][2]
    assert headers[:3] == kept[:3]  # the originals, in order; no __refinery.errors.* header left
    assert not any(name.startswith("__refinery.errors.") for name, _ in headers)
    assert headers[3][0] == REPLAY_HEADER and headers[3][1].startswith(b"reason=unknown_schema dlq=")


def test_replay_headers_drop_only_the_error_headers() -> None:
    headers = [("ce_id", b"1"), ("__refinery.errors.reason", b"x"), ("ce_id", b"dup")]
    assert replay_headers(headers, "m") == [("ce_id", b"1"), ("ce_id", b"dup"), (REPLAY_HEADER, b"m")]

"""The routing benchmark's second baseline: the router a Python engineer would write by hand in an
afternoon for the reference workload's 8 routes (../shared/workload.md), at-least-once, as a process.

    python -m bench.handwritten_router_main BOOTSTRAP GROUP '["topic", ...]' [PARTITIONS [COMPRESSION [LOOP]]]

consume(1000) -> the 8 routes as plain `if`s on the headers -> produce every output with the record's
own key, value and headers -> every few batches: flush, then commit (so nothing is committed before
its outputs are acknowledged). Derived topics are created on first use, with PARTITIONS partitions
(the harness passes the worker's default, so both routers write the same topics). Its outputs are
uncompressed (the client's default) unless COMPRESSION names a codec (the tuning tool's comparison
with the worker's lz4 outputs; the benchmark's baseline keeps the default). No envelope check,
no DLQ, no dedup, no metrics: what the guards and guarantees of the real worker are measured against.
It starts from the group's committed offsets (pre-committed by the harness), which is how the harness
watches it.

LOOP `latency` is the latency benchmark's variant: the raw pass-through's latency loop
(`bench.kafka_io.PROFILES["latency"]`: consume(1000) returning after 5 ms, 5 ms fetch wait and linger,
an asynchronous commit after every batch, never waiting for a flush) with these routes in it, so the
same outputs as the worker's in the same topics. Its commits do not wait for its outputs (not
at-least-once, as the raw pass-through's): the latency floor of this fan-out written by hand.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.kafka_io import PROFILES
from bench.procs import stop_on_sigterm

COMMIT_EVERY_BATCHES = 5
LOOPS = ("throughput", "latency")


def destinations(h: dict[str, bytes]) -> list[str]:
    """The workload's 8 routes, by hand."""
    env, source, title = h["ce_env"].decode(), h["ce_source"].decode(), h["ce_title"].decode()
    category, version = h["ce_type"].decode(), h["ce_version"].decode()
    out = []
    if env == "prod" and title == "1234":
        out.append(f"{env}.{source}.{title}.{category}-v{version}")
    if env == "prod" and category == "purchase":
        out.append("prod.backend.all.purchase-v1")
    if env == "dev":
        out.append("dev.all.all.all-v1")
    if env == "prod" and title.startswith("2") and category == "match_started":
        out.append("prod.telemetry.2xxx.match_started-v1")
    if env != "prod" and category == "crash_report":
        out.append("dev.telemetry.all.crash_report-v1")
    if title in ("3456", "4567"):
        out.append(f"{env}.{source}.{title}.all-v1")
    if env == "prod" and h.get("attr.platform") == b"pc" and category == "player_killed":
        out.append("prod.telemetry.all.pc_kills-v2")
    if category == "player_killed" and version == "2":
        out.append(f"{env}.telemetry.all.player_killed-v2")
    return out


def main(argv: list[str]) -> int:
    bootstrap, group, topics = argv[0], argv[1], json.loads(argv[2])
    partitions = int(argv[3]) if len(argv) > 3 else 1
    compression = argv[4] if len(argv) > 4 else "none"
    loop = argv[5] if len(argv) > 5 else "throughput"
    if loop not in LOOPS:
        raise SystemExit(f"LOOP must be one of {', '.join(LOOPS)}, not {loop!r}")
    latency = PROFILES["latency"]
    batch_timeout_s = latency.timeout_s if loop == "latency" else 1.0
    stop = stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **(latency.consumer if loop == "latency" else {}),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": compression,
        }
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    known: set[str] = set()
    consumer.subscribe(topics)
    batches = 0
    try:
        while not stop.is_set():
            msgs = consumer.consume(1000, batch_timeout_s)
            for m in msgs:
                if m.error() is not None:
                    continue
                headers: Any = m.headers() or []
                for topic in destinations(dict(headers)):
                    if topic not in known:
                        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
                            try:
                                future.result()
                            except KafkaException:
                                pass  # already exists
                        known.add(topic)
                    while True:
                        try:
                            producer.produce(topic, m.value(), m.key(), headers=headers)
                            break
                        except BufferError:
                            producer.poll(0.05)
            producer.poll(0)
            batches += 1
            if msgs and loop == "latency":
                consumer.commit(asynchronous=True)
            elif msgs and batches % COMMIT_EVERY_BATCHES == 0:
                producer.flush()
                consumer.commit(asynchronous=True)
    finally:
        producer.flush(10)
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing new to commit
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The routing baseline as a process: a tuned raw confluent-kafka consume(batch) -> produce pass-through
with no decisions, from the ingest topics to one sink topic, until SIGTERM.

    python -m bench.passthrough_main BOOTSTRAP GROUP SINK '["topic", ...]' PROFILE

PROFILE is a name in `bench.kafka_io.PROFILES` (throughput, latency) or a JSON `PassThroughProfile`.

It starts from the group's committed offsets (pre-committed by the harness) and commits asynchronously
after every batch, which is how the harness watches its progress.
"""

from __future__ import annotations

import json
import sys

from confluent_kafka import Consumer, Producer

from bench.kafka_io import PROFILES, PassThroughProfile
from bench.procs import stop_on_sigterm


def main(argv: list[str]) -> int:
    bootstrap, group, sink, topics = argv[0], argv[1], argv[2], json.loads(argv[3])
    profile = PROFILES[argv[4]] if argv[4] in PROFILES else PassThroughProfile(**json.loads(argv[4]))
    stop = stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **profile.consumer,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, **profile.producer})
    consumer.subscribe(topics)
    produce, poll, consume, commit = producer.produce, producer.poll, consumer.consume, consumer.commit
    try:
        while not stop.is_set():
            msgs = consume(profile.batch, profile.timeout_s)
            if not msgs:
                continue
            for m in msgs:
                if m.error() is None:
                    produce(sink, m.value(), m.key(), headers=m.headers())
            poll(0)
            commit(asynchronous=True)
    finally:
        producer.flush(10)
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

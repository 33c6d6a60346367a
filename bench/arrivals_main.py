"""The latency benchmark's reader as its own process (so it does not share a GIL with the sender):
reads the given partitions from the given offsets and, on SIGTERM, writes one line per record,
`message_id wall_time`, to OUTFILE.

    python -m bench.arrivals_main BOOTSTRAP OUTFILE '[["topic", partition, offset], ...]'
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from bench.procs import stop_on_sigterm
from common.headers import MESSAGE_ID


def main(argv: list[str]) -> int:
    bootstrap, out_path, assignment = argv[0], argv[1], json.loads(argv[2])
    stop = stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-arrivals-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,  # the broker answers once a record lands; this bounds idle polls
        }
    )
    consumer.assign([TopicPartition(t, p, o) for t, p, o in assignment])
    arrivals: list[tuple[bytes, float]] = []
    # poll(), not consume(n, timeout): consume() returns only when n records are there or the timeout
    # passed, so at 10k msg/s a consume(1000, 50 ms) stamped most records up to 50 ms late.
    poll = consumer.poll
    try:
        while not stop.is_set():
            m = poll(0.1)
            if m is None:
                continue
            now = time.time()
            if m.error() is None:
                for key, value in m.headers() or []:  # type: ignore[union-attr, str-unpack]
                    if key == MESSAGE_ID:
                        arrivals.append((value, now))  # type: ignore[arg-type]
                        break
    finally:
        consumer.close()
        with open(out_path, "w") as out:
            out.writelines(f"{mid.decode()} {t:.6f}\n" for mid, t in arrivals)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

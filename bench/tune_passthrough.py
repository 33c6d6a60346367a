"""Tune the routing baseline: run raw pass-through variants over the same pre-filled records, alternating
them round by round so machine noise hits all alike, and write `bench/results/passthrough_tuning.json`.

    .venv/bin/python -m bench.tune_passthrough [--records N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

from bench.benchmarks.routing import passthrough_rate
from bench.context import BenchContext, ensure_broker, environment_info
from bench.kafka_io import PROFILES, PassThroughProfile, prefill
from common.config import REPO_ROOT, KafkaSettings

TUNED = PROFILES["throughput"]
VARIANTS: dict[str, PassThroughProfile] = {
    "tuned": TUNED,
    "librdkafka defaults, consume(1000, 1s), poll per batch": PassThroughProfile(
        1000, 1.0, {}, {"enable.idempotence": True}
    ),
    "batch 500": replace(TUNED, batch=500),
    "batch 10000": replace(TUNED, batch=10_000),
    "linger 20 ms": replace(TUNED, producer={**TUNED.producer, "linger.ms": 20}),
    "lz4": replace(TUNED, producer={**TUNED.producer, "compression.type": "lz4"}),
    "acks=1, not idempotent": replace(
        TUNED, producer={**TUNED.producer, "enable.idempotence": False, "acks": 1}
    ),
    "shallow prefetch (queued.min.messages 100k, back-off 1 s)": replace(
        TUNED, consumer={**TUNED.consumer, "queued.min.messages": 100_000, "fetch.queue.backoff.ms": 1000}
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tune_passthrough")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bootstrap, started = ensure_broker(KafkaSettings())
    ctx = BenchContext(bootstrap=bootstrap)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        ingest = prefill(ctx, args.records, size=1024)
        for _ in range(args.rounds):
            for name, profile in VARIANTS.items():
                rates[name].append(passthrough_rate(ctx, ingest, 600, profile).rate)
                ctx.log(f"{name}: {rates[name][-1]:,.0f} msg/s")
    finally:
        ctx.close()
        if started is not None:
            started.stop()
    doc = {
        "environment": environment_info(bootstrap),
        "records": args.records,
        "variants": {
            name: {"median_msgs_per_s": round(statistics.median(r)), "runs": [round(x) for x in r]}
            for name, r in rates.items()
        },
        "profiles": {name: p.to_doc() for name, p in VARIANTS.items()},
    }
    (REPO_ROOT / "bench" / "results" / "passthrough_tuning.json").write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in rates.items():
        print(f"{statistics.median(r):>10,.0f} msg/s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

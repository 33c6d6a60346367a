"""Tune the routing baseline: run raw pass-through variants over the same pre-filled records, alternating
them round by round so machine noise hits all alike, and write `bench/results/passthrough_tuning.json`.

    .venv/bin/python -m bench.tune_passthrough [--records N] [--rounds R] [--own-broker]
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

from bench.benchmarks.routing import passthrough_rate
from bench.context import environment_info
from bench.kafka_io import BIG_BATCHES, DEEP_PREFETCH, PROFILES, PassThroughProfile
from bench.tuning import alternate, tuning_parser
from common.config import REPO_ROOT

CHOSEN = PROFILES["throughput"]
VARIANTS: dict[str, PassThroughProfile] = {
    "chosen: librdkafka defaults, consume(1000, 1 s)": CHOSEN,
    "deep prefetch (queued.min.messages 1M, no back-off)": replace(CHOSEN, consumer=DEEP_PREFETCH),
    "deep prefetch + big batches (linger 100 ms), consume(2000, 0.2 s)": PassThroughProfile(
        2000, 0.2, DEEP_PREFETCH, {**CHOSEN.producer, **BIG_BATCHES}
    ),
    "batch 500": replace(CHOSEN, batch=500),
    "batch 10000": replace(CHOSEN, batch=10_000),
    "big batches (linger 100 ms, batch.size 1 MB)": replace(
        CHOSEN, producer={**CHOSEN.producer, **BIG_BATCHES}
    ),
    "lz4": replace(CHOSEN, producer={**CHOSEN.producer, "compression.type": "lz4"}),
    "acks=1, not idempotent": replace(CHOSEN, producer={"enable.idempotence": False, "acks": 1}),
}


def main() -> int:
    args = tuning_parser("python -m bench.tune_passthrough").parse_args()
    bootstrap, runs = alternate(
        args, list(VARIANTS), lambda ctx, ingest, name: passthrough_rate(ctx, ingest, 600, VARIANTS[name])
    )
    rates = {name: [p.rate for p in progress] for name, progress in runs.items()}
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

"""Tune the Refinery worker: run worker-setting variants (and the raw pass-through and hand-written router
baselines) over the same pre-filled records, alternating them round by round so machine noise hits all
alike, and write `bench/results/worker_tuning.json`.

    .venv/bin/python -m bench.tune_worker [--records N] [--rounds R] [--own-broker] [--only NAME ...]
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench.benchmarks.routing import handwritten_rate, passthrough_rate, refinery_rate
from bench.context import BenchContext, environment_info
from bench.kafka_io import IngestRange
from bench.procs import SinkProgress
from bench.tuning import alternate, tuning_parser
from common.config import REPO_ROOT

BASELINE = "raw pass-through (baseline)"
HANDWRITTEN = "hand-written router (issue 14 baseline)"
HANDWRITTEN_LZ4 = "hand-written router, lz4 outputs (information)"
# REFINERY_WORKER_* overrides per variant ({} = the worker's defaults)
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "eager prefetch (the old defaults)": {
        "fetch_wait_max_ms": 50,
        "fetch_queue_backoff_ms": 0,
        "max_partition_fetch_bytes": 4_194_304,
    },
    "fetch back-off 100 ms": {"fetch_queue_backoff_ms": 100},
    "batch 1000": {"batch_size": 1000},
    "batch 5000": {"batch_size": 5000},
    "batch 10000": {"batch_size": 10000},
    "python's gc defaults": {"gc_freeze": False, "gc_gen0_threshold": 700},
    "gc freeze, gen0 700": {"gc_gen0_threshold": 700},
    "gc freeze, gen0 100k": {"gc_gen0_threshold": 100_000},
    "gc freeze, gen0 1M": {"gc_gen0_threshold": 1_000_000},
    "no envelope check": {"verify_envelope": False},
    "exactly-once": {"exactly_once": "true"},
    "exactly-once, batch 2000 (old default)": {
        "exactly_once": "true",
        "batch_size": 2000,
    },
    "exactly-once, batch 5000": {"exactly_once": "true", "batch_size": 5000},
    "exactly-once, batch 20000": {"exactly_once": "true", "batch_size": 20000},
    "8 batches in flight": {"max_inflight_batches": 8},
    "success reports (the default before issue 14's fifth round)": {"success_reports": True},
    "16 batches in flight": {"max_inflight_batches": 16},
    "uncompressed outputs": {"compression": "none"},  # the default before the seventeenth round
}


def measure(ctx: BenchContext, ingest: IngestRange, name: str) -> SinkProgress:
    if name == BASELINE:
        return passthrough_rate(ctx, ingest, 600)
    if name == HANDWRITTEN:
        return handwritten_rate(ctx, ingest, 600)
    if name == HANDWRITTEN_LZ4:
        return handwritten_rate(ctx, ingest, 600, compression="lz4")
    return refinery_rate(ctx, ingest, 600, exactly_once=False, settings=VARIANTS[name])


def main() -> int:
    parser = tuning_parser("python -m bench.tune_worker")
    parser.add_argument("--only", action="append", help="variant names to run (default: all)")
    args = parser.parse_args()
    names = [BASELINE, HANDWRITTEN, *(args.only or [HANDWRITTEN_LZ4, *VARIANTS])]
    bootstrap, runs = alternate(args, names, measure)
    rates = {name: [p.rate for p in progress] for name, progress in runs.items()}
    cpu = {name: [p.cpu_us_per_record or 0.0 for p in progress] for name, progress in runs.items()}
    base = statistics.median(rates[BASELINE])
    doc = {
        "environment": environment_info(bootstrap),
        "records": args.records,
        "variants": {
            name: {
                "median_msgs_per_s": round(statistics.median(r)),
                "ratio_to_baseline": round(statistics.median(r) / base, 3),
                "runs": [round(x) for x in r],
                "median_cpu_us_per_record": round(statistics.median(cpu[name]), 1),
                "cpu_us_per_record_runs": [round(x, 1) for x in cpu[name]],
                "settings": VARIANTS.get(name, {}),
            }
            for name, r in rates.items()
        },
    }
    (REPO_ROOT / "bench" / "results" / "worker_tuning.json").write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in rates.items():
        rate, med_cpu = statistics.median(r), statistics.median(cpu[name])
        print(f"{rate:>10,.0f} msg/s  {rate / base:5.2f}x  {med_cpu:6.1f} us CPU/record  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

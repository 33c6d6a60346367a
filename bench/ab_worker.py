"""A/B the worker of two (or more) code trees, or settings, against the hand-written router: alternated
round by round over the same pre-filled records on one broker, medians of the ratios.

    .venv/bin/python -m bench.ab_worker [--records N] [--rounds R] [--own-broker] \
        --contender old=/path/to/worktree-a --contender 'new=/path/to/worktree-b={"exactly_once": "true"}'

Each contender is `name=tree[=settings JSON]`: the worker runs with `PYTHONPATH=tree` (a `git worktree`
of the commit to measure, with its C extensions built in place: `python setup.py build_ext --inplace`)
and the `REFINERY_WORKER_*` settings given. The hand-written router runs once per round as the baseline.
Prints each contender's rate and CPU per input as ratios to the baseline of the same round.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

from bench.benchmarks.routing import handwritten_rate, refinery_rate
from bench.context import BenchContext, run_broker
from bench.kafka_io import prefill
from bench.procs import SinkProgress
from bench.tuning import tuning_parser

HAND = "hand-written router"


def parse_contender(text: str) -> tuple[str, str, dict[str, Any]]:
    """`name=tree[=settings JSON]` -> (name, tree, settings)."""
    name, _, rest = text.partition("=")
    tree, _, settings = rest.partition("=")
    if not name or not tree:
        raise SystemExit(f"--contender {text!r}: expected name=tree[=settings JSON]")
    return name, tree, json.loads(settings) if settings else {}


def main() -> int:
    parser = tuning_parser("python -m bench.ab_worker")
    parser.add_argument("--contender", action="append", required=True, help="name=tree[=settings JSON]")
    args = parser.parse_args()
    contenders = [parse_contender(text) for text in args.contender]
    runs: dict[str, list[SinkProgress]] = {HAND: [], **{name: [] for name, _, _ in contenders}}
    with run_broker(args.own_broker) as (bootstrap, _):
        ctx = BenchContext(bootstrap=bootstrap)
        try:
            ingest = prefill(ctx, args.records, size=1024)
            for _ in range(args.rounds):
                runs[HAND].append(handwritten_rate(ctx, ingest, 600))
                for name, tree, settings in contenders:
                    os.environ["PYTHONPATH"] = tree  # the worker child process imports that tree
                    eos = str(settings.get("exactly_once", "")).lower() == "true"
                    runs[name].append(refinery_rate(ctx, ingest, 600, exactly_once=eos, settings=settings))
        finally:
            ctx.close()
    hand = runs[HAND]
    for name, progress in runs.items():
        rates = [p.rate / h.rate for p, h in zip(progress, hand, strict=True)]
        cpus = [
            (p.cpu_us_per_record or 0.0) / (h.cpu_us_per_record or 1.0)
            for p, h in zip(progress, hand, strict=True)
        ]
        print(
            f"{name:24s} {statistics.median(p.rate for p in progress):9,.0f} msg/s "
            f"{statistics.median(p.cpu_us_per_record or 0.0 for p in progress):5.1f} us CPU/input  "
            f"rate {statistics.median(rates):.2f}x {[round(r, 2) for r in rates]}  "
            f"CPU {statistics.median(cpus):.2f}x {[round(c, 2) for c in cpus]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

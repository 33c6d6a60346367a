"""What the tuning tools (`bench.tune_passthrough`, `bench.tune_worker`) share: their command-line
options, and measuring named contenders over the same pre-filled records, alternated round by round so
machine noise hits all of them alike."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from bench.context import BenchContext, run_broker
from bench.kafka_io import IngestRange, prefill
from bench.procs import SinkProgress

Measure = Callable[[BenchContext, IngestRange, str], SinkProgress]


def tuning_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--own-broker", action="store_true", help="a private broker, wiped afterwards")
    return parser


def alternate(
    args: argparse.Namespace, names: Sequence[str], measure: Measure
) -> tuple[str, dict[str, list[SinkProgress]]]:
    """(broker address, every contender's measurements in round order) over `args.records` records of
    1 KB pre-filled once."""
    runs: dict[str, list[SinkProgress]] = {name: [] for name in names}
    with run_broker(args.own_broker) as (bootstrap, _):
        ctx = BenchContext(bootstrap=bootstrap)
        try:
            ingest = prefill(ctx, args.records, size=1024)
            for _ in range(args.rounds):
                for name in names:
                    progress = measure(ctx, ingest, name)
                    runs[name].append(progress)
                    cpu = progress.cpu_us_per_record
                    cpu_text = f", {cpu:.1f} us CPU/record" if cpu is not None else ""
                    ctx.log(f"{name}: {progress.rate:,.0f} msg/s{cpu_text}")
        finally:
            ctx.close()
    return bootstrap, runs

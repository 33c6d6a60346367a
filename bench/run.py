"""Run the benchmarks against a real local broker and write `bench/results/{latest,quick}.{json,md}`.

    .venv/bin/python -m bench                 # every benchmark, full length (tens of minutes)
    .venv/bin/python -m bench --quick         # every benchmark, a few seconds each
    .venv/bin/python -m bench --only routing  # one (repeat --only for more)

Progress goes to stderr as plain lines; each result carries its parameters, library versions, CPU count
and the baseline measured in the same run. Figures are ratios to that baseline first, absolute second.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import machine
from bench.context import BenchContext, environment_info, restart_fresh, run_broker
from bench.report import BenchResult, row_line, write_results
from common.config import REPO_ROOT, KafkaSettings

# name -> (module under bench.benchmarks, one-line description)
BENCHMARKS: dict[str, str] = {
    "producer": "Producer SDK send throughput vs a raw confluent-kafka Producer (200 B, 1 KB, 20 KB)",
    "routing": "Refinery routing throughput vs a raw consume->produce pass-through (and Faust, EOS)",
    "latency": "end-to-end latency SDK send -> derived topic at a fixed rate",
    "registry": "schema registry id lookups, subject lookups and re-registrations under concurrency",
    "scale": "1,000 routes vs 8 routes",
    "memory": "peak and steady RSS of a worker at goal throughput",
    "dedup_restore": "dedup store rebuild after a crash mid-batch vs a raw read of the derived topics",
    "gateway": "HTTP ingest gateway: accepted events/s vs the SDK, p99 at half load vs a constant-202 app",
    "cpp_producer": "C++ SDK send throughput vs a raw librdkafka producer of the same pre-built records",
}
CHEAP = ("producer", "registry", "scale")
# With --own-broker these start on an empty broker: latency holds p99s to a goal in milliseconds, and
# the routing benchmark before it leaves gigabytes (its 2M-record input, every contender's outputs) that
# the broker deletes while it measures (topic deletion is asynchronous). It warms the fresh broker up
# itself (a baseline pass at the full rate). The gateway benchmark warms up its HTTP servers for 1 s, not
# a broker's JIT, so it keeps the broker warm as the benchmarks before it left it.
FRESH_BROKER = ("latency",)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per benchmark")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run just this benchmark (repeatable)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the products (bench/results/profiles/)"
    )
    parser.add_argument("--bootstrap", help="broker address (default REFINERY_KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument(
        "--own-broker",
        action="store_true",
        help="start a private broker on free ports (data in .run/bench-kafka-<pid>, wiped at the end) so "
        "full runs neither load nor feed the shared one",
    )
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--stem", help="result file name without extension (default latest / quick)")
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge into the existing result files: keep the benchmarks this run does not measure",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def on_fresh_broker(names: list[str], own_broker: bool) -> list[str]:
    """The benchmarks of `names` that start on an emptied private broker: those of `FRESH_BROKER` that
    some other benchmark runs before (the first one has the broker fresh anyway)."""
    return [name for name in names[1:] if own_broker and name in FRESH_BROKER]


def run_one(name: str, ctx: BenchContext) -> BenchResult:
    module = importlib.import_module(f"bench.benchmarks.{name}")
    before = machine.before_benchmark(quick=ctx.quick)
    ctx.log(f"{name}: machine before the start: {before}")
    began = time.monotonic()
    ctx.log(f"{name}: start ({BENCHMARKS[name]})")
    try:
        result: BenchResult = module.run(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' results
        ctx.log(f"{name}: FAILED: {exc!r}")
        result = BenchResult(name=name, title=BENCHMARKS[name], status="error")
        result.error = "".join(traceback.format_exception_only(exc)).strip()
        result.extra["traceback"] = traceback.format_exc()
    result.duration_s = time.monotonic() - began
    result.machine_before = before
    for row in result.rows:
        ctx.log(f"{name}: {row_line(row)}")
    ctx.log(f"{name}: {result.status} in {result.duration_s:.1f}s")
    return result


def unwind_on_sigterm() -> None:
    """Make SIGTERM (a CI timeout, `kill`) unwind like Ctrl-C, so the `finally` blocks stop the contenders
    and wipe the private broker: Python's default action ended the harness at once and left its broker
    running on 15 GB of data."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unwind_on_sigterm()
    if args.list:
        for name, text in BENCHMARKS.items():
            print(f"{name:10} {text}")
        return 0
    settings = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    names = args.only or list(BENCHMARKS)
    fresh = on_fresh_broker(names, args.own_broker)
    results: list[BenchResult] = []
    with run_broker(args.own_broker, settings) as (bootstrap, broker):
        ctx = BenchContext(
            bootstrap=bootstrap, quick=args.quick, profile=args.profile, profile_dir=args.out_dir / "profiles"
        )
        run: dict[str, Any] = {
            "mode": "quick" if args.quick else "full",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
            "run_id": ctx.run_id,
            "environment": environment_info(bootstrap),
            "benchmarks_requested": names,
            "on_fresh_broker": fresh,
        }
        ctx.log(f"broker {bootstrap} ({'started' if broker else 'reused'}); running {', '.join(names)}")
        try:
            for name in names:
                if name in fresh and broker is not None:
                    ctx.log(f"{name}: on an empty broker (wiping and restarting {bootstrap})")
                    ctx.close()
                    restart_fresh(broker)
                results.append(run_one(name, ctx))
        finally:
            ctx.close()
    stem = args.stem or ("quick" if args.quick else "latest")
    json_path, md_path = write_results(args.out_dir, stem, run, results, update=args.update)
    ctx.log(f"wrote {json_path} and {md_path}")
    return 1 if any(r.status == "error" for r in results) else 0

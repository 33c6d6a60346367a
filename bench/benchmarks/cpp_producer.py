"""Benchmark: the C++ SDK's send rate vs a raw librdkafka (C++) producer sending the same records pre-built
(envelope bytes and headers made once, before the clock) with the SDK's librdkafka settings, in the same
run (`sdk/cpp/bench/bench_send.cc`, rounds alternating; medians). Goal >= 0.9x. Both count a record once
the broker acknowledged it. A second row compares CPU time per record (whole process, librdkafka's threads
included), which a shared machine disturbs less than a rate the broker's share of the cores decides."""

from __future__ import annotations

import json
import subprocess

from bench.context import BenchContext
from bench.report import BenchResult, Row
from common.config import REPO_ROOT
from common.topics import ingest_topic

GOAL = 0.9
SOURCE_DIR = REPO_ROOT / "sdk" / "cpp"
BUILD_DIR = SOURCE_DIR / "build"


def build() -> None:
    """Configure and build `refinery_bench` (incrementally) in sdk/cpp/build."""
    for command in (
        ["cmake", "-S", str(SOURCE_DIR), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(BUILD_DIR), "-j", "2", "--target", "refinery_bench"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")


def run(ctx: BenchContext) -> BenchResult:
    count, rounds, size = ctx.pick(20_000, 200_000), ctx.pick(2, 7), 1024
    source = ctx.name("cpp").replace("-", "")
    result = BenchResult(
        name="cpp_producer",
        title=__doc__.split("\n")[0],
        params={
            "count": count,
            "rounds": rounds,
            "payload_bytes": size,
            "distinct_records": 5000,
            "topic": "one ingest topic, 12 partitions (created by the SDK)",
        },
        baseline={
            "description": "raw librdkafka C++ Producer sending the SDK's pre-built records (envelope + "
            "headers, one Headers object per produce) with the SDK's settings: idempotence, acks=all, "
            "linger.ms=20, lz4, murmur2_random; a counting delivery report callback"
        },
    )
    build()
    try:
        done = subprocess.run(
            [str(BUILD_DIR / "refinery_bench"), "--bootstrap", ctx.bootstrap, "--source", source,
             "--count", str(count), "--size", str(size), "--rounds", str(rounds)],
            capture_output=True, text=True, check=False, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"refinery_bench failed: {done.stderr[-2000:]}")
        for line in done.stderr.splitlines():
            ctx.log(f"cpp_producer: {line}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        ctx.delete_topics([ingest_topic("prod", source)])
    result.extra["rounds"] = figures
    result.params["librdkafka_cpp"] = figures["librdkafka"]  # Debian's, not confluent-kafka's bundled one
    sdk, raw = figures["sdk_median"], figures["raw_median"]
    result.add(Row(case=f"C++ send {size} B", value=sdk, unit="msg/s", baseline=raw, goal=f">= {GOAL}x",
                   goal_met=sdk / raw >= GOAL))  # fmt: skip
    result.add(
        Row(
            case=f"C++ send {size} B, CPU per record (whole process)",
            value=figures["sdk_cpu_median"],
            unit="us",
            baseline=figures["raw_cpu_median"],
            higher_is_better=False,
            note="informative, no goal",
        )
    )
    return result

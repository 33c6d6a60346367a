"""The benchmark harness works: `--quick` on the cheap benchmarks writes the result files with the
expected keys. Speed is never asserted here (the benchmarks themselves report it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.benchmarks.latency import Measured, median_run
from bench.compare import compare
from bench.context import private_broker_spec
from bench.machine import before_benchmark, calibration_ms, settle
from bench.procs import SinkProgress
from bench.report import BenchResult, Row, markdown, result_from_dict
from bench.run import BENCHMARKS, on_fresh_broker
from bench.stats import percentiles, windowed_p99
from common.config import REPO_ROOT

ENVIRONMENT_KEYS = {"python", "confluent_kafka", "librdkafka", "faust", "kafka", "cpu_count", "bootstrap"}


def test_percentiles_use_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p99": 99.0, "p99.9": 100.0, "max": 100.0, "count": 100}
    assert percentiles([]) == {}


def test_ratio_is_value_over_baseline_and_undefined_for_signed_figures() -> None:
    assert Row("x", 90.0, "msg/s", baseline=100.0).ratio == pytest.approx(0.9)
    assert Row("x", None, "msg/s", baseline=100.0).ratio is None
    assert Row("growth", 1.0, "MB", baseline=-2.0).ratio is None


def test_markdown_lists_every_row_with_ratio_first() -> None:
    result = BenchResult(
        "producer", "t", rows=[Row("send 1024 B", 90.0, "msg/s", 100.0, goal=">= 0.9x", goal_met=True)]
    )
    run = {
        "mode": "quick",
        "started_at": "now",
        "command": "python -m bench",
        "environment": {k: "?" for k in ENVIRONMENT_KEYS},
    }
    text = markdown(run, [result])
    assert "| producer | send 1024 B | 0.90x | 90.0 msg/s | 100 msg/s | >= 0.9x | yes |" in text


def test_windowed_p99_reports_each_second_in_time_order() -> None:
    samples = [(100.0 + i / 100, 10.0) for i in range(100)] + [(101.0 + i / 100, 200.0) for i in range(100)]
    assert windowed_p99(samples) == [10.0, 200.0]
    assert windowed_p99([]) == []


def test_the_goal_pair_reports_the_run_with_the_median_p99() -> None:
    def run(p99: float) -> Measured:
        return ({"p50": p99 / 2, "p99": p99}, 10_000.0, 100, [p99], {}, {})

    assert median_run([run(80.0), run(41.0), run(55.0)])[0]["p99"] == 55.0  # one slow spell: not reported
    assert median_run([run(30.0), run(60.0)])[0]["p99"] == 30.0  # even count: the lower middle one
    assert median_run([run(44.0)])[0]["p99"] == 44.0


def test_cpu_per_record_needs_a_cpu_reading() -> None:
    assert SinkProgress(1000, 2.0, cpu_s=0.05).cpu_us_per_record == pytest.approx(50.0)
    assert SinkProgress(1000, 2.0).cpu_us_per_record is None


def test_compare_puts_each_row_beside_its_earlier_figures() -> None:
    def doc(value: float, started: str) -> dict:
        result = BenchResult("routing", "t", rows=[Row("refinery", value, "msg/s", 100.0, goal=">= 0.8x")])
        return {"started_at": started, "benchmarks": {"routing": result.to_dict()}}

    text = compare(doc(38.0, "before-run"), doc(47.0, "after-run"))
    assert "| routing | refinery | 0.38x | 38.0 msg/s | 0.47x | 47.0 msg/s | >= 0.8x |" in text
    assert "before before-run, after after-run" in text


@pytest.mark.integration
def test_quick_run_writes_json_and_markdown(kafka_bootstrap: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "producer", "--only", "scale"]
    cmd += ["--bootstrap", kafka_bootstrap, "--out-dir", str(tmp_path), "--stem", "check"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "producer: start" in proc.stderr  # the progress display

    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc["mode"] == "quick"
    assert ENVIRONMENT_KEYS <= set(doc["environment"])
    assert doc["environment"]["cpu_count"] >= 1
    assert set(doc["benchmarks"]) == {"producer", "scale"}
    for name, bench in doc["benchmarks"].items():
        assert bench["status"] == "ok", (name, bench["error"])
        assert bench["params"] and bench["baseline"]["description"]
        assert bench["rows"], name
        assert {"waited_s", "busy_pct", "idle", "calibration_ms"} <= set(bench["machine_before"])
        for row in bench["rows"]:
            assert {"case", "value", "unit", "baseline", "ratio", "goal", "goal_met"} <= set(row)
            assert row["value"] > 0 and row["baseline"] > 0
    cases = [row["case"] for row in doc["benchmarks"]["producer"]["rows"]]
    rows = [
        (f"send {size} B vs a hand-written producer", f"send {size} B: CPU per record vs the hand-written "
         "producer's", f"send {size} B vs raw produce of pre-built bytes",
         f"send {size} B vs raw + envelope per record")
        for size in (200, 1024, 20480)
    ]  # fmt: skip
    assert cases == [case for per_size in rows for case in per_size]

    table = (tmp_path / "check.md").read_text()
    assert "| benchmark | case | ratio | value | baseline | goal | met |" in table
    assert "| producer | send 1024 B vs a hand-written producer (" in table  # the note: CPU per record
    assert "| scale | 1,000 routes" in table
    assert "| benchmark | waited | CPUs busy then | idle | calibration |" in table


def test_the_private_broker_ages_out_what_a_full_run_wrote() -> None:
    """A full run wrote 36 GB into its private broker before retention was set (the disk filled)."""
    props = private_broker_spec().server_properties()
    assert props["log.retention.ms"] == str(20 * 60 * 1000)
    # segments must roll (by size and by time) for a partition's data to be deletable at all
    assert int(props["log.segment.bytes"]) <= 64 * 1024 * 1024
    assert int(props["log.roll.ms"]) < int(props["log.retention.ms"])
    assert props["log.dirs"].startswith(str(REPO_ROOT / ".run" / "bench-kafka-"))


def test_latency_goal_benchmarks_after_another_start_on_an_emptied_private_broker() -> None:
    everything = list(BENCHMARKS)
    assert on_fresh_broker(everything, own_broker=True) == ["latency"]
    assert on_fresh_broker(everything, own_broker=False) == []  # never wipe a shared broker
    assert on_fresh_broker(["latency", "registry"], own_broker=True) == []  # first: fresh anyway
    assert on_fresh_broker(["routing", "latency"], own_broker=True) == ["latency"]


def test_the_results_say_which_benchmarks_started_on_an_emptied_broker() -> None:
    env = dict.fromkeys(ENVIRONMENT_KEYS, "x")
    run = {"mode": "full", "started_at": "t", "command": "c", "environment": env}
    assert "emptied broker" not in markdown({**run, "on_fresh_broker": []}, [])
    assert "emptied broker (what earlier benchmarks wrote deleted): latency, gateway." in markdown(
        {**run, "on_fresh_broker": ["latency", "gateway"]}, []
    )


class FakeMachine:
    """Busy figures handed out one per window, and a clock each window moves on by its length."""

    def __init__(self, busy: list[float]) -> None:
        self.busy = busy
        self.now = 0.0
        self.windows = 0

    def window(self, seconds: float) -> float:
        self.now += seconds
        self.windows += 1
        return self.busy[min(self.windows - 1, len(self.busy) - 1)]

    def clock(self) -> float:
        return self.now


def test_settle_goes_on_after_the_first_idle_window() -> None:
    fake = FakeMachine([90.0, 40.0, 14.9, 99.0])
    settled = settle(busy_in_window=fake.window, clock=fake.clock, window_s=2.0, idle_below_pct=15.0)
    assert (settled.waited_s, settled.busy_pct, settled.idle) == (6.0, 14.9, True)
    assert fake.windows == 3


def test_settle_gives_up_at_its_bound_and_says_the_machine_was_busy() -> None:
    """A machine that never idles is measured as it is: the wait is bounded, and the result says so."""
    fake = FakeMachine([15.0])  # the bound is "below", so exactly 15 % never counts as idle
    settled = settle(busy_in_window=fake.window, clock=fake.clock, timeout_s=60.0, window_s=2.0)
    assert (settled.waited_s, settled.idle) == (60.0, False)
    assert fake.windows == 30


def test_before_benchmark_reads_the_real_machine() -> None:
    before = before_benchmark(quick=True)
    assert 0.0 <= before["busy_pct"] <= 100.0  # type: ignore[operator]
    assert before["waited_s"] <= 3.0 + 2.0  # type: ignore[operator]  # bound + one window
    assert calibration_ms(rounds=1) > 0 and before["calibration_ms"] > 0  # type: ignore[operator]


def test_the_results_show_the_machine_each_benchmark_started_on() -> None:
    env = dict.fromkeys(ENVIRONMENT_KEYS, "x")
    run = {"mode": "full", "started_at": "t", "command": "c", "environment": env}
    measured = BenchResult(name="latency", title="t", rows=[Row("p99", 40.0, "ms", 38.0)])
    measured.machine_before = {"waited_s": 60.0, "busy_pct": 31.4, "idle": False, "calibration_ms": 7.3}
    text = markdown(run, [measured, BenchResult(name="scale", title="t")])
    assert "| latency | 60 s | 31 % | **no** | 7.3 ms |" in text
    assert "| scale |" not in text.split("| benchmark | waited")[1]  # nothing recorded, no row
    assert "waited" not in markdown(run, [BenchResult(name="scale", title="t")])
    assert result_from_dict(measured.to_dict()).machine_before == measured.machine_before


def test_a_terminated_run_stops_and_wipes_its_private_broker(tmp_path: Path) -> None:
    """SIGTERM used to end the harness at once and leave its private broker running on its data."""
    cmd = [sys.executable, "-m", "bench", "--quick", "--own-broker", "--only", "scale"]
    cmd += ["--out-dir", str(tmp_path)]
    log = tmp_path / "harness.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stderr=err)
    home = REPO_ROOT / ".run" / f"bench-kafka-{proc.pid}"
    try:
        deadline = time.monotonic() + 120
        # the broker is up once the harness says which benchmarks it runs
        while "running scale" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        assert home.is_dir(), log.read_text()[-2000:]
        proc.terminate()
        assert proc.wait(timeout=60) == 128 + 15, log.read_text()[-2000:]
    finally:
        proc.kill()
    assert not home.exists()
    java = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True)
    assert java.stdout == "", f"a broker still runs from {home}"

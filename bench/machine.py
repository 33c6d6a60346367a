"""What the shared machine was doing when a benchmark started: a bounded wait for it to go idle, and a
fixed CPU workload timed to show how fast its cores were at that moment.

Both exist because the figures of one run moved 2-3x with the machine's state (NOTES.md section 3):
work left behind by the benchmark before (a broker deleting gigabytes, processes still exiting) and a
host whose cores were slower for everyone. The wait removes the first; the calibration names the second
in the results instead of leaving it to be guessed from the baselines."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench.procs import MachineCpu

SETTLE_TIMEOUT_S = 60.0
SETTLE_IDLE_PCT = 15.0
SETTLE_WINDOW_S = 2.0
CALIBRATION_ROUNDS = 7


@dataclass(frozen=True)
class Settled:
    """How long `settle` waited, how busy the last window was, and whether it fell below the bound."""

    waited_s: float
    busy_pct: float
    idle: bool

    def to_doc(self) -> dict[str, object]:
        return asdict(self)


def settle(
    *,
    timeout_s: float = SETTLE_TIMEOUT_S,
    idle_below_pct: float = SETTLE_IDLE_PCT,
    window_s: float = SETTLE_WINDOW_S,
    busy_in_window: Callable[[float], float] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Settled:
    """Wait until all CPUs were less than `idle_below_pct` busy over one `window_s` window, at most
    `timeout_s` (then go on anyway: a machine that never idles is measured as it is, and says so)."""
    measure = busy_in_window or _busy_in_window
    began = clock()
    while True:
        busy = measure(window_s)
        waited = clock() - began
        if busy < idle_below_pct or waited >= timeout_s:
            return Settled(waited_s=round(waited, 1), busy_pct=round(busy, 1), idle=busy < idle_below_pct)


def _busy_in_window(seconds: float) -> float:
    sample = MachineCpu()
    time.sleep(seconds)
    return sample.busy_pct()


def calibration_ms(rounds: int = CALIBRATION_ROUNDS) -> float:
    """Median time, in ms, of a fixed single-threaded Python workload (the work the contenders do per
    record in kind: dict and bytes handling, hashing). Lower is a faster core; compare runs by it."""
    _fixed_work()  # the first pass pays for allocations the others reuse
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        _fixed_work()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def _fixed_work() -> int:
    headers = {f"header-{i}": f"value-{i}".encode() for i in range(13)}
    digest = hashlib.blake2b(digest_size=8)
    total = 0
    for i in range(80_000):
        key = f"header-{i % 13}"
        value = headers[key] + i.to_bytes(4, "little")
        digest.update(value)
        total += len(value)
    return total + digest.digest()[0]


def before_benchmark(*, quick: bool) -> dict[str, object]:
    """Settle (a short bound in quick runs), then calibrate: the facts a benchmark's result records of
    the machine it started on."""
    settled = settle(timeout_s=3.0 if quick else SETTLE_TIMEOUT_S)
    return {**settled.to_doc(), "calibration_ms": calibration_ms()}

"""HeapTrimmer: freed C-heap memory goes back to the OS at most once per interval."""

from __future__ import annotations

from common.config import WorkerSettings
from refinery.worker.heap import HeapTrimmer, _glibc_malloc_trim
from tests.support import FakeClock


def test_it_trims_once_per_interval_and_not_before() -> None:
    clock, calls = FakeClock(100.0), []
    trimmer = HeapTrimmer(30.0, trim=lambda pad: calls.append(pad) or 1, clock=clock)
    trimmer.maybe_trim()
    clock.now += 29.9
    trimmer.maybe_trim()
    assert calls == []
    clock.now += 0.1
    trimmer.maybe_trim()
    trimmer.maybe_trim()  # the same moment: the interval starts again
    assert calls == [0]
    clock.now += 30.0
    trimmer.maybe_trim()
    assert calls == [0, 0] and trimmer.trims == 2


def test_an_interval_of_zero_never_trims() -> None:
    clock, calls = FakeClock(100.0), []
    trimmer = HeapTrimmer(0.0, trim=lambda pad: calls.append(pad) or 1, clock=clock)
    for _ in range(3):
        clock.now += 1000
        trimmer.maybe_trim()
    assert calls == [] and trimmer.trims == 0


def test_the_default_trims_every_30_seconds_with_glibc() -> None:
    assert WorkerSettings().heap_trim_interval_s == 30.0
    trim = _glibc_malloc_trim()  # this machine and CI run Debian (glibc)
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release

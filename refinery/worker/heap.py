"""Give the C heap's free memory back to the operating system now and then.

After a burst (a backlog read at full speed) glibc keeps the freed memory of the records in its heap:
the worker's RSS stays at the burst's high-water mark (~290 MB against ~145 MB once the backlog is
gone, bench/results/NOTES.md §6), although nothing leaks and the memory is reused. The upb protobuf
runtime used to hide this by calling `malloc_trim` itself while the worker parsed every envelope; the
compiled envelope check parses none, so the data plane trims on its own, at most once per interval.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None elsewhere (musl, macOS: then nothing is trimmed)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim  # CDLL releases the GIL during the call
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


class HeapTrimmer:
    """`maybe_trim()` on every loop step; trims when `interval_s` passed since the last trim (0: never)."""

    def __init__(
        self,
        interval_s: float,
        trim: Callable[[int], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trim = trim if trim is not None else (_glibc_malloc_trim() if interval_s > 0 else None)
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = clock() + interval_s
        self.trims = 0

    def maybe_trim(self) -> None:
        if self._trim is None or self._interval_s <= 0:
            return
        now = self._clock()
        if now < self._next_at:
            return
        self._next_at = now + self._interval_s
        self._trim(0)
        self.trims += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("heap trimmed", extra={"took_ms": round((self._clock() - now) * 1000, 2)})

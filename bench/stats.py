"""Latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentiles(values_ms: Sequence[float], points: Sequence[float] = (50, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles plus max and count, e.g. {"p50": .., "p99": .., "p99.9": .., "max": ..}."""
    if not values_ms:
        return {}
    ordered = sorted(values_ms)
    n = len(ordered)
    out = {f"p{p:g}": round(ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))], 3) for p in points}
    out["max"] = round(ordered[-1], 3)
    out["count"] = n
    return out


def windowed_p99(samples: Sequence[tuple[float, float]], width_s: float = 1.0) -> list[float]:
    """p99 (ms) per `width_s` window of (send time, latency ms) samples, in time order: shows whether a
    high overall p99 is a steady state or a few stalls."""
    if not samples:
        return []
    start = min(t for t, _ in samples)
    windows: dict[int, list[float]] = {}
    for t, latency in samples:
        windows.setdefault(int((t - start) / width_s), []).append(latency)
    return [percentiles(windows[i], (99,))["p99"] for i in sorted(windows)]

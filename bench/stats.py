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

"""`--since` for dead letters: an ISO 8601 time (UTC unless it names a zone), epoch milliseconds, or a
duration before now (`90s`, `15m`, `2h`, `1d`). Used by `refinery dlq replay` and the catalog's dead-letter
workbench (its own module so the catalog need not import the worker's Faust app)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now_ms: int | None = None) -> int:
    """`--since` as epoch milliseconds; ValueError (with what to write) if it is none of the forms."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        return now_ms - int(duration.group(1)) * _SECONDS[duration.group(2)] * 1000
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r} must be an ISO 8601 time (2026-11-30T10:00:00Z), epoch milliseconds or a "
            "duration before now (90s, 15m, 2h, 1d)"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)

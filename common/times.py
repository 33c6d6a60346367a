"""Times given on command lines and in query strings: an ISO 8601 time (UTC unless it names a zone),
epoch milliseconds, or a duration before now (`90s`, `15m`, `2h`, `1d`). One reader for `refinery dlq
replay --since`, the catalog's dead-letter workbench (`since=`) and `refinery-client tail --from-time`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from common.errors import InvalidInputError

_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_ms(text: str, *, option: str, now_ms: int | None = None) -> int:
    """`text` as epoch milliseconds; InvalidInputError naming `option` (e.g. "--since") and the forms to
    write when it is none of them."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        return now_ms - int(duration.group(1)) * _SECONDS[duration.group(2)] * 1000
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{option} {text!r} must be an ISO 8601 time (2026-11-30T10:00:00Z), epoch milliseconds or a "
            "duration before now (90s, 15m, 2h, 1d)"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)

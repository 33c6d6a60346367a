"""The dead-letter workbench's document (pure functions over sampled DLQ records): each dead letter with
its reason headers, original place and payload (decoded when the envelope and schema allow, hex
otherwise), counts by reason, by title and by hour, and the `refinery dlq replay` command that would
re-send the dead letters shown for a reason after a fix.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from refinery.catalog.samples import SampledRecord
from refinery.routing import dlq

_FIELDS = {
    "reason": dlq.REASON,
    "message": dlq.MESSAGE,
    "topic": dlq.TOPIC,
    "partition": dlq.PARTITION,
    "offset": dlq.OFFSET,
    "timestamp": dlq.TIMESTAMP,
    "worker": dlq.WORKER,
    "route": dlq.ROUTE,
    "truncated": dlq.VALUE_TRUNCATED,
}


def utc(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC time to the second (what `--since` accepts)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def replay_command(reason: str, since_ms: int) -> str:
    return f"refinery dlq replay --reason {reason} --since {utc(since_ms)} --dry-run"


def dead_letter(record: SampledRecord) -> dict[str, Any]:
    """One dead letter for the page: the reason headers, the title it carried, the record as decoded."""
    page = record.to_page()
    why = {name: record.headers.get(header) for name, header in _FIELDS.items()}
    title = record.metadata.get("title") or record.headers.get("ce_title") or "(none)"
    return {
        **page,
        "dead_letter": why,
        "reason": why["reason"] or "(no reason header)",
        "title": title,
        "time": utc(record.timestamp_ms),
    }


def dlq_document(
    records: Iterable[SampledRecord],
    *,
    topic: str,
    reason: str | None = None,
    title: str | None = None,
    since_ms: int | None = None,
) -> dict[str, Any]:
    """The workbench: dead letters newest first, filtered by reason / title / time, with facet counts
    over the unfiltered sample and one replay command per reason shown."""
    every = [dead_letter(r) for r in records]
    shown = [
        d
        for d in every
        if (reason is None or d["reason"] == reason)
        and (title is None or d["title"] == title)
        and (since_ms is None or d["timestamp_ms"] >= since_ms)
    ]
    oldest: dict[str, int] = {}
    for d in shown:
        oldest[d["reason"]] = min(oldest.get(d["reason"], d["timestamp_ms"]), d["timestamp_ms"])
    hours = Counter(time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(d["timestamp_ms"] / 1000)) for d in every)
    return {
        "topic": topic,
        "filters": {"reason": reason, "title": title, "since": None if since_ms is None else utc(since_ms)},
        "sampled": len(every),
        "by_reason": dict(Counter(d["reason"] for d in every).most_common()),
        "by_title": dict(Counter(d["title"] for d in every).most_common()),
        "by_hour": dict(sorted(hours.items(), reverse=True)),
        "replay": [
            {"reason": r, "since": utc(ms), "command": replay_command(r, ms)}
            for r, ms in sorted(oldest.items())
        ],
        "records": shown,
    }

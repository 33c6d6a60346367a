"""`refinery dlq replay --reason R --since T [--dry-run]`: a Faust CLI command (see `dlq_replay`).

    refinery dlq replay --reason unknown_schema --since 2h --dry-run   # what would be replayed
    refinery dlq replay --reason unknown_schema --since 2026-11-30T10:00:00Z

`--since`: an ISO 8601 time (UTC unless it names a zone), epoch milliseconds, or a duration before now
(`90s`, `15m`, `2h`, `1d`). Prints one summary line (counts replayed, cut, without origin, per topic).
Exit 0; 2 for bad input; 1 when Kafka is unreachable or records were not delivered.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from datetime import UTC, datetime
from typing import NoReturn

import click
from faust.cli import AppCommand, argument, option

from common.kafka_log import kafka_unreachable, with_log
from refinery.control.app import app
from refinery.control.dlq_replay import ReplayError, replay_dead_letters
from refinery.routing.dlq import DlqReason

_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code)


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


@app.command(
    argument("action", type=click.Choice(["replay"])),
    option("--reason", required=True, help="the __refinery.errors.reason to replay, e.g. unknown_schema"),
    option("--since", required=True, help="dead-lettered at or after: ISO 8601, epoch ms, or 2h / 30m / 1d"),
    option("--dry-run", is_flag=True, default=False, help="count what would be replayed; send nothing"),
)
async def dlq(self: AppCommand, action: str, reason: str, since: str, dry_run: bool = False) -> None:
    """Dead letters: replay those of one reason to their original ingest topic after a fix."""
    if reason not in {r.value for r in DlqReason}:
        _fail(f"unknown reason {reason!r}; reasons: {', '.join(r.value for r in DlqReason)}", 2)
    try:
        since_ms = parse_since(since)
    except ValueError as exc:
        _fail(str(exc), 2)
    settings, kafka = app.worker_settings, app.kafka_settings
    problem = kafka_unreachable(kafka.bootstrap_servers)
    if problem is not None:
        _fail(problem, 1)
    try:
        report = await asyncio.to_thread(
            replay_dead_letters, with_log(kafka.client_config()), settings.dlq_topic,
            reason=reason, since_ms=since_ms, dry_run=dry_run,
        )  # fmt: skip
    except ReplayError as exc:
        _fail(str(exc), 1)
    print(report.summary())
    if report.failed:
        raise SystemExit(1)

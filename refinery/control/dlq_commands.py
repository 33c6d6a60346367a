"""`refinery dlq replay --reason R --since T [--dry-run]`: a Faust CLI command (see `dlq_replay`).

    refinery dlq replay --reason unknown_schema --since 2h --dry-run   # what would be replayed
    refinery dlq replay --reason unknown_schema --since 2026-11-30T10:00:00Z

`--since`: an ISO 8601 time (UTC unless it names a zone), epoch milliseconds, or a duration before now
(`90s`, `15m`, `2h`, `1d`). Prints one summary line (counts replayed, cut, without origin, per topic).
Exit 0; 2 for bad input; 1 when Kafka is unreachable or records were not delivered.
"""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

import click
from faust.cli import AppCommand, argument, option

from common.kafka_log import kafka_unreachable, with_log
from common.times import parse_time_ms
from refinery.control.app import app
from refinery.control.dlq_replay import ReplayError, replay_dead_letters
from refinery.routing.dlq import DlqReason


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code)


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
        since_ms = parse_time_ms(since, option="--since")
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

"""Paced sending and timed reading for the latency and memory benchmarks."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import procs
from bench.context import BenchContext
from producers.producer import OutgoingRecord


def paced(
    records: Sequence[OutgoingRecord],
    send: Callable[[OutgoingRecord], object],
    rate: float,
    *,
    on_send: Callable[[OutgoingRecord, float], None] | None = None,
    poll: Callable[[], object] | None = None,
) -> float:
    """Send `records` at `rate` per second (in 1 ms steps, catching up when late); return the achieved
    rate. `on_send(record, wall_time)` runs just before each send."""
    began = time.monotonic()
    sent = 0
    total = len(records)
    while sent < total:
        due = min(total, int((time.monotonic() - began) * rate) + 1)
        while sent < due:
            record = records[sent]
            if on_send is not None:
                on_send(record, time.time())
            send(record)
            sent += 1
        if poll is not None:
            poll()
        time.sleep(0.001)
    return total / max(time.monotonic() - began, 1e-9)


class ArrivalReader:
    """Reads `topics` from their current end in its own process (`bench.arrivals_main`, so it shares no
    GIL with the sender); after `stop()`, `latencies_ms(sent_at)` gives, for every record whose message
    id was stamped at send time, how long after sending it became readable."""

    def __init__(self, ctx: BenchContext, topics: list[str]) -> None:
        self._ctx = ctx
        self.topics = topics
        self._out = Path(tempfile.mkstemp(prefix="bench-arrivals-", suffix=".txt")[1])
        ends = ctx.end_offsets(topics)
        assignment = [[t, p, o] for (t, p), o in ends.items()]
        self._child = procs.start(
            "arrivals", ["-m", "bench.arrivals_main", ctx.bootstrap, str(self._out), json.dumps(assignment)]
        )
        self.arrivals: list[tuple[str, float]] = []

    def output_total(self) -> int:
        return sum(self._ctx.end_offsets(self.topics).values())

    def wait_quiet(self, timeout: float, idle: float = 2.0) -> None:
        """Return once nothing new landed in the topics for `idle` seconds (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        last, last_change = self.output_total(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_change < idle:
            time.sleep(0.3)
            total = self.output_total()
            if total != last:
                last, last_change = total, time.monotonic()

    def stop(self) -> None:
        self._child.stop()
        try:
            lines = self._out.read_text().splitlines()
        finally:
            self._out.unlink(missing_ok=True)
        self.arrivals = [(mid, float(t)) for mid, t in (line.split(" ") for line in lines)]

    def latencies_ms(self, sent_at: dict[str, float]) -> list[float]:
        return [(t - sent_at[mid]) * 1000 for mid, t in self.arrivals if mid in sent_at]

    def timed_latencies_ms(self, sent_at: dict[str, float]) -> list[tuple[float, float]]:
        """(send time, latency ms) per record."""
        return [(sent_at[mid], (t - sent_at[mid]) * 1000) for mid, t in self.arrivals if mid in sent_at]

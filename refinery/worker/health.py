"""Is the data plane alive, ready, stuck? One object the loop updates and the web views read.

States: `starting` (no route set or consumer yet), `running`, `retrying` (a transient write failure is
being retried within its budget), `paused` (consumption stopped: the retry budget is spent, the DLQ
cannot be written, or the registry refuses our credentials; the loop probes the cause and resumes by
itself), `stopped`. Ready means: running or retrying, and progress within `stall_after_s` (a batch
completed, or the loop found nothing to read with nothing in flight). A worker that is alive but makes
no progress is therefore reported, whatever the reason. Wedged (`refinery.worker.watchdog`): the data
plane's thread is stuck inside one Kafka call past its timeout; neither ready nor healthy.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from refinery.worker.metrics import WorkerMetrics

STATES = ("starting", "running", "retrying", "paused", "stopped")
_RANK = {"starting": 0, "running": 0, "retrying": 1, "paused": 2}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    why: str


class Health:
    def __init__(self, metrics: WorkerMetrics, *, stall_after_s: float) -> None:
        self._metrics = metrics
        self._stall_after_s = stall_after_s
        self._lock = threading.Lock()
        self.state = "starting"
        self.paused_reason: str | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_progress_at = time.time()
        self.alive = True  # false once the loop's thread has ended
        self.wedged_why: str | None = None  # set while the loop's thread is stuck inside a Kafka call
        self._started = False
        self._troubles: dict[str, tuple[str, str | None]] = {}
        self._set_state_metric("starting")
        metrics.last_progress.set(self.last_progress_at)

    # -- updates from the loop --------------------------------------------------------------------
    def progress(self) -> None:
        now = time.time()
        self.last_progress_at = now
        self._metrics.last_progress.set(now)

    def started(self) -> None:
        with self._lock:
            self._started = True
            self._recompute()

    def report(self, source: str, state: str, *, reason: str | None = None, error: str | None = None) -> None:
        """What one part of the data plane (`source`: the writes, the held batch...) is going through:
        `running` clears its trouble; `retrying` / `paused` (with a reason) set it. The overall state
        is the worst of all parts."""
        if error is not None:
            self.last_error, self.last_error_at = error, time.time()
        with self._lock:
            before = self._troubles.get(source, ("running", None))[0]
            if state == "running":
                self._troubles.pop(source, None)
            else:
                self._troubles[source] = (state, reason)
                if state == "paused" and before != "paused":
                    self._metrics.pauses.labels(reason or "unknown").inc()
            self._recompute()

    def trouble(self, source: str) -> str:
        """The state `source` last reported (`running` when it has no trouble)."""
        return self._troubles.get(source, ("running", None))[0]

    def wedged(self, why: str) -> None:
        self.wedged_why = why
        self.last_error, self.last_error_at = why, time.time()

    def unwedged(self) -> None:
        self.wedged_why = None

    def stopped(self) -> None:
        with self._lock:
            self.alive = False
            self.state, self.paused_reason = "stopped", None
            self._set_state_metric("stopped")

    def _recompute(self) -> None:
        if not self.alive:
            return
        state, reason = ("running", None) if self._started else ("starting", None)
        for trouble_state, trouble_reason in self._troubles.values():
            if _RANK[trouble_state] > _RANK[state]:
                state, reason = trouble_state, trouble_reason
        if (state, reason) != (self.state, self.paused_reason):
            self.state, self.paused_reason = state, reason
            self._set_state_metric(state)

    def _set_state_metric(self, state: str) -> None:
        for name in STATES:
            self._metrics.state.labels(name).set(1 if name == state else 0)

    # -- reads from the web views -----------------------------------------------------------------
    def readiness(self) -> Readiness:
        state = self.state
        if not self.alive or state == "stopped":
            result = Readiness(False, "the data plane has stopped")
        elif self.wedged_why is not None:
            result = Readiness(False, f"wedged: {self.wedged_why}")
        elif state == "starting":
            result = Readiness(False, "starting: waiting for a route set and the consumer group")
        elif state == "paused":
            result = Readiness(False, f"paused ({self.paused_reason}): {self.last_error}")
        else:
            idle_for = time.time() - self.last_progress_at
            if idle_for > self._stall_after_s:
                result = Readiness(
                    False, f"no progress for {idle_for:.0f} s (state {state}; last error: {self.last_error})"
                )
            else:
                result = Readiness(True, state)
        self._metrics.ready.set(1 if result.ready else 0)
        return result

    def snapshot(self) -> dict[str, Any]:
        readiness = self.readiness()
        return {
            "state": self.state,
            "ready": readiness.ready,
            "why": readiness.why,
            "paused_reason": self.paused_reason,
            "wedged": self.wedged_why,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_progress_at": round(self.last_progress_at, 3),
        }

"""Blocking Kafka calls that do not return within their own timeout.

Every blocking call the data plane makes carries a timeout, but librdkafka does not always honour it:
with the group coordinator gone, `send_offsets_to_transaction` can block for good (librdkafka#5456,
#5511). Python cannot interrupt a thread inside C code, so the data plane runs such calls under
`CallWatch.call`, and a watchdog thread checks them every second. A call still running `grace_s` past
its own timeout makes the worker unhealthy and not ready (`/health`, `/ready`, `/stats`,
`refinery_worker_wedged`) and is logged with its name; `exit_after_s` later (unless it returned) the
process exits with `WEDGED_EXIT_CODE` so that its supervisor starts a fresh one. Meanwhile its partitions
go to the rest of the group once its session times out; an open transaction is aborted when the new
instance initialises the same transactional id (or at the transaction timeout), and at-least-once repeats
only what was not committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from refinery.worker.health import Health
from refinery.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

WEDGED_EXIT_CODE = 70  # EX_SOFTWARE: the process could not go on; a supervisor should start it again
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class _Call:
    name: str
    started: float
    timeout_s: float


class CallWatch:
    def __init__(
        self,
        health: Health,
        metrics: WorkerMetrics,
        *,
        grace_s: float,
        exit_after_s: float,
        exit_process: Callable[[int], object] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._grace_s = grace_s
        self._exit_after_s = exit_after_s
        self._exit_process = exit_process
        self._clock = clock
        self._current: _Call | None = None
        self._wedged: _Call | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def call(self, name: str, timeout_s: float) -> Iterator[None]:
        """Run a blocking call that promises to return within `timeout_s` (the data-plane thread only)."""
        self._current = _Call(name, self._clock(), timeout_s)
        try:
            yield
        finally:
            with self._lock:
                wedged, self._current, self._wedged = self._wedged, None, None
            if wedged is not None:
                took = self._clock() - wedged.started
                log.warning(
                    "a wedged Kafka call returned; the worker goes on",
                    extra={"call": wedged.name, "took_s": round(took, 1), "timeout_s": wedged.timeout_s},
                )
                self._health.unwedged()
                self._metrics.wedged.set(0)

    def check(self) -> None:
        """Judge the call in progress (the watchdog thread, every CHECK_INTERVAL_S)."""
        with self._lock:
            call = self._current
            if call is None:
                return
            overdue = self._clock() - call.started - call.timeout_s
            if overdue < self._grace_s:
                return
            first = self._wedged is None
            self._wedged = call
        age = call.timeout_s + overdue
        if first:
            why = (
                f"the data plane has been inside {call.name} for {age:.0f} s, past its {call.timeout_s:g} s "
                "timeout (librdkafka does not always honour it, e.g. with the group coordinator down)"
            )
            exit_note = (
                f"; exiting in {self._exit_after_s:g} s unless it returns" if self._exit_after_s > 0 else ""
            )
            log.error(why + exit_note, extra={"call": call.name, "seconds": round(age, 1)})
            self._health.wedged(why)
            self._metrics.wedged.set(1)
            self._metrics.wedges.labels(call.name).inc()
        if self._exit_after_s > 0 and overdue >= self._grace_s + self._exit_after_s:
            log.critical(
                "exiting: a Kafka call never returned; a supervisor should start the worker again",
                extra={"call": call.name, "seconds": round(age, 1), "exit_code": WEDGED_EXIT_CODE},
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            self._exit_process(WEDGED_EXIT_CODE)

    # -- the watchdog thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="refinery-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL_S):
            try:
                self.check()
            except Exception:
                log.exception("watchdog check failed")

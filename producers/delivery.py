"""What `Producer.send` returns: one small `DeliveryHandle` per queued record, resolved by the thread that
serves the producer's delivery reports (its poll thread, or a sending thread: see `producers.producer`).

A `concurrent.futures.Future` per record cost more than the send itself: its Condition, lists and the
bound delivery callback stay alive until the broker acknowledges, and the cyclic GC walked them again
and again (~19 us per record in the benchmark). A handle is one `__slots__` object: librdkafka calls it
directly as the record's delivery callback, and an Event or a callback list exists only for the
handles someone waits on or hooks into. It answers what callers used of the Future: `result`,
`exception`, `done`, `add_done_callback`; `as_future()` gives a real Future where one is needed
(`concurrent.futures.wait`, `asyncio.wrap_future`).

Every outcome is counted (producer stats and metrics) and every failure logged (the first, then every
thousandth) before the handle is resolved, so a failure nobody asks about is still seen.

Callers' callbacks run inside librdkafka's poll, and confluent-kafka aborts the whole process when a
poll (or flush) starts again from inside one (`CallState_get: Assertion 'cs != NULL' failed`). So the
handle marks its thread while a caller's callback runs (`in_delivery_callback`), and the producer does
not poll from such a thread (a `send` there waits without serving, `flush` refuses).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, Message

from producers.errors import DeliveryError

if TYPE_CHECKING:
    from common.client_errors import ClientErrors
    from producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)
_thread = threading.local()  # .in_callback: this thread runs a caller's delivery callback now


def in_delivery_callback() -> bool:
    """True on a thread that is running a caller's `on_delivery` callback or done-callback."""
    return getattr(_thread, "in_callback", False)


DeliveryCallback = Callable[["DeliveryError | None", "Delivered | None"], None]


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker stored a record."""

    message_id: str
    topic: str
    partition: int
    offset: int


@dataclass
class ProducerStats:
    """One producer's own counts (updated under `ProducerMetrics.lock`)."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0


class DeliveryReports:
    """What a producer's handles share: its stats, the metrics (whose lock guards both and every
    handle's state) and its client errors."""

    __slots__ = ("client_errors", "lock", "metrics", "stats")

    def __init__(self, stats: ProducerStats, metrics: ProducerMetrics, client_errors: ClientErrors) -> None:
        self.lock = metrics.lock
        self.stats = stats
        self.metrics = metrics
        self.client_errors = client_errors


class DeliveryHandle:
    """The pending delivery of one queued record: `result()` gives `Delivered` or raises DeliveryError."""

    __slots__ = (
        "_callback",
        "_done",
        "_error",
        "_event",
        "_hooks",
        "_labels",
        "_offset",
        "_partition",
        "_reports",
        "_topic",
        "message_id",
    )

    def __init__(
        self,
        reports: DeliveryReports,
        message_id: str,
        labels: tuple[str, str, str],
        callback: DeliveryCallback | None,
    ) -> None:
        self.message_id = message_id
        self._reports = reports
        self._labels = labels  # (env, source, category) of the sent counter
        self._callback = callback
        self._done = False
        self._error: DeliveryError | None = None
        self._topic = ""
        self._partition = 0
        self._offset = 0
        self._event: threading.Event | None = None  # made by the first thread that blocks
        self._hooks: list[Callable[[DeliveryHandle], object]] | None = None

    # --- what callers use ---------------------------------------------------------------------------
    def done(self) -> bool:
        return self._done

    def result(self, timeout: float | None = None) -> Delivered:
        """Wait up to `timeout` seconds (None: forever); TimeoutError if still pending."""
        if not self._done:
            self._wait(timeout)
        if self._error is not None:
            raise self._error
        return Delivered(self.message_id, self._topic, self._partition, self._offset)

    def exception(self, timeout: float | None = None) -> DeliveryError | None:
        """The DeliveryError of a failed record, None for a delivered one (waits like `result`)."""
        if not self._done:
            self._wait(timeout)
        return self._error

    def add_done_callback(self, fn: Callable[[DeliveryHandle], object]) -> None:
        """Call `fn(handle)` once the record is resolved: now, if it is; otherwise on the thread that
        serves its delivery report."""
        with self._reports.lock:
            if not self._done:
                if self._hooks is None:
                    self._hooks = [fn]
                else:
                    self._hooks.append(fn)
                return
        self._run_hook(fn)

    def as_future(self) -> Future[Delivered]:
        """A `concurrent.futures.Future` resolved with this handle (for `wait`, `as_completed`...)."""
        future: Future[Delivered] = Future()
        future.set_running_or_notify_cancel()
        self.add_done_callback(lambda handle: settle_future(future, handle))
        return future

    def __repr__(self) -> str:
        state = "pending" if not self._done else "failed" if self._error else "delivered"
        return f"<DeliveryHandle {self.message_id} {state}>"

    # --- the thread serving delivery reports ------------------------------------------------------
    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        """librdkafka's delivery report for this record (inside `poll` on the serving thread)."""
        reports = self._reports
        if err is None:
            self._topic = msg.topic() or ""
            self._partition = msg.partition() or 0
            self._offset = msg.offset() or 0
            with reports.lock:
                reports.stats.delivered += 1
                reports.metrics.sent[self._labels] += 1
                self._done = True
                event, hooks = self._event, self._hooks
            reports.client_errors.clear()
        else:
            error = DeliveryError(
                err, message_id=self.message_id, topic=msg.topic() or "", cause=reports.client_errors.problem
            )
            self._error = error
            with reports.lock:
                reports.stats.failed += 1
                reports.metrics.delivery_errors[err.name().lstrip("_").lower()] += 1
                failed = reports.stats.failed
                self._done = True
                event, hooks = self._event, self._hooks
            if failed == 1 or failed % 1000 == 0:
                log.error("delivery failed", extra={"error": str(error), "failed_so_far": failed})
        if event is not None:
            event.set()
        callback = self._callback
        if callback is not None or hooks:
            self._run_callers(callback, hooks)

    # --- internals ----------------------------------------------------------------------------------
    def _run_callers(
        self, callback: DeliveryCallback | None, hooks: list[Callable[[DeliveryHandle], object]] | None
    ) -> None:
        outer, _thread.in_callback = in_delivery_callback(), True
        try:
            if callback is not None:
                self._callback = None
                try:
                    callback(self._error, None if self._error is not None else self.result())
                except Exception:  # a caller's bug must not stop delivery reports for everyone
                    log.exception("on_delivery callback raised", extra={"message_id": self.message_id})
            if hooks:
                self._hooks = None
                for fn in hooks:
                    self._run_hook(fn)
        finally:
            _thread.in_callback = outer

    def _wait(self, timeout: float | None) -> None:
        with self._reports.lock:
            if self._done:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(timeout):
            raise TimeoutError(f"record {self.message_id} not acknowledged within {timeout}s")

    def _run_hook(self, fn: Callable[[DeliveryHandle], object]) -> None:
        try:
            fn(self)
        except Exception:
            log.exception("delivery done-callback raised", extra={"message_id": self.message_id})


def settle_future(future: Future[Delivered] | asyncio.Future[Delivered], handle: DeliveryHandle) -> None:
    """Pass a resolved handle's outcome into a `concurrent.futures` or asyncio future (left alone if its
    waiter cancelled it). For asyncio, call it on the future's event loop."""
    if future.cancelled():
        return
    error = handle.exception(0)
    if error is None:
        future.set_result(handle.result(0))
    else:
        future.set_exception(error)

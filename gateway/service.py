"""The gateway's core: a parsed batch from an authenticated key -> records -> Kafka -> per-event outcomes.

Nothing is answered before Kafka has acknowledged (idempotent producer, acks=all): each event ends
`accepted` (acknowledged), `rejected` (invalid: the field is named; resending it unchanged fails again)
or `failed` (not acknowledged in time, or not sent because the registry or Kafka is unavailable: send it
again, with the same id, later). A failed event may still have been written (a timed-out produce
request can land): its id makes the retry a duplicate that dedup routes drop.

The HTTP status sums the batch up: 200 all accepted; 207 some accepted, some rejected; 422 all
rejected; 503 with `Retry-After` when any failed. Whole-request refusals (`Refusal`) come first and
write nothing: 403 out of scope, 503 while Kafka is unreachable or the send queue is full.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.envelope import now_ms
from common.errors import RefineryError
from gateway.events import Event, EventRejected, ParsedBatch
from gateway.keys import ApiKey
from gateway.metrics import UNREGISTERED, GatewayMetrics
from gateway.records import EventFailed, RecordBuilder
from producers.delivery import DeliveryHandle
from producers.errors import BrokerUnavailableError, DeliveryError, ProducerClosedError
from producers.producer import Producer

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, FAILED = "accepted", "rejected", "failed"
SUBMIT_WAIT_S = 2.0  # how long a batch waits for room in a full local queue before failing the rest


class Refusal(RefineryError):
    """The whole request is refused and nothing of it written: HTTP `status`, our `code`, the `field`."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        reason: str,
        field: str | None = None,
        index: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.field = field
        self.index = index
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.field is not None:
            doc["field"] = self.field
        if self.index is not None:
            doc["index"] = self.index
        return doc


def forbidden(event: Event, field: str, given: str, allowed: str) -> Refusal:
    return Refusal(
        403, 40301,
        f"event {event.index}: {field} {given!r} is outside this API key's scope ({field}: {allowed})",
        reason="forbidden", field=field, index=event.index,
    )  # fmt: skip


def event_sources(key: ApiKey, batch: ParsedBatch) -> dict[int, str]:
    """The source of every event, checking the key's scope: a Refusal (403 naming the field) for the
    first event outside it. An event without a source under a key with several is rejected alone."""
    scope = key.scope
    only = scope.sources[0] if len(scope.sources) == 1 else None
    sources: dict[int, str] = {}
    for event in batch.events:
        if event.env is not None and event.env != scope.env:
            raise forbidden(event, "env", event.env, scope.env)
        if event.title is not None and event.title != scope.title:
            raise forbidden(event, "title", event.title, scope.title)
        if event.source is not None and event.source not in scope.sources:
            raise forbidden(event, "source", event.source, ", ".join(scope.sources))
        if scope.categories is not None and event.category not in scope.categories:
            raise forbidden(event, "category", event.category, ", ".join(scope.categories))
        source = event.source or only
        if source is None:
            batch.rejected[event.index] = EventRejected(
                f"this key sends as {', '.join(scope.sources)}: name the event's source", field="source"
            )
            continue
        sources[event.index] = source
    return sources


class KafkaHealth:
    """Whether the gateway's producer reaches Kafka: asked in the background whenever librdkafka has
    reported a broker problem (and until an answer comes back), so requests never wait for the check."""

    def __init__(self, producer: Producer, interval_s: float, on_change: Callable[[bool], None]) -> None:
        self.producer = producer
        self.interval_s = interval_s
        self.ok = False
        self.problem: str | None = "not checked yet"
        self._on_change = on_change

    def check(self) -> bool:
        try:
            self.producer.check_connection(timeout=self.interval_s)
        except BrokerUnavailableError as exc:
            self._set(False, str(exc))
        else:
            self._set(True, None)
        return self.ok

    def _set(self, ok: bool, problem: str | None) -> None:
        if ok != self.ok:
            level = logging.INFO if ok else logging.WARNING
            log.log(level, "kafka " + ("reachable" if ok else "unreachable"), extra={"problem": problem})
            self._on_change(ok)
        self.ok, self.problem = ok, problem

    async def run(self) -> None:
        while True:
            if not self.ok or self.producer.broker_problem() is not None:
                await asyncio.to_thread(self.check)
            await asyncio.sleep(self.interval_s)


class _Acks:
    """Counts the delivery reports of one batch (on whichever thread serves them: the producer's poll
    thread, or this event loop's thread while it sends) and wakes the request
    once, when the last one is in. The request holds one count per event it may send, plus one, from
    the start (so no report can bring the count to zero while it is still sending), and gives back
    what it did not send in one `release` at the end: no lock per event sent."""

    __slots__ = ("done", "lock", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, hold: int) -> None:
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.lock = threading.Lock()
        self.pending = hold

    def __call__(self, _err: object, _delivered: object) -> None:
        self.release()

    def release(self, n: int = 1) -> None:
        with self.lock:
            self.pending -= n
            finished = self.pending == 0
        if finished:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    retry_after: int | None = None


class Ingestor:
    def __init__(
        self,
        producer: Producer,
        builder: RecordBuilder,
        metrics: GatewayMetrics,
        health: KafkaHealth,
        *,
        max_inflight_events: int,
        delivery_timeout_s: float,
        retry_after_s: int,
    ) -> None:
        self.producer = producer
        self.builder = builder
        self.metrics = metrics
        self.health = health
        self.max_inflight_events = max_inflight_events
        self.delivery_timeout_s = delivery_timeout_s
        self.retry_after_s = retry_after_s

    def unavailable(self, message: str, reason: str) -> Refusal:
        return Refusal(503, 50301, message, reason=reason, retry_after=self.retry_after_s)

    async def ingest(self, key: ApiKey, batch: ParsedBatch, sources: dict[int, str]) -> Outcome:
        """Send the batch's valid events and wait for Kafka; `sources` from `event_sources`."""
        scope = key.scope
        if not self.health.ok:
            raise self.unavailable(f"Kafka is unavailable: {self.health.problem}", "kafka_unavailable")
        events = [e for e in batch.events if e.index in sources]
        if len(self.producer) + len(events) > self.max_inflight_events:
            raise self.unavailable(
                f"the gateway's send queue is full ({len(self.producer):,} events waiting for Kafka)",
                "queue_full",
            )
        results: list[dict[str, Any] | None] = [None] * batch.size
        for index, rejection in batch.rejected.items():
            results[index] = _rejected(index, batch.ids.get(index), rejection)
        failures = await self.builder.preload(scope.title, scope.env, events, set(sources.values()))
        producer_id = f"gateway:{key.id}"
        stamp = now_ms()
        loop = asyncio.get_running_loop()
        acks = _Acks(loop, len(events) + 1)  # + 1: released after the loop, whatever was sent
        sent: list[tuple[Event, DeliveryHandle]] = []
        submit_deadline: float | None = None
        for event in events:
            source = sources[event.index]
            if failures:
                problem = failures.get((scope.title, event.category, event.version)) or failures.get(
                    (scope.env, source)
                )
                if problem is not None:
                    results[event.index] = _failed(event, str(problem))
                    continue
            try:
                record = self.builder.build(
                    event,
                    env=scope.env,
                    title=scope.title,
                    source=source,
                    producer_id=producer_id,
                    now_ms=stamp,
                )
            except EventRejected as exc:
                results[event.index] = _rejected(event.index, event.id, exc)
                continue
            except EventFailed as exc:
                results[event.index] = _failed(event, str(exc))
                continue
            try:
                handle = self.producer.try_submit(record, on_delivery=acks)
                while handle is None:  # the local queue is full: wait a little for room
                    submit_deadline = submit_deadline or time.monotonic() + SUBMIT_WAIT_S
                    if time.monotonic() > submit_deadline:
                        raise self.producer.queue_full_error(SUBMIT_WAIT_S)
                    await asyncio.sleep(0.005)
                    handle = self.producer.try_submit(record, on_delivery=acks)
            except (DeliveryError, ProducerClosedError, BufferError) as exc:
                results[event.index] = _failed(event, str(exc), record.message_id)
                continue
            sent.append((event, handle))
        acks.release(len(events) + 1 - len(sent))
        if sent:
            try:
                await asyncio.wait_for(asyncio.shield(acks.done), self.delivery_timeout_s)
            except TimeoutError:
                pass  # the rest are reported failed below (they may still land: retry with the same id)
        for event, handle in sent:
            error = handle.exception(0) if handle.done() else None
            if not handle.done():
                results[event.index] = _failed(
                    event,
                    f"not acknowledged by Kafka within {self.delivery_timeout_s:.0f}s",
                    handle.message_id,
                )
            elif error is not None:
                results[event.index] = _failed(event, str(error), handle.message_id)
            else:
                results[event.index] = {"index": event.index, "id": handle.message_id, "status": ACCEPTED}
        return self._outcome(key, batch, [r for r in results if r is not None])

    def _outcome(self, key: ApiKey, batch: ParsedBatch, results: list[dict[str, Any]]) -> Outcome:
        counts: Counter[str] = Counter(r["status"] for r in results)
        by_label: Counter[tuple[str, str]] = Counter()
        categories = {e.index: (e.category, e.version) for e in batch.events}
        for result in results:
            category, version = categories.get(result["index"], (UNREGISTERED, 0))
            if not self.builder.schema_registered(key.scope.title, category, version):
                category = UNREGISTERED
            by_label[(result["status"], category)] += 1
        for (status, category), n in by_label.items():
            self.metrics.count_events(status, key.scope.env, key.scope.title, category, n)
        self.metrics.batch_events.observe(batch.size)
        body = {
            ACCEPTED: counts[ACCEPTED],
            REJECTED: counts[REJECTED],
            FAILED: counts[FAILED],
            "events": results,
        }
        if counts[FAILED]:
            problem = next(r["error"] for r in results if r["status"] == FAILED)
            body["error_code"], body["message"] = 50302, f"{counts[FAILED]} events not delivered: {problem}"
            return Outcome(503, body, self.retry_after_s)
        if counts[REJECTED] and counts[ACCEPTED]:
            return Outcome(207, body)
        if counts[REJECTED]:
            first = next(r for r in results if r["status"] == REJECTED)
            body["error_code"] = 42201
            body["message"] = f"every event was rejected; event {first['index']}: {first['error']}"
            return Outcome(422, body)
        return Outcome(200, body)


def _rejected(index: int, event_id: str | None, exc: EventRejected) -> dict[str, Any]:
    return {"index": index, "id": event_id, "status": REJECTED, "field": exc.field, "error": str(exc)}


def _failed(event: Event, error: str, message_id: str | None = None) -> dict[str, Any]:
    return {"index": event.index, "id": message_id or event.id, "status": FAILED, "error": error}

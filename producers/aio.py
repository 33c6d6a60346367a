"""asyncio wrapper around `Producer`: the same pipeline, awaitable, never blocking the event loop on a
full queue (it sleeps and retries instead, up to the same `block_timeout_s`).

    async with AsyncProducer(ProducerSettings(env="prod", source="telemetry")) as producer:
        await producer.preload("1234", "match_started", 1)      # registry look-up off the loop
        delivered = await producer.send("1234", "match_started", 1, payload)

`send` waits for the broker's acknowledgement; `enqueue` returns as soon as the record is queued (gather
its futures to send many records concurrently). A registry look-up that is not cached yet blocks the
loop briefly; `preload` does it in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from producers.delivery import settle_future
from producers.producer import Delivered, Producer
from producers.schemas import ResolvedSchema

_RETRY_SLEEP_S = 0.01


class AsyncProducer:
    def __init__(self, *args: Any, producer: Producer | None = None, **kwargs: Any) -> None:
        """Wrap `producer`, or build one from the same arguments `Producer` takes."""
        self.producer = producer or Producer(*args, **kwargs)

    async def preload(self, title: str, category: str, version: int) -> ResolvedSchema:
        return await asyncio.to_thread(self.producer.catalog.resolve, title, category, version)

    async def enqueue(
        self, title: str, category: str, version: int, payload: Any, **options: Any
    ) -> asyncio.Future[Delivered]:
        """Validate and queue one record; the returned future resolves on delivery."""
        record = self.producer.prepare(title, category, version, payload, **options)
        block = self.producer.settings.block_timeout_s
        deadline = time.monotonic() + block
        while (handle := self.producer.try_submit(record)) is None:
            if time.monotonic() >= deadline:
                raise self.producer.queue_full_error(block)
            await asyncio.sleep(_RETRY_SLEEP_S)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()
        handle.add_done_callback(lambda done: loop.call_soon_threadsafe(settle_future, future, done))
        return future

    async def send(self, title: str, category: str, version: int, payload: Any, **options: Any) -> Delivered:
        """Validate, queue and wait for the broker's acknowledgement (DeliveryError on failure)."""
        return await (await self.enqueue(title, category, version, payload, **options))

    async def flush(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.producer.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.producer.close, timeout)

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

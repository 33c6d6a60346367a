"""A bounded HTTP load generator: `concurrency` keep-alive clients on one asyncio loop (aiohttp, much
lighter per request than httpx, so the client does not cap the figure), loopback only."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.stats import percentiles


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: dict[str, float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _load(
    base_url: str, requests: Sequence[Request], concurrency: int, duration_s: float, max_requests: int
) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timings: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    sequence = itertools.cycle(requests)
    encoded = {id(r): (json.dumps(r.body).encode() if r.body is not None else None) for r in requests}
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    stop_at = time.monotonic() + duration_s
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal errors
            while time.monotonic() < stop_at and len(timings) < max_requests:
                req = next(sequence)
                began = time.perf_counter()
                try:
                    async with session.request(req.method, req.path, data=encoded[id(req)]) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                        if resp.status >= 400:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                timings.append((time.perf_counter() - began) * 1000)

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    return LoadResult(len(timings), errors, elapsed, percentiles(timings), statuses)


def run_load(
    base_url: str,
    requests: Sequence[Request],
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int = 2_000_000,
    warmup_s: float = 0.5,
) -> LoadResult:
    """Warm up briefly, then hammer `requests` (cycled) for `duration_s` or `max_requests`."""
    asyncio.run(_load(base_url, requests, concurrency, warmup_s, max_requests))
    return asyncio.run(_load(base_url, requests, concurrency, duration_s, max_requests))


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Block until `url` answers 200 (a server we started is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if asyncio.run(_get(url)) == 200:
                return
        except (aiohttp.ClientError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.3)

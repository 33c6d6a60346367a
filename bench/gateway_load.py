"""HTTP load for the gateway benchmark: pre-built POST bodies (with their headers) sent by aiohttp
keep-alive clients on one loop, either as fast as `concurrency` clients go (throughput) or open-loop at
a fixed request rate (latency at a given load: requests start on schedule, not when the last ended)."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import aiohttp

from bench.stats import percentiles

Post = tuple[bytes, dict[str, str], int]  # body, headers, events in it


@dataclass
class PostResult:
    requests: int = 0
    events: int = 0  # events in requests answered 200
    errors: int = 0  # answers other than 2xx, and failed requests
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: dict[str, float] = field(default_factory=dict)

    @property
    def event_rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def request_rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _one(
    session: aiohttp.ClientSession, url: str, post: Post, out: PostResult, timings: list[float]
) -> None:
    body, headers, events = post
    began = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            out.statuses[resp.status] = out.statuses.get(resp.status, 0) + 1
            if resp.status == 200:
                out.events += events
            elif resp.status >= 300:  # the constant-202 baseline answers 202
                out.errors += 1
    except aiohttp.ClientError:
        out.errors += 1
    out.requests += 1
    timings.append((time.perf_counter() - began) * 1000)


async def _closed_loop(url: str, posts: list[Post], concurrency: int, duration_s: float) -> PostResult:
    out, timings = PostResult(), list[float]()
    sequence = itertools.cycle(posts)
    stop_at = time.monotonic() + duration_s
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.monotonic() < stop_at:
                await _one(session, url, next(sequence), out, timings)

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        out.seconds = time.monotonic() - began
    out.latencies_ms = percentiles(timings)
    return out


async def _open_loop(url: str, posts: list[Post], rate: float, duration_s: float) -> PostResult:
    out, timings = PostResult(), list[float]()
    sequence = itertools.cycle(posts)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        total = int(rate * duration_s)
        tasks = []
        for n in range(total):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, next(sequence), out, timings)))
        await asyncio.gather(*tasks)
        out.seconds = time.monotonic() - began
    out.latencies_ms = percentiles(timings)
    return out


def throughput(
    url: str, posts: list[Post], *, concurrency: int, duration_s: float, warm_up: bool = True
) -> PostResult:
    if warm_up:
        asyncio.run(_closed_loop(url, posts, concurrency, min(1.0, duration_s)))
    return asyncio.run(_closed_loop(url, posts, concurrency, duration_s))


def at_rate(
    url: str, posts: list[Post], *, rate: float, duration_s: float, warm_up: bool = True
) -> PostResult:
    if warm_up:
        asyncio.run(_open_loop(url, posts, rate, min(1.0, duration_s)))
    return asyncio.run(_open_loop(url, posts, rate, duration_s))

"""Per-key rate limits: a token bucket per API key, counted in events (a batch of 100 takes 100 tokens).

Each key's bucket refills at its rate (the key's own `rate`, else REFINERY_GATEWAY_RATE_LIMIT_EVENTS_PER_S)
divided by the number of server processes, since each process keeps its own buckets; it holds
`burst_s` seconds of that rate, and never less than one full batch (`max_events`), so any batch the
gateway accepts can pass once the bucket is full. A request that finds too few tokens takes none and
is answered 429 with `Retry-After`: the whole seconds until enough tokens will be there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, n: float, now: float) -> float:
        """Take `n` tokens and return 0, or take none and return the seconds until `n` are there."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (min(n, self.capacity) - self.tokens) / self.rate


class RateLimiter:
    def __init__(
        self,
        default_rate: float,
        *,
        burst_s: float,
        min_capacity: int,
        processes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_rate = default_rate
        self.burst_s = burst_s
        self.min_capacity = min_capacity
        self.processes = processes
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key_id: str, rate: float | None, now: float) -> TokenBucket:
        per_process = (rate or self.default_rate) / self.processes
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != per_process:  # new key, or its rate changed
            capacity = max(per_process * self.burst_s, float(self.min_capacity))
            bucket = self._buckets[key_id] = TokenBucket(per_process, capacity, now)
        return bucket

    def take(self, key_id: str, rate: float | None, n: int) -> int:
        """0 when `n` events may pass now, else the Retry-After in whole seconds (at least 1)."""
        now = self.clock()
        wait = self._bucket(key_id, rate, now).take(n, now)
        return 0 if wait <= 0 else max(1, math.ceil(wait))

    def empty(self, key_id: str, rate: float | None) -> int:
        """Like `take(key_id, rate, 1)` but takes nothing: the early check before the body is read."""
        now = self.clock()
        bucket = self._bucket(key_id, rate, now)
        bucket._refill(now)
        return 0 if bucket.tokens >= 1 else max(1, math.ceil((1 - bucket.tokens) / bucket.rate))

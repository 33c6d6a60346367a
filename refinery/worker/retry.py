"""Bounded exponential backoff with jitter for transient write failures."""

from __future__ import annotations

import random
import time

from common.config import WorkerSettings


class Backoff:
    """Delays of `initial_s` doubling up to `max_s` (full jitter over the upper half), for at most
    `max_attempts` attempts; after that `exhausted` is true and the caller pauses instead of spinning."""

    def __init__(self, *, initial_s: float, max_s: float, max_attempts: int) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self.max_attempts = max_attempts
        self.attempts = 0
        self.next_at = 0.0

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Backoff:
        return cls(
            initial_s=settings.retry_initial_backoff_s,
            max_s=settings.retry_max_backoff_s,
            max_attempts=settings.retry_max_attempts,
        )

    def failed(self) -> float:
        """Count a failed attempt; return the delay before the next one (also set in `next_at`)."""
        self.attempts += 1
        ceiling = min(self._max_s, self._initial_s * 2 ** (self.attempts - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        self.next_at = time.monotonic() + delay
        return delay

    @property
    def exhausted(self) -> bool:
        return self.attempts >= self.max_attempts

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def reset(self) -> None:
        self.attempts, self.next_at = 0, 0.0

"""Records a rebalance made stale, dropped before routing.

librdkafka's batch consume can hand back records it fetched before a rebalance that ran inside the same
call (confluent-kafka-python#1013): records of partitions that are no longer ours, which their new owner
reads from the committed offset (routing them here repeated them, and committing them could move the
owner's offset past what it has read), and, for a partition assigned to us again, records before where
the assignment starts reading (the committed offset, or where we were), or that reading from there brings
a second time. In the batch of that call a partition's records pass from its start on, in order; the next
offset expected after them is kept, and later batches drop the copies until they reach it (looked for
during `window_s` after the rebalance, then forgotten).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from refinery.dedup.store import PartitionKey

WINDOW_S = 60.0


class StaleRecordFilter:
    def __init__(self, *, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.rebalances = 0  # assignments and revocations so far (did one run inside a consume()?)
        self._assigned: set[PartitionKey] = set()
        self._starts: dict[PartitionKey, int] = {}  # where reading of each assigned partition starts
        self._resync: dict[PartitionKey, int] = {}  # partitions with records taken after a rebalance
        self._window_s = window_s
        self._clock = clock
        self._until = 0.0

    def assigned(self, starts: dict[PartitionKey, int | None]) -> None:
        """The partitions now ours, each with the offset reading starts from (None: unknown)."""
        self.rebalances += 1
        self._assigned = set(starts)
        self._starts = {key: offset for key, offset in starts.items() if offset is not None and offset >= 0}
        self._resync = {}

    def revoked(self, keys: Iterable[PartitionKey]) -> None:
        self.rebalances += 1
        gone = set(keys)
        self._assigned -= gone
        self._resync = {key: offset for key, offset in self._resync.items() if key not in gone}

    def current(self, records: list[Any], *, rebalanced: bool) -> tuple[list[Any], int]:
        """The records to route, and how many were dropped. `rebalanced`: a rebalance ran inside the
        consume() that returned them. Cheap when there is nothing to look for."""
        if rebalanced:
            self._until = self._clock() + self._window_s
        elif self._resync and self._clock() > self._until:
            self._resync.clear()  # an idle partition's copies would have come long ago
        if not records or not (rebalanced or self._resync):
            return records, 0
        kept: list[Any] = []
        dropped = 0
        assigned, resync, starts = self._assigned, self._resync, self._starts
        for record in records:
            if record.error() is not None:
                kept.append(record)
                continue
            key = (record.topic(), record.partition())
            if rebalanced and key not in assigned:
                dropped += 1
                continue
            expected = resync.get(key, starts.get(key) if rebalanced else None)
            if expected is not None:
                offset = record.offset()
                if offset < expected:
                    dropped += 1
                    continue
                if rebalanced:
                    resync[key] = offset + 1
                else:
                    del resync[key]
            kept.append(record)
        return kept, dropped

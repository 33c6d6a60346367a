"""Records a rebalance made stale, dropped before routing, and the partitions to read again.

librdkafka's batch consume can hand back records it fetched before a rebalance that ran inside the same
call (confluent-kafka-python#1013): records of partitions that are no longer ours, which their new owner
reads from the committed offset (routing them here repeated them, and committing them could move the
owner's offset past what it has read), and, for a partition assigned to us again in that call, records
of the old assignment mixed with those read from the new start. The old ones cannot be told apart by
their offsets: when the revoke gave up records consumed but not yet written (held while the worker
waited), the new assignment starts before them, and the old records come after that start.

So a consume() during which partitions were assigned keeps none of their records: each such partition
is read again from its start (`current` returns the starts; `DataPlane` assigns them again, which
also discards whatever librdkafka had fetched for them before). Nothing was taken from them since the
assignment, so reading from the start again repeats nothing and skips nothing. Records of partitions
that are ours and were not reassigned in that call pass untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from refinery.dedup.store import PartitionKey


class StaleRecordFilter:
    def __init__(self) -> None:
        self.rebalances = 0  # assignments and revocations so far (did one run inside a consume()?)
        self._assigned: set[PartitionKey] = set()
        self._fresh: dict[PartitionKey, int] = {}  # assigned since the last `current`: where each starts

    def assigned(self, starts: dict[PartitionKey, int]) -> None:
        """The partitions now ours, each with the offset reading starts from (a logical offset such as
        OFFSET_INVALID for 'the committed one')."""
        self.rebalances += 1
        self._assigned = set(starts)
        self._fresh = dict(starts)

    def revoked(self, keys: Iterable[PartitionKey]) -> None:
        self.rebalances += 1
        gone = set(keys)
        self._assigned -= gone
        self._fresh = {key: start for key, start in self._fresh.items() if key not in gone}

    def current(
        self, records: list[Any], *, rebalanced: bool
    ) -> tuple[list[Any], int, dict[PartitionKey, int]]:
        """The records to route, how many were dropped, and the partitions to read again from where
        (those assigned during this consume() whose records were dropped). `rebalanced`: a rebalance
        ran inside the consume() that returned `records`. Nothing is looked at when it did not."""
        fresh, self._fresh = self._fresh, {}
        if not rebalanced or not records:
            return records, 0, {}
        kept: list[Any] = []
        reread: dict[PartitionKey, int] = {}
        assigned = self._assigned
        for record in records:
            if record.error() is not None:
                kept.append(record)
                continue
            key = (record.topic(), record.partition())
            if key in fresh:
                reread[key] = fresh[key]
            elif key in assigned:
                kept.append(record)
        return kept, len(records) - len(kept), reread

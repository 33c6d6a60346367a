"""Records a rebalance made stale (refinery.worker.stale), with plain records and a fake clock: the
batch returned by a consume() during which partitions moved holds records fetched before it."""

from __future__ import annotations

from typing import Any

from refinery.worker.stale import StaleRecordFilter
from tests.support import FakeClock

A, B, C = ("in", 0), ("in", 1), ("in", 2)


class Rec:
    def __init__(self, key: tuple[str, int], offset: int) -> None:
        self._key, self._offset = key, offset

    def topic(self) -> str:
        return self._key[0]

    def partition(self) -> int:
        return self._key[1]

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


def recs(key: tuple[str, int], first: int, last: int) -> list[Rec]:
    return [Rec(key, o) for o in range(first, last + 1)]


def offsets(records: list[Any]) -> list[tuple[int, int]]:
    return [(r.partition(), r.offset()) for r in records]


def test_without_a_rebalance_every_record_passes_untouched() -> None:
    f = StaleRecordFilter()
    f.assigned({A: 0, B: 0})
    batch = recs(A, 0, 4) + recs(B, 0, 2)
    assert f.current(batch, rebalanced=False) == (batch, 0)


def test_records_of_partitions_moved_away_are_dropped() -> None:
    f = StaleRecordFilter()
    f.assigned({A: 0, B: 0, C: 0})
    f.revoked([A, B, C])
    f.assigned({A: 10})  # B and C went to another worker
    kept, dropped = f.current(recs(B, 5, 9) + recs(A, 10, 12) + recs(C, 3, 4), rebalanced=True)
    assert offsets(kept) == [(0, 10), (0, 11), (0, 12)] and dropped == 7


def test_a_partition_given_back_is_read_once_from_its_start() -> None:
    """Stale records 10..14 of A (fetched before the rebalance) come first, then the fetch from the
    committed offset 10 brings 10.. again, partly in the same batch and partly in the next: each offset
    passes once, in order."""
    f = StaleRecordFilter()
    f.assigned({A: 10})
    f.revoked([A])
    f.assigned({A: 10})
    kept, dropped = f.current(recs(A, 10, 14) + recs(A, 10, 12), rebalanced=True)
    assert offsets(kept) == [(0, o) for o in range(10, 15)] and dropped == 3
    kept, dropped = f.current(recs(A, 13, 17), rebalanced=False)
    assert offsets(kept) == [(0, 15), (0, 16), (0, 17)] and dropped == 2
    batch = recs(A, 18, 19)  # caught up: nothing more is looked at
    assert f.current(batch, rebalanced=False) == (batch, 0)


def test_records_before_where_the_assignment_starts_are_dropped() -> None:
    f = StaleRecordFilter()
    f.assigned({A: 0})
    f.revoked([A])
    f.assigned({A: 50})  # another worker committed up to 50 meanwhile
    kept, dropped = f.current(recs(A, 40, 52), rebalanced=True)
    assert offsets(kept) == [(0, 50), (0, 51), (0, 52)] and dropped == 10


def test_an_unknown_start_keeps_records_and_an_idle_partition_is_forgotten() -> None:
    clock = FakeClock()
    f = StaleRecordFilter(window_s=60, clock=clock)
    f.assigned({A: None, B: 5})
    kept, dropped = f.current(recs(A, 0, 1) + recs(B, 5, 6), rebalanced=True)
    assert dropped == 0 and len(kept) == 4
    clock.now = 61.0  # B's copies never came: stop looking at every record
    batch = recs(B, 5, 6)
    assert f.current(batch, rebalanced=False) == (batch, 0)

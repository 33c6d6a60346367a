"""Records a rebalance made stale (refinery.worker.stale), with plain records: the batch returned by a
consume() during which partitions moved holds records fetched before it."""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_INVALID

from refinery.worker.stale import StaleRecordFilter

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
    f.current([], rebalanced=True)  # the consume() that ran the assignment returned nothing
    batch = recs(A, 0, 4) + recs(B, 0, 2)
    assert f.current(batch, rebalanced=False) == (batch, 0, {})


def test_records_of_partitions_moved_away_are_dropped() -> None:
    f = StaleRecordFilter()
    f.assigned({A: 0, B: 0, C: 0})
    f.current([], rebalanced=True)
    f.revoked([A, B, C])
    kept, dropped, reread = f.current(recs(B, 5, 9) + recs(C, 3, 4), rebalanced=True)
    assert kept == [] and dropped == 7 and reread == {}


def test_a_partition_assigned_during_the_call_is_read_again_from_its_start() -> None:
    """Records 10..14 of A fetched before the rebalance come first, then the fetch from the start 10
    brings 10.. again: none is kept, and A is read again from 10 (the old fetch is discarded)."""
    f = StaleRecordFilter()
    f.assigned({A: 10})
    f.current(recs(A, 10, 11), rebalanced=True)
    f.revoked([A, B])
    f.assigned({A: 10, B: 7})  # B assigned too, nothing of it fetched yet: read as usual
    kept, dropped, reread = f.current(recs(A, 10, 14) + recs(A, 10, 12), rebalanced=True)
    assert kept == [] and dropped == 8 and reread == {A: 10}
    batch = recs(A, 10, 13) + recs(B, 7, 8)  # after the assignment again: nothing is looked at
    assert f.current(batch, rebalanced=False) == (batch, 0, {})


def test_records_held_at_a_revoke_are_read_again_when_the_partition_comes_back() -> None:
    """The worker held 10..13 of A (consumed, not written) when A was revoked; the revoke committed 10
    and forgot them. The consume() that ran the revoke and the new assignment at 10 returns the old
    fetch's 14..16 first, then 10..16 from the new start. Keeping the first (they are past the start)
    and dropping the second as copies lost 10..13 (the old filter); now A is read again from 10."""
    f = StaleRecordFilter()
    f.assigned({A: 0})
    f.current(recs(A, 0, 13), rebalanced=True)
    f.revoked([A])
    f.assigned({A: 10})
    kept, dropped, reread = f.current(recs(A, 14, 16) + recs(A, 10, 16), rebalanced=True)
    assert kept == [] and dropped == 10 and reread == {A: 10}


def test_an_unknown_start_is_read_again_from_the_committed_offset() -> None:
    f = StaleRecordFilter()
    f.assigned({A: OFFSET_INVALID, B: 5})
    kept, dropped, reread = f.current(recs(A, 0, 1) + recs(B, 5, 6), rebalanced=True)
    assert kept == [] and dropped == 4 and reread == {A: OFFSET_INVALID, B: 5}


def test_records_of_partitions_not_reassigned_in_the_call_pass() -> None:
    """A revoke of nothing (or of other partitions) leaves the partitions still ours untouched."""
    f = StaleRecordFilter()
    f.assigned({A: 0, B: 0})
    f.current([], rebalanced=True)
    f.revoked([B])
    batch = recs(A, 3, 5) + recs(B, 8, 9)
    kept, dropped, reread = f.current(batch, rebalanced=True)
    assert offsets(kept) == [(0, 3), (0, 4), (0, 5)] and dropped == 2 and reread == {}

"""The one reader of times given on command lines and in query strings (`common.times`)."""

from __future__ import annotations

import pytest

from common.errors import InvalidInputError
from common.times import parse_time_ms


def test_durations_before_now_epoch_milliseconds_and_iso_times() -> None:
    assert parse_time_ms("90s", option="--since", now_ms=100_000) == 10_000
    assert parse_time_ms("2h", option="--since", now_ms=10_000_000) == 10_000_000 - 7_200_000
    assert parse_time_ms("1d", option="--since", now_ms=86_400_000) == 0
    assert parse_time_ms("1796032800000", option="--from-time") == 1_796_032_800_000
    utc = parse_time_ms("2026-11-30T10:00:00Z", option="--from-time")
    assert utc == parse_time_ms("2026-11-30T10:00:00", option="--from-time") == 1_796_032_800_000
    assert parse_time_ms("2026-11-30T11:00:00+01:00", option="--from-time") == utc


@pytest.mark.parametrize("option", ["--since", "--from-time", "since"])
def test_anything_else_is_refused_naming_the_option_and_the_forms(option: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^{option} 'yesterday' must be an ISO 8601 time .* 2h, 1d"):
        parse_time_ms("yesterday", option=option)

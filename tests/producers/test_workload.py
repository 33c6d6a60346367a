"""Unit tests (no services) for the reference workload generator."""

from __future__ import annotations

from collections import Counter

from producers.codecs import encode_payload
from producers.workload import WorkloadGenerator, offline_schema


def test_same_seed_same_messages() -> None:
    assert WorkloadGenerator(seed=3).take(200) == WorkloadGenerator(seed=3).take(200)
    assert WorkloadGenerator(seed=3).take(50) != WorkloadGenerator(seed=4).take(50)


def test_shares_follow_the_workload() -> None:
    messages = WorkloadGenerator(seed=1).take(20_000)
    share = {k: v / len(messages) for k, v in Counter(m.category for m in messages).items()}
    assert abs(share["player_killed"] - 0.40) < 0.02 and abs(share["crash_report"] - 0.05) < 0.01
    envs = Counter(m.env for m in messages)
    assert abs(envs["prod"] / len(messages) - 0.9) < 0.01
    sources = Counter(m.source for m in messages)
    assert abs(sources["backend"] / len(messages) - 0.2) < 0.015
    assert all(m.source == "backend" for m in messages if m.category == "purchase")
    assert {m.version for m in messages if m.category == "player_killed"} == {2}
    assert all(m.key.startswith(f"m-{m.title}-") for m in messages)
    assert {m.attributes["platform"] for m in messages} == {"pc", "ps", "xbox"}


def test_payloads_are_valid_and_sized() -> None:
    for size in (200, 1024, 20 * 1024):
        for msg in WorkloadGenerator(seed=2, payload_size=size).take(100):
            fmt, data = encode_payload(msg.payload, offline_schema(msg.category, msg.version))
            expected = (
                "raw" if msg.category == "crash_report" else offline_schema(msg.category, 1).payload_format
            )
            assert fmt == expected
            # Approximate: the padding is sized from a sample, other fields vary by a few dozen bytes.
            assert abs(len(data) - size) <= max(40, size // 20), (msg.category, len(data), size)

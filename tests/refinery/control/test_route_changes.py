"""The drop guard, route-set diffs and the routes-topic record formats (no broker)."""

from __future__ import annotations

import json

import pytest

from refinery.control.route_changes import diff_route_sets, drop_refusal, format_diff
from refinery.control.route_records import (
    Publication,
    cli_identity,
    decode_history_record,
    decode_published,
    decode_route_record,
    encode_history_record,
    encode_route_record,
    history_key,
    os_user,
)
from refinery.routing.rules import RouteSet, RuleError, load_route_set


def routes(*names: str, env: str = "dev", catch_all: str | None = None) -> RouteSet:
    lines = ["routes:"] if names else ["routes: []"]
    lines += [f"  - {{name: {n}, match: {{env: {env}}}, to: {{topic: {env}.{n}.all.all-v1}}}}" for n in names]
    if catch_all:
        lines.append(f'catch_all: "{catch_all}"')
    return load_route_set("\n".join(lines) + "\n")


def test_an_empty_set_is_refused_even_with_nothing_live() -> None:
    refusal = drop_refusal(None, routes())
    assert refusal is not None and "no routes: every record would go unmatched" in refusal.message
    refusal = drop_refusal(routes("a", "b", "c"), routes(catch_all="{env}.refinery.unrouted.all-v1"))
    assert refusal is not None and refusal.dropped == ["a", "b", "c"]
    assert refusal.message.endswith("go to the catch-all; it would drop all 3 live routes")
    assert refusal.with_hint("--force").endswith("; pass --force to apply it anyway")


def test_dropping_more_than_half_of_the_live_names_is_refused() -> None:
    live = routes("a", "b", "c", "d")
    assert drop_refusal(live, routes("a", "b")) is None  # half: allowed
    assert drop_refusal(live, routes("a", "b", "x", "y", "z")) is None
    refusal = drop_refusal(live, routes("a", "x"))
    assert refusal is not None and refusal.dropped == ["b", "c", "d"]
    assert refusal.message == "the route set would drop 3 of the 4 live routes (b, c, d)"
    assert drop_refusal(routes("one"), routes("renamed")) is not None  # a rename drops the old name
    assert drop_refusal(None, routes("first")) is None
    many = routes(*[f"r{i}" for i in range(14)])
    assert "r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 and 3 more" in str(drop_refusal(many, routes("r13")))


def test_diff_names_added_removed_and_changed_routes() -> None:
    live = load_route_set(
        "envs: [prod, dev]\nroutes:\n"
        "  - {name: keep, match: {env: dev}, to: {topic: dev.a.b.c-v1}}\n"
        "  - {name: move, match: {env: dev}, to: {topic: dev.a.b.c-v1}}\n"
        "  - {name: gone, match: {env: dev}, to: {topic: dev.a.b.c-v1}}\n"
    )
    new = load_route_set(
        "routes:\n"
        "  - {name: move, match: {env: dev}, to: {topic: dev.a.b.moved-v1}}\n"
        "  - {name: keep, match: {env: dev}, to: {topic: dev.a.b.c-v1}}\n"
        "  - {name: fresh, match: {env: dev}, to: {topic: dev.a.b.c-v1}}\n"
    )
    diff = diff_route_sets(live, new)
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (
        ["fresh"],
        ["gone"],
        ["move"],
        ["keep"],
    )
    assert diff.other[0] == "envs: [prod, dev] -> undeclared" and "order" in diff.other[1]
    text = format_diff(diff, live.version, new)
    assert text.splitlines()[0] == f"live set: {live.version} -> new set: {new.version}"
    assert {"+ fresh", "- gone", "~ move"} <= set(text.splitlines())
    assert text.endswith("1 added, 1 removed, 1 changed, 1 unchanged")
    assert diff_route_sets(live, live).empty
    assert diff_route_sets(None, new).added == ["move", "keep", "fresh"]


def test_routes_records_carry_who_and_when_and_old_ones_still_load() -> None:
    rs = routes("a")
    value = encode_route_record(rs, who="ops", when="2025-01-02T03:04:05.678Z", forced=True)
    published = decode_published(value)
    assert published.route_set == rs
    assert published.publication == Publication(rs.version, "ops", "2025-01-02T03:04:05.678Z", 1, True)
    # a record written before who/when existed (exactly the old encoder's output)
    old = json.dumps(
        {"format": 1, "version": rs.version, "routes": rs.canonical_text}, sort_keys=True
    ).encode()
    assert decode_route_record(old) == rs
    dated = decode_published(old, timestamp_ms=1_700_000_000_123).publication
    assert (dated.who, dated.when, dated.forced) == (None, "2023-11-14T22:13:20.123Z", False)
    # the old decoder's checks still hold for the new record
    assert set(json.loads(value)) == {"format", "version", "routes", "who", "when", "forced"}
    with pytest.raises(RuleError, match="hashes to"):
        decode_route_record(value.replace(rs.version.encode(), b"0" * 16))


def test_history_records_round_trip() -> None:
    pub = Publication("abc", "ops", "2025-01-02T03:04:05.678Z", 3)
    assert decode_history_record(encode_history_record(pub)) == pub
    assert history_key(pub) == b"history/2025-01-02T03:04:05.678Z/abc"
    with pytest.raises(RuleError):
        decode_history_record(b'{"format": 1, "version": "abc"}')
    assert cli_identity() == f"cli:{os_user()}"
    assert cli_identity("alice") == f"alice (cli:{os_user()})"

"""`producers.protobuf_fast`: the same message as `json_format.ParseDict`, or None (then ParseDict
decides); never a message ParseDict would refuse."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.protobuf_fast import fast_message
from producers.workload import WorkloadGenerator, purchase_class

Purchase = purchase_class()

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.from_regex(r"-?[0-9]{1,22}", fullmatch=True),
    st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.integers()), max_size=3),
    st.lists(st.integers(), max_size=2),
)
_names = st.sampled_from(
    ["match_id", "player_id", "item_sku", "price_cents", "currency", "purchased_at_ms", "labels",
     "priceCents", "unknown"]
)  # fmt: skip


def parse_dict(payload: dict[str, Any]) -> Any:
    try:
        return json_format.ParseDict(payload, Purchase())
    except json_format.ParseError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_names, _values, max_size=7))
def test_the_fast_path_agrees_with_parse_dict_or_stands_aside(payload: dict[str, Any]) -> None:
    fast = fast_message(payload, Purchase)
    if fast is not None:
        assert parse_dict(payload) == fast, payload


def test_the_workloads_purchases_take_the_fast_path() -> None:
    messages = WorkloadGenerator(seed=1, payload_size=1024).take(500)
    purchases = [m for m in messages if m.category == "purchase"]
    assert purchases
    for m in purchases:
        as_json = json_format.MessageToDict(m.payload, preserving_proto_field_name=True)
        assert isinstance(as_json["price_cents"], str)  # int64 in its proto3 JSON form
        assert fast_message(as_json, Purchase) == m.payload


def test_what_it_leaves_to_parse_dict() -> None:
    assert fast_message({"priceCents": 5}, Purchase) is None  # JSON name
    assert fast_message({"match_id": None}, Purchase) is None
    assert fast_message({"price_cents": True}, Purchase) is None
    assert fast_message({"price_cents": 2**63}, Purchase) is None
    assert fast_message({"price_cents": " 5"}, Purchase) is None
    assert fast_message({"labels": {"a": 1}}, Purchase) is None
    assert fast_message({"match_id": "\ud800"}, Purchase) is None  # ParseDict: unpaired surrogate

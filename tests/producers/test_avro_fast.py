"""The fast Avro check never accepts a payload fastavro's validation refuses (it may defer on valid ones),
and it does accept the reference workload's payloads (else it would buy nothing)."""

from __future__ import annotations

from typing import Any

import fastavro
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.workload import generate, mock_catalog
from producers.avro_fast import INT_MAX, INT_MIN, LONG_MAX, compile_fast_check

SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "Probe", "namespace": "t",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": ["null", "double"]},
        {"name": "b", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "labels", "type": {"type": "map", "values": "long"}, "default": {}},
        {"name": "inner", "type": ["null", {"type": "record", "name": "In", "fields": [
            {"name": "n", "type": "int"}]}]},
    ],
})  # fmt: skip
edges = [INT_MIN - 1, INT_MIN, INT_MAX, INT_MAX + 1, LONG_MAX, LONG_MAX + 1, 0, -1]
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(edges), st.integers(-3, 3), st.floats(allow_nan=True),
    st.text(max_size=3), st.sampled_from(["A", "B", "C"]), st.binary(max_size=3), st.just(("t.In", {"n": 1})),
)  # fmt: skip
keys = st.sampled_from(["n", "k", "-type"])
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
names = ["s", "i", "l", "f", "d", "b", "raw", "e", "fx", "tags", "labels", "inner"]
VALID: dict[str, Any] = {
    "s": "x", "i": 1, "l": 2**40, "f": 1.5, "d": None, "b": True, "raw": b"r", "e": "A", "fx": b"ab",
    "tags": ["t"], "labels": {"k": 1}, "inner": {"n": 3},
}  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(names), values, max_size=12), st.booleans())
def test_fast_check_never_accepts_what_fastavro_refuses(changes: dict[str, Any], from_valid: bool) -> None:
    """Payloads near a valid one (one or more fields changed) and from scratch."""
    check = compile_fast_check(SCHEMA)
    assert check is not None
    payload = {**VALID, **changes} if from_valid else changes
    if check(payload):
        assert validate(payload, SCHEMA, raise_errors=False), payload


def test_fast_check_accepts_valid_payloads_and_defers_on_the_doubtful() -> None:
    check = compile_fast_check(SCHEMA)
    assert check is not None and validate(VALID, SCHEMA) and check(VALID)
    assert check({**VALID, "f": 3})  # an int for a float: fastavro takes it too
    doubtful_fields = (
        {"i": INT_MAX + 1}, {"i": True}, {"l": 1.0}, {"e": "C"}, {"fx": b"abc"}, {"raw": bytearray(b"r")},
        {"inner": ("t.In", {"n": 1})}, {"labels": {"k": "1"}}, {"tags": ("t",)},
    )  # fmt: skip
    for doubtful in doubtful_fields:
        assert not check({**VALID, **doubtful}), doubtful
    without_default = {k: v for k, v in VALID.items() if k != "labels"}
    assert not check(without_default) and validate(without_default, SCHEMA)  # fastavro decides


def test_logical_types_named_references_and_unknown_types_get_no_fast_check() -> None:
    logical = fastavro.parse_schema({"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})  # fmt: skip
    recursive = fastavro.parse_schema({"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]})  # fmt: skip
    assert compile_fast_check(logical) is None
    assert compile_fast_check(recursive) is None
    assert compile_fast_check({"type": "nonsense"}) is None


def test_every_workload_avro_payload_passes_the_fast_check() -> None:
    catalog = mock_catalog("avro-fast")
    checked = 0
    for message in generate(300, 1024, seed=3):
        schema = catalog.resolve(message.title, message.category, message.version)
        if schema.schema_type == "AVRO" and isinstance(message.payload, dict):
            assert schema.avro_fast_check is not None and schema.avro_fast_check(message.payload)
            checked += 1
    assert checked > 100

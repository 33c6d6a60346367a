"""The compiled Avro encoder (`producers/avro_encoder.c`) is one-sided: whatever it writes, fastavro's
validation accepts and fastavro's writer writes byte for byte; anything it is not sure of it leaves to
them (None). And it does write the reference workload's payloads (else it would buy nothing)."""

from __future__ import annotations

import io
import math
import os
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.workload import generate, mock_catalog
from producers import avro_fast
from producers.avro_fast import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, compile_encoder, compile_plan

pytestmark = pytest.mark.skipif(
    not avro_fast.COMPILED_AVRO_ENCODER and os.environ.get("CI") != "true",
    reason="the compiled Avro encoder was not built here (needs a C compiler; `pip install -e .`)",
)

SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "Probe", "namespace": "t",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "n", "type": "null"},
        {"name": "raw", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "labels", "type": {"type": "map", "values": "long"}, "default": {}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "num", "type": ["int", "long", "double"]},
        {"name": "mixed", "type": ["boolean", "double", "bytes", "null"]},
        {"name": "inner", "type": {"type": "record", "name": "In", "fields": [
            {"name": "k", "type": "int"}, {"name": "xs", "type": {"type": "array", "items": "double"}}]}},
    ],
})  # fmt: skip
EDGES = [INT_MIN - 1, INT_MIN, INT_MAX, INT_MAX + 1, LONG_MIN, LONG_MAX, LONG_MAX + 1, 0, -1, 2**70]
FLOATS = [0.0, -0.0, 1.5, 3.4e38, 3.5e38, 1e300, math.inf, -math.inf, math.nan, 1e-46]


class Text(str):
    """A str subclass: fastavro may take it, the encoder leaves it to fastavro."""


scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGES), st.integers(-3, 3), st.sampled_from(FLOATS),
    st.floats(allow_nan=True), st.text(max_size=3), st.sampled_from(["A", "B", "Z", "\ud800", "é"]),
    st.binary(max_size=3), st.just(Text("A")), st.just(bytearray(b"ab")), st.just(("t.In", {"k": 1})),
)  # fmt: skip
keys = st.sampled_from(["k", "xs", "x", "-type"]) | st.text(max_size=2)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
NAMES = [f["name"] for f in SCHEMA["fields"]]
VALID: dict[str, Any] = {
    "s": "x", "i": 1, "l": 2**40, "f": 1.5, "d": 2.25, "b": True, "n": None, "raw": b"r", "e": "A",
    "fx": b"ab", "tags": ["t", "u"], "labels": {"k": 1}, "opt": None, "num": 7, "mixed": False,
    "inner": {"k": 3, "xs": [0.5, 2]},
}  # fmt: skip


def written_by_fastavro(payload: Any, schema: Any = SCHEMA) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, payload)
    return out.getvalue()


def test_it_is_built_where_ci_runs() -> None:
    # scripts/setup.sh installs the package, which compiles it; CI must measure what production runs
    assert avro_fast.COMPILED_AVRO_ENCODER


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=16), st.booleans())
def test_what_it_writes_fastavro_accepts_and_writes_the_same(
    changes: dict[str, Any], from_valid: bool
) -> None:
    """Payloads near a valid one (some fields changed) and from scratch."""
    encode = compile_encoder(SCHEMA)
    assert encode is not None
    payload = {**VALID, **changes} if from_valid else changes
    data = encode(payload)
    if data is not None:
        assert validate(payload, SCHEMA, raise_errors=False), payload
        assert data == written_by_fastavro(payload), payload


ints = st.integers(INT_MIN, INT_MAX) | st.sampled_from([INT_MIN, INT_MAX, 0, -1])
longs = st.integers(LONG_MIN, LONG_MAX) | st.sampled_from([LONG_MIN, LONG_MAX, INT_MAX + 1])
reals = st.floats(allow_nan=True) | st.integers(-(2**70), 2**70) | st.sampled_from(FLOATS)
floats32 = st.floats(width=32, allow_nan=True) | st.integers(-(2**70), 2**70)
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "s": st.text(max_size=4),
    "i": ints,
    "l": longs,
    "f": floats32,
    "d": reals,
    "b": st.booleans(),
    "n": st.none(),
    "raw": st.binary(max_size=4),
    "e": st.sampled_from(["A", "B", "C"]),
    "fx": st.binary(min_size=2, max_size=2),
    "tags": st.lists(st.text(max_size=2), max_size=3),
    "labels": st.dictionaries(st.text(max_size=2), longs, max_size=3),
    "opt": st.none() | st.text(max_size=2),
    "num": ints | longs | reals,
    "mixed": st.booleans() | reals | st.binary(max_size=2) | st.none(),
    "inner": st.fixed_dictionaries({"k": ints, "xs": st.lists(reals, max_size=3)}),
}
NEAR_MISSES = scalars | st.sampled_from(EDGES + FLOATS) | st.lists(scalars, max_size=2)


@settings(max_examples=1500, deadline=None)
@given(st.fixed_dictionaries(VALID_FIELDS), st.sampled_from([None, *NAMES]), NEAR_MISSES, st.booleans())
def test_near_valid_payloads_are_written_as_fastavro_writes_them(
    payload: dict[str, Any], spoiled: str | None, near_miss: Any, drop: bool
) -> None:
    """A valid payload (edges of every range included), then perhaps one field spoiled or left out:
    most are written, and each exactly as fastavro writes it."""
    encode = compile_encoder(SCHEMA)
    assert encode is not None
    if spoiled is not None:
        if drop:
            del payload[spoiled]
        else:
            payload[spoiled] = near_miss
    data = encode(payload)
    if data is not None:
        assert validate(payload, SCHEMA, raise_errors=False), payload
        assert data == written_by_fastavro(payload), payload
    else:
        assert spoiled is not None, "a valid payload was left to fastavro"


def test_it_writes_valid_payloads_and_leaves_the_doubtful_to_fastavro() -> None:
    encode = compile_encoder(SCHEMA)
    assert encode is not None
    assert encode(VALID) == written_by_fastavro(VALID)
    written_as_fastavro_does = (
        {"f": 3}, {"num": 2**40}, {"num": 2**64}, {"num": 0.5}, {"mixed": 1.5}, {"mixed": 1}, {"mixed": b"x"},
        {"opt": "é"},
    )  # fmt: skip
    for written in written_as_fastavro_does:
        payload = {**VALID, **written}
        assert encode(payload) == written_by_fastavro(payload), written
    doubtful = (
        {"i": INT_MAX + 1}, {"i": True}, {"l": 1.0}, {"l": LONG_MAX + 1}, {"f": 3.5e38}, {"d": 2**1100},
        {"e": "Z"}, {"fx": b"abc"}, {"raw": bytearray(b"r")}, {"s": Text("x")}, {"s": "\ud800"},
        {"num": True}, {"num": 2**1100}, {"mixed": bytearray(b"x")}, {"tags": ("t",)}, {"labels": {1: 1}},
        {"inner": {"k": 3}}, {"inner": {"k": 3, "xs": [], "-type": "t.In"}}, {"opt": ("string", "x")},
    )  # fmt: skip
    for change in doubtful:
        assert encode({**VALID, **change}) is None, change
    without_default = {k: v for k, v in VALID.items() if k != "labels"}
    assert encode(without_default) is None  # fastavro writes the default: it decides


def test_schemas_it_does_not_cover_get_no_plan() -> None:
    logical = fastavro.parse_schema({"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})  # fmt: skip
    recursive = fastavro.parse_schema({"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]})  # fmt: skip
    record_union = fastavro.parse_schema({"type": "record", "name": "U", "fields": [
        {"name": "u", "type": ["null", {"type": "record", "name": "R", "fields": []}]}]})  # fmt: skip
    float_union = fastavro.parse_schema({"type": "record", "name": "V", "fields": [
        {"name": "v", "type": ["float", "double"]}]})  # fmt: skip
    for schema in (logical, recursive, record_union, float_union, {"type": "nonsense"}):
        assert compile_plan(schema) is None and compile_encoder(schema) is None


def test_it_writes_every_workload_avro_payload_as_fastavro_does() -> None:
    catalog = mock_catalog("avro-encoder")
    written = 0
    for size in (200, 1024, 20 * 1024):
        for message in generate(200, size, seed=size):
            schema = catalog.resolve(message.title, message.category, message.version)
            if schema.schema_type == "AVRO" and isinstance(message.payload, dict):
                expected = written_by_fastavro(message.payload, schema.avro)
                assert schema.avro_encoder is not None and schema.avro_encoder(message.payload) == expected
                written += 1
    assert written > 300

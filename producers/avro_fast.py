"""Fast paths for simple Avro schemas, in front of fastavro's validation and writer.

The compiled encoder (`producers/avro_encoder.c`, built by `pip install -e .`) validates and writes a
payload in one pass over a plan compiled here from the parsed schema (`compile_encoder`): ~0.5 µs for
a workload record instead of the check below plus fastavro's writer (~5 µs). It returns the bytes
fastavro would write, or None when not sure, and the caller then takes the path below. Without a C
compiler it is missing and only the check below runs.

The check:

fastavro's `validate` walks the parsed schema for every record, looking each type up by name (~5 µs for a
1 KB workload record, as much as writing it). Event schemas mostly use records of primitives, arrays,
maps, enums and unions of those, so for those we compile the schema once into plain checks. Like
`producers.json_fast` the check is one-sided: True means fastavro would accept the payload too; False
only means "not sure", and the caller then runs fastavro's validation, which decides and names the bad
field. It is stricter than fastavro on purpose (exact Python types, a missing field is "not sure" even
when it has a default, tuple notation and `-type` keys are left to fastavro), and a schema with a
logical type, a reference to a named type or an unknown type gets no fast check at all, so it never
accepts what fastavro would refuse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

try:
    from producers._avro_encoder import encode as _compiled_encode
except ImportError:  # built without a C compiler: the check and fastavro's writer do it all
    _compiled_encode = None

Check = Callable[[Any], bool]
Encoder = Callable[[Any], bytes | None]  # the payload's Avro bytes, or None: not sure
COMPILED_AVRO_ENCODER = _compiled_encode is not None

_MISSING = object()
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class _Unsupported(Exception):
    """The schema uses something the fast check does not cover."""


def _is_null(value: Any) -> bool:
    return value is None


def _is_boolean(value: Any) -> bool:
    return type(value) is bool


def _is_string(value: Any) -> bool:
    return type(value) is str


def _is_bytes(value: Any) -> bool:
    return type(value) is bytes


def _is_int(value: Any) -> bool:
    return type(value) is int and INT_MIN <= value <= INT_MAX


def _is_long(value: Any) -> bool:
    return type(value) is int and LONG_MIN <= value <= LONG_MAX


def _is_float(value: Any) -> bool:  # float and double: fastavro takes ints too (never bools)
    kind = type(value)
    return kind is float or kind is int


_PRIMITIVES: dict[str, Check] = {
    "null": _is_null,
    "boolean": _is_boolean,
    "string": _is_string,
    "bytes": _is_bytes,
    "int": _is_int,
    "long": _is_long,
    "float": _is_float,
    "double": _is_float,
}


def compile_fast_check(schema: Any) -> Check | None:
    """A one-sided validity check for a fastavro-parsed `schema`, or None when it uses anything not
    covered here."""
    try:
        return _compile(schema)
    except (_Unsupported, KeyError, TypeError):
        return None


def _compile(schema: Any) -> Check:
    if isinstance(schema, str):
        primitive = _PRIMITIVES.get(schema)
        if primitive is None:  # a named type referred to by name (possibly recursive): left to fastavro
            raise _Unsupported(schema)
        return primitive
    if isinstance(schema, list):
        return _union(tuple(_compile(branch) for branch in schema))
    if not isinstance(schema, dict) or "logicalType" in schema:
        raise _Unsupported(schema)
    kind = schema["type"]
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "enum":
        return _enum(frozenset(schema["symbols"]))
    if kind == "fixed":
        return _fixed(int(schema["size"]))
    if kind == "array":
        return _array(_compile(schema["items"]))
    if kind == "map":
        return _map(_compile(schema["values"]))
    if kind == "record":
        return _record(tuple((field["name"], _compile(field["type"])) for field in schema["fields"]))
    raise _Unsupported(kind)


def _union(branches: tuple[Check, ...]) -> Check:
    def union(value: Any) -> bool:
        if type(value) is tuple:  # fastavro's tuple notation names the branch: left to fastavro
            return False
        return any(branch(value) for branch in branches)

    return union


def _enum(symbols: frozenset[str]) -> Check:
    return lambda value: type(value) is str and value in symbols


def _fixed(size: int) -> Check:
    return lambda value: type(value) is bytes and len(value) == size


def _array(items: Check) -> Check:
    return lambda value: type(value) is list and all(map(items, value))


def _map(values: Check) -> Check:
    def mapping(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for key, item in value.items():
            if type(key) is not str or not values(item):
                return False
        return True

    return mapping


def _record(fields: tuple[tuple[str, Check], ...]) -> Check:
    def record(value: Any) -> bool:
        if type(value) is not dict or "-type" in value:
            return False
        get = value.get
        for name, check in fields:
            item = get(name, _MISSING)
            if item is _MISSING or not check(item):  # a missing field may have a default: fastavro decides
                return False
        return True

    return record


# The compiled encoder's plan: nested tuples (kind, ...), kinds as in avro_encoder.c.
NULL, BOOLEAN, INT, LONG, FLOAT, DOUBLE, STRING, BYTES, ENUM, FIXED, ARRAY, MAP, RECORD, UNION = range(14)
_PLAN_PRIMITIVES = {
    "null": NULL,
    "boolean": BOOLEAN,
    "int": INT,
    "long": LONG,
    "float": FLOAT,
    "double": DOUBLE,
    "string": STRING,
    "bytes": BYTES,
}
# Union branches the encoder picks between like fastavro (the first that validates); a float branch is
# left out (fastavro prefers a later double), and so are named and complex ones (fastavro weighs
# records by matching fields, and a string could be an enum symbol).
_UNION_BRANCHES = frozenset({NULL, BOOLEAN, INT, LONG, DOUBLE, STRING, BYTES})


def compile_encoder(schema: Any) -> Encoder | None:
    """The compiled encoder bound to `schema`'s plan, or None (no compiled encoder, or a schema it
    does not cover)."""
    if _compiled_encode is None:
        return None
    plan = compile_plan(schema)
    return None if plan is None else functools.partial(_compiled_encode, plan)


def compile_plan(schema: Any) -> tuple[Any, ...] | None:
    """`schema` (fastavro-parsed) as the compiled encoder's plan, or None when it uses anything the
    encoder leaves to fastavro (logical types, named references, unions of complex types)."""
    try:
        return _plan(schema)
    except (_Unsupported, KeyError, TypeError):
        return None


def _plan(schema: Any) -> tuple[Any, ...]:
    if isinstance(schema, list):
        branches = tuple(_plan(branch) for branch in schema)
        if not all(branch[0] in _UNION_BRANCHES for branch in branches):
            raise _Unsupported(schema)
        return (UNION, branches)
    if isinstance(schema, str):
        if schema not in _PLAN_PRIMITIVES:
            raise _Unsupported(schema)  # a named type referred to by name
        return (_PLAN_PRIMITIVES[schema],)
    if not isinstance(schema, dict) or "logicalType" in schema:
        raise _Unsupported(schema)
    kind = schema["type"]
    if isinstance(kind, str) and kind in _PLAN_PRIMITIVES:
        return (_PLAN_PRIMITIVES[kind],)
    if kind == "enum":
        return (ENUM, {symbol: index for index, symbol in enumerate(schema["symbols"])})
    if kind == "fixed":
        return (FIXED, int(schema["size"]))
    if kind == "array":
        return (ARRAY, _plan(schema["items"]))
    if kind == "map":
        return (MAP, _plan(schema["values"]))
    if kind == "record":
        fields = schema["fields"]
        return (RECORD, tuple(f["name"] for f in fields), tuple(_plan(f["type"]) for f in fields))
    raise _Unsupported(kind)

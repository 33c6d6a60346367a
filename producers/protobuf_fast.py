"""A fast dict -> Protobuf message conversion for simple messages, in front of `json_format.ParseDict`.

`ParseDict` walks every field and map entry in pure Python (~50 us for the workload's 1 KB `Purchase`,
most of it in its map entries), while the message constructor does the same work in C. For a dict whose
every value already has the one Python type the constructor takes for its field, both give the same
message, so we compile each message type once into a converter that says so or gives up:

- `string`: a `str`;
- integer types (32 or 64 bits, signed or not): an `int` in range (not a bool), or for the 64-bit ones
  a `str` of decimal digits (their proto3 JSON form, which ParseDict reads with `int()`);
- `bool`: a `bool`; `double`: a finite `float` or an `int` within 2**53;
- `map<string, string>`: a `dict` of `str` to `str`.

Anything else (keys by JSON name, `None`, enums, floats, bytes, nested or repeated messages, an
integer out of range) returns None and the caller runs `ParseDict`, which decides and words the error:
the fast path never accepts what `ParseDict` refuses nor builds another message.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

Convert = Callable[[Mapping[str, Any]], dict[str, Any] | None]  # constructor arguments, or None

_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
_WIDE = frozenset({_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64, _F.TYPE_UINT64, _F.TYPE_FIXED64})
_DIGITS = re.compile(r"-?[0-9]{1,20}")
_MISS = object()  # "not for the fast path"


def _integer(low: int, high: int, wide: bool) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is str:
            if not (wide and _DIGITS.fullmatch(value)):
                return _MISS
            value = int(value)
        elif type(value) is not int:
            return _MISS
        return value if low <= value <= high else _MISS

    return convert


def _string(value: Any) -> Any:
    return value if type(value) is str else _MISS


def _boolean(value: Any) -> Any:
    return value if type(value) is bool else _MISS


def _double(value: Any) -> Any:
    if (type(value) is int and -(2**53) <= value <= 2**53) or (type(value) is float and math.isfinite(value)):
        return value
    return _MISS


def _string_map(value: Any) -> Any:
    if type(value) is not dict:
        return _MISS
    for k, v in value.items():
        if type(k) is not str or type(v) is not str:
            return _MISS
    return value


def _field_converter(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    if field.message_type is not None:
        entry = field.message_type
        if not entry.GetOptions().map_entry:
            return None
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        if key.type == _F.TYPE_STRING and value.type == _F.TYPE_STRING:
            return _string_map
        return None
    if _is_repeated(field):
        return None
    if field.type == _F.TYPE_STRING:
        return _string
    if field.type == _F.TYPE_BOOL:
        return _boolean
    if field.type == _F.TYPE_DOUBLE:
        return _double
    if field.type in _INT_RANGES:
        return _integer(*_INT_RANGES[field.type], field.type in _WIDE)
    return None  # enum, float, bytes, group


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.29; `label` is deprecated
    return bool(repeated) if repeated is not None else field.label == _F.LABEL_REPEATED


@functools.lru_cache(maxsize=256)
def compile_converter(descriptor: Descriptor) -> Convert | None:
    """The fast converter of a message type, or None if none of its fields could take the fast path."""
    fields = {f.name: _field_converter(f) for f in descriptor.fields}
    converters = {name: c for name, c in fields.items() if c is not None}
    if not converters:
        return None

    def convert(payload: Mapping[str, Any]) -> dict[str, Any] | None:
        out = {}
        for name, value in payload.items():
            field = converters.get(name)
            if field is None:
                return None
            converted = field(value)
            if converted is _MISS:
                return None
            out[name] = converted
        return out

    return convert


def fast_message(payload: Mapping[str, Any], message_class: type[Message]) -> Message | None:
    """The message `ParseDict(payload, message_class())` would give, or None: then call ParseDict."""
    convert = compile_converter(message_class.DESCRIPTOR)
    arguments = convert(payload) if convert is not None else None
    if arguments is None:
        return None
    try:
        return message_class(**arguments)
    except (TypeError, ValueError, OverflowError):  # not expected; ParseDict decides and words it
        return None

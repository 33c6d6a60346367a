"""A fast "certainly valid" check for simple JSON schemas, in front of jsonschema.

jsonschema walks every payload through its generic keyword machinery (~50 µs for a small object), the
largest per-record cost of the SDK. Most event schemas use a handful of keywords, so for those we compile
the schema once into plain Python checks. The check is one-sided: True means jsonschema would accept
the payload too; False only means "not sure", and the caller then runs jsonschema, which decides and
names the bad field. Any keyword outside the small set below (and any dialect but drafts 4 to 2020-12)
disables the fast check for that schema, so it never accepts what jsonschema would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema

Check = Callable[[Any], bool]

_DIALECTS = (
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
# Keywords with no effect on validity here: no format checker is configured and no $ref is allowed.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "format"}
)
_KEYWORDS = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "enum",
    "items",
    "minItems",
    "maxItems",
}
# Exact Python types per JSON type: stricter than JSON Schema on purpose (no subclasses, no 1.0 as an
# integer, no True as a number): a miss only costs time. One set lookup per value, no call per type.
_PY_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "null": frozenset({type(None)}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
}
_SCALARS = (str, int, float, bool, type(None))


def compile_fast_check(document: Any, validator_cls: type) -> Check | None:
    """A one-sided validity check for `document`, or None when it uses anything not covered here."""
    if validator_cls not in _DIALECTS:
        return None
    return _compile(document)


def _compile(schema: Any) -> Check | None:
    if not isinstance(schema, dict) or not _KEYWORDS.issuperset(schema):
        return None
    checks: list[Check] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(n in _PY_TYPES for n in names):
            return None
        allowed = frozenset().union(*(_PY_TYPES[n] for n in names))
        checks.append(lambda x: type(x) in allowed)
    if "enum" in schema:
        options = schema["enum"]
        if not all(type(o) in _SCALARS for o in options):
            return None
        # Same type and equal: jsonschema does not take True for 1 (Python does).
        checks.append(lambda x: any(type(o) is type(x) and o == x for o in options))
    for keyword, check in (
        ("minLength", lambda n: lambda x: type(x) is not str or len(x) >= n),
        ("maxLength", lambda n: lambda x: type(x) is not str or len(x) <= n),
        ("minimum", lambda n: lambda x: not (type(x) is int or type(x) is float) or x >= n),
        ("maximum", lambda n: lambda x: not (type(x) is int or type(x) is float) or x <= n),
        ("minItems", lambda n: lambda x: type(x) is not list or len(x) >= n),
        ("maxItems", lambda n: lambda x: type(x) is not list or len(x) <= n),
    ):
        if keyword in schema:
            limit = schema[keyword]
            if type(limit) not in (int, float):
                return None
            checks.append(check(limit))
    if "items" in schema:
        item_check = _compile(schema["items"])
        if item_check is None:
            return None
        checks.append(lambda x: type(x) is not list or all(item_check(i) for i in x))
    object_check = _compile_object(schema)
    if isinstance(object_check, bool):  # False: unsupported
        return None
    if object_check is not None:
        checks.append(object_check)
    return _all_of(checks)


def _compile_object(schema: dict[str, Any]) -> Check | bool | None:
    """The check of properties/required/additionalProperties; None if absent, False if unsupported."""
    if not ({"properties", "required", "additionalProperties"} & schema.keys()):
        return None
    properties: dict[str, Check] = {}
    for name, subschema in schema.get("properties", {}).items():
        compiled = _compile(subschema)
        if compiled is None:
            return False
        properties[name] = compiled
    required = tuple(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    extra_check: Check | None = None
    if isinstance(extra, dict):
        extra_check = _compile(extra)
        if extra_check is None:
            return False
    elif not isinstance(extra, bool):
        return False

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True  # these keywords ignore non-objects ("type" decides about those)
        for name in required:
            if name not in x:
                return False
        for name, value in x.items():
            prop = properties.get(name)
            if prop is not None:
                if not prop(value):
                    return False
            elif extra is False or (extra_check is not None and not extra_check(value)):
                return False
        return True

    return check


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:
            if not c(x):
                return False
        return True

    return check

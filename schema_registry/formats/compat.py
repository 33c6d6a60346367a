"""Compatibility levels: which registered versions a new schema is checked against, in which direction.

BACKWARD: the new schema (reader) reads data written with the old one. FORWARD: the old schema reads
data written with the new one. FULL: both. Non-transitive levels check only the latest registered
version; *_TRANSITIVE levels check every registered version. NONE checks nothing. A different schema
type than a registered version's is always incompatible (the data could not be decoded at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from schema_registry.formats.avro_compat import avro_incompatibilities
from schema_registry.formats.jsonschema_compat import json_incompatibilities
from schema_registry.formats.protobuf_compat import protobuf_incompatibilities
from schema_registry.formats.types import (
    CompatibilityLevel,
    InvalidCompatibilityLevelError,
    ParsedSchema,
    SchemaType,
)

# (reader, writer, (reader role, writer role)) -> messages; [] when the reader can read the writer's data.
ReaderChecker = Callable[[Any, Any, tuple[str, str]], list[str]]


CHECKERS: dict[SchemaType, ReaderChecker] = {
    SchemaType.AVRO: avro_incompatibilities,
    SchemaType.PROTOBUF: protobuf_incompatibilities,
    SchemaType.JSON: json_incompatibilities,
}


def compatibility_level(level: CompatibilityLevel | str) -> CompatibilityLevel:
    try:
        return CompatibilityLevel(str(level).upper())
    except ValueError:
        known = ", ".join(lvl.value for lvl in CompatibilityLevel)
        raise InvalidCompatibilityLevelError(
            f"unknown compatibility level {level!r} (expected one of {known})"
        ) from None


def check_compatibility(
    level: CompatibilityLevel | str, new: ParsedSchema, previous: Sequence[ParsedSchema]
) -> list[str]:
    """Incompatibilities of `new` with the registered versions `previous` (oldest first); [] if none."""
    level = compatibility_level(level)
    if level is CompatibilityLevel.NONE or not previous:
        return []
    count = len(previous)
    positions = range(count) if level.transitive else [count - 1]
    problems: list[str] = []
    for position in reversed(positions):
        old = previous[position]
        against = f"registered schema {position + 1} of {count}"
        if old.schema_type != new.schema_type:
            problems.append(
                f"TYPE_MISMATCH: the new schema is {new.schema_type} but {against} is {old.schema_type}"
            )
            continue
        check = CHECKERS[new.schema_type]
        if level.checks_backward:
            for message in check(new, old, ("new", "old")):
                problems.append(f"{message} [BACKWARD: new schema reading data of {against}]")
        if level.checks_forward:
            for message in check(old, new, ("old", "new")):
                problems.append(f"{message} [FORWARD: {against} reading data of the new schema]")
    return problems

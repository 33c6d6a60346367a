"""Compatibility levels: direction, transitive vs latest-only, NONE, type changes, bad level names."""

from __future__ import annotations

import json

import pytest

from schema_registry.formats import (
    CompatibilityLevel,
    InvalidCompatibilityLevelError,
    check_compatibility,
    parse_schema,
)


def kill(*extra_fields: dict[str, object]) -> str:
    return json.dumps(
        {"type": "record", "name": "Kill", "fields": [{"name": "id", "type": "long"}, *extra_fields]}
    )


# v1: id. v2: adds `hp` WITH a default. v3: drops hp's default (new data always has it).
V1 = kill()
V2 = kill({"name": "hp", "type": "int", "default": 0})
V3 = kill({"name": "hp", "type": "int"})
HISTORY = [parse_schema("AVRO", text) for text in (V1, V2)]
NEW = parse_schema("AVRO", V3)


@pytest.mark.parametrize(
    ("level", "compatible"),
    [
        pytest.param("BACKWARD", True, id="backward-latest-only"),
        pytest.param("BACKWARD_TRANSITIVE", False, id="backward-transitive-sees-v1"),
        pytest.param("FORWARD", True, id="forward"),
        pytest.param("FORWARD_TRANSITIVE", True, id="forward-transitive"),
        pytest.param("FULL", True, id="full-latest-only"),
        pytest.param("FULL_TRANSITIVE", False, id="full-transitive-sees-v1"),
        pytest.param("NONE", True, id="none"),
    ],
)
def test_transitive_levels_check_every_version(level: str, compatible: bool) -> None:
    messages = check_compatibility(level, NEW, HISTORY)
    assert (messages == []) is compatible, messages
    if not compatible:
        assert all("registered schema 1 of 2" in m for m in messages)
        assert messages[0].startswith("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1")


def test_transitive_reports_each_failing_version_latest_first() -> None:
    history = [parse_schema("AVRO", json.dumps(t)) for t in ("int", "string")]
    new = parse_schema("AVRO", json.dumps("boolean"))
    messages = check_compatibility(CompatibilityLevel.BACKWARD_TRANSITIVE, new, history)
    assert [m.split("[")[1] for m in messages] == [
        "BACKWARD: new schema reading data of registered schema 2 of 2]",
        "BACKWARD: new schema reading data of registered schema 1 of 2]",
    ]


def test_no_previous_versions_is_compatible() -> None:
    assert check_compatibility("FULL_TRANSITIVE", NEW, []) == []


def test_level_names_are_case_insensitive_and_validated() -> None:
    assert check_compatibility("backward", NEW, HISTORY) == []
    with pytest.raises(InvalidCompatibilityLevelError, match="unknown compatibility level 'SIDEWAYS'"):
        check_compatibility("SIDEWAYS", NEW, HISTORY)


def test_different_schema_types_are_incompatible() -> None:
    json_schema = parse_schema("JSON", '{"type": "object"}')
    [message] = check_compatibility("BACKWARD", json_schema, HISTORY)
    assert message.startswith("TYPE_MISMATCH: the new schema is JSON but registered schema 2 of 2 is AVRO")

"""Helpers for table-driven compatibility tests: each case is an (old, new) pair with the kinds of
incompatibility expected when the new schema reads old data (backward) and vice versa (forward)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from schema_registry.formats import ParsedSchema, check_compatibility, parse_schema


@dataclass(frozen=True)
class Case:
    id: str
    old: str
    new: str
    backward: tuple[str, ...]  # incompatibility kinds when the new schema reads data of the old one
    forward: tuple[str, ...]  # ... when the old schema reads data of the new one


def params(cases: list[Case]) -> list[object]:
    return [pytest.param(case, id=case.id) for case in cases]


def kinds(messages: list[str]) -> tuple[str, ...]:
    """The leading vocabulary word of each message (e.g. TYPE_MISMATCH), in order, duplicates removed."""
    seen: dict[str, None] = {}
    for message in messages:
        seen.setdefault(message.split(" ", 1)[0].rstrip(":"), None)
    return tuple(seen)


def assert_both_directions(schema_type: str, case: Case) -> None:
    """BACKWARD, FORWARD and FULL agree with the table; every message names its kind and direction."""
    old, new = parse_schema(schema_type, case.old), parse_schema(schema_type, case.new)
    backward = check_compatibility("BACKWARD", new, [old])
    forward = check_compatibility("FORWARD", new, [old])
    full = check_compatibility("FULL", new, [old])
    assert kinds(backward) == tuple(dict.fromkeys(case.backward)), backward
    assert kinds(forward) == tuple(dict.fromkeys(case.forward)), forward
    assert full == backward + forward
    assert all("[BACKWARD:" in m for m in backward) and all("[FORWARD:" in m for m in forward)
    assert check_compatibility("NONE", new, [old]) == []


def parsed_all(schema_type: str, texts: list[str]) -> list[ParsedSchema]:
    return [parse_schema(schema_type, text) for text in texts]

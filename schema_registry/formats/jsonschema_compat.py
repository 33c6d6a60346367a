"""JSON Schema compatibility: does the reader schema accept every document the writer schema accepts?

BACKWARD compares the new schema as reader with the old as writer (Confluent's "original" is our
writer, its "update" our reader). The check walks both schemas together, following `$ref` on each
side (with a guard for recursive schemas), and reports narrowing with Confluent's difference names:

- types: TYPE_CHANGED (no shared type), TYPE_NARROWED (some writer types missing; `integer` is
  covered by `number`; a missing `type` means any type, or the types of `enum`/`const` values).
- strings: MAX_LENGTH_ADDED/DECREASED, MIN_LENGTH_ADDED/INCREASED, PATTERN_ADDED/CHANGED.
- numbers: MAXIMUM_*, MINIMUM_*, EXCLUSIVE_MAXIMUM_*, EXCLUSIVE_MINIMUM_* (ADDED/DECREASED or
  ADDED/INCREASED), MULTIPLE_OF_ADDED/CHANGED (the reader's multipleOf must divide the writer's).
- objects (content model: `additionalProperties` absent/true = open, false = closed, a schema =
  partially open): REQUIRED_ATTRIBUTE_ADDED; PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL (a new non-empty
  property schema where the writer was open: old data may hold anything there);
  PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL; PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL;
  PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL; ADDITIONAL_PROPERTIES_REMOVED (open or
  partial -> closed); ADDITIONAL_PROPERTIES_NARROWED (open -> schema, or schema -> narrower schema);
  MAX_PROPERTIES_ADDED/DECREASED, MIN_PROPERTIES_ADDED/INCREASED; properties compared recursively,
  a writer `patternProperties` entry matching a new property name counts as that property's schema.
  Adding a property to a closed model, removing one from an open model, and dropping `required`
  entries are compatible.
- arrays: `items` (one schema, or tuple positions pairwise, extra positions against the other
  side's `additionalItems`/rest schema), MAX_ITEMS_*, MIN_ITEMS_*, UNIQUE_ITEMS_ADDED. Switching between
  `items: {...}` and positional items is incompatible either way, as in Confluent's array diff, which
  compares the two forms separately (SCHEMA_ADDED, ITEM_ADDED_TO_OPEN_CONTENT_MODEL).
- values: ENUM_ARRAY_NARROWED (writer values missing), ENUM_ADDED, CONST_ADDED/CONST_CHANGED.
- combinations: with the same `anyOf`/`oneOf` on both sides every writer branch needs a compatible
  reader branch (SUM_TYPE_NARROWED otherwise); `allOf` needs every reader branch to accept some writer
  branch (PRODUCT_TYPE_EXTENDED otherwise); a combination appearing only in the reader must accept the
  writer as a whole (COMBINED_TYPE_CHANGED); NOT_TYPE_ADDED / NOT_TYPE_EXTENDED for `not`.
- booleans: a `false` reader rejects everything (TYPE_NARROWED); a `false` writer is read by anything.

Not covered (never reported): `dependencies`/`dependentRequired`/`dependentSchemas`, `if`/`then`/
`else`, `contains`, `propertyNames`, `format`, `unevaluated*`, Draft 4 boolean `exclusiveMaximum`,
and keywords next to a `$ref` (the `$ref` target is used, as in Draft 7). A combination that appears
only in the writer is checked branch by branch against the reader, which may over-report when the
writer's other keywords narrow the branches.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import referencing.exceptions

from schema_registry.formats.jsonschema import JsonSchema
from schema_registry.formats.types import ProblemLog

ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
# keyword -> (reader bound is narrower when it is ..., kind prefix)
UPPER_BOUNDS = {
    "maxLength": "MAX_LENGTH",
    "maximum": "MAXIMUM",
    "exclusiveMaximum": "EXCLUSIVE_MAXIMUM",
    "maxItems": "MAX_ITEMS",
    "maxProperties": "MAX_PROPERTIES",
}
LOWER_BOUNDS = {
    "minLength": "MIN_LENGTH",
    "minimum": "MINIMUM",
    "exclusiveMinimum": "EXCLUSIVE_MINIMUM",
    "minItems": "MIN_ITEMS",
    "minProperties": "MIN_PROPERTIES",
}


def json_incompatibilities(reader: JsonSchema, writer: JsonSchema, roles: tuple[str, str]) -> list[str]:
    """Messages for documents `writer` accepts that `reader` rejects; [] when compatible."""
    check = _Check(roles)
    check.compare(_Side(writer.document, writer.resolver), _Side(reader.document, reader.resolver), "#")
    return list(dict.fromkeys(check.problems))


@dataclass(frozen=True)
class _Side:
    """A subschema and the resolver for `$ref`s inside it."""

    node: Any
    resolver: Any

    def deref(self) -> _Side:
        side, hops = self, 0
        while isinstance(side.node, dict) and isinstance(side.node.get("$ref"), str) and hops < 50:
            try:
                resolved = side.resolver.lookup(side.node["$ref"])
            except referencing.exceptions.Unresolvable:
                return _Side(True, side.resolver)
            side, hops = _Side(resolved.contents, resolved.resolver), hops + 1
        return side

    def child(self, node: Any) -> _Side:
        return _Side(node, self.resolver)

    def get(self, key: str, default: Any = None) -> Any:
        return self.node.get(key, default) if isinstance(self.node, dict) else default


def _is_empty(node: Any) -> bool:
    return node is True or node == {}


@dataclass
class _Check(ProblemLog):
    roles: tuple[str, str]
    problems: list[str] = field(default_factory=list)
    in_progress: set[tuple[int, int]] = field(default_factory=set)

    def accepts(self, writer: _Side, reader: _Side, path: str) -> bool:
        """Whether reader accepts writer's documents, without reporting (to pick combination branches)."""
        trial = _Check(self.roles, in_progress=set(self.in_progress))
        trial.compare(writer, reader, path)
        return not trial.problems

    def compare(self, writer: _Side, reader: _Side, path: str) -> None:
        writer, reader = writer.deref(), reader.deref()
        if writer.node is False or _is_empty(reader.node):
            return
        if reader.node is False:
            self.report("TYPE_NARROWED", path, "{reader} accepts nothing")
            return
        pair = (id(writer.node), id(reader.node))
        if pair in self.in_progress:
            return
        self.in_progress.add(pair)
        self.types(writer, reader, path)
        self.bounds(writer, reader, path)
        self.values(writer, reader, path)
        writer_types = _types(writer.node)
        if "object" in writer_types:
            self.objects(writer, reader, path)
        if "array" in writer_types:
            self.arrays(writer, reader, path)
        self.combinations(writer, reader, path)
        self.in_progress.discard(pair)

    def types(self, writer: _Side, reader: _Side, path: str) -> None:
        if writer.get("type") is None and (writer.get("anyOf") or writer.get("oneOf")):
            return  # the writer's types come from its branches, which `combinations` checks one by one
        writer_types, reader_types = _types(writer.node), _types(reader.node)
        if "number" in reader_types:
            reader_types = reader_types | {"integer"}
        missing = writer_types - reader_types
        if not missing:
            return
        overlap = (writer_types & reader_types) or ("number" in writer_types and "integer" in reader_types)
        kind = "TYPE_NARROWED" if overlap else "TYPE_CHANGED"
        self.report(
            kind, f"{path}/type", f"{{reader}} does not accept type(s) {sorted(missing)} of {{writer}}"
        )

    def bounds(self, writer: _Side, reader: _Side, path: str) -> None:
        for keyword, prefix in (*UPPER_BOUNDS.items(), *LOWER_BOUNDS.items()):
            reader_bound = reader.get(keyword)
            if not _is_number(reader_bound):
                continue
            writer_bound = writer.get(keyword)
            upper = keyword in UPPER_BOUNDS
            if not _is_number(writer_bound):
                if not upper and keyword in ("minLength", "minItems", "minProperties") and reader_bound == 0:
                    continue
                self.report(
                    f"{prefix}_ADDED", f"{path}/{keyword}", f"{{reader}} adds {keyword} {reader_bound}"
                )
            elif (reader_bound < writer_bound) if upper else (reader_bound > writer_bound):
                change = "DECREASED" if upper else "INCREASED"
                self.report(
                    f"{prefix}_{change}",
                    f"{path}/{keyword}",
                    f"{keyword} is {writer_bound} in {{writer}} but {reader_bound} in {{reader}}",
                )
        self.multiple_of(writer, reader, path)
        reader_pattern, writer_pattern = reader.get("pattern"), writer.get("pattern")
        if isinstance(reader_pattern, str) and reader_pattern != writer_pattern:
            kind = "PATTERN_ADDED" if writer_pattern is None else "PATTERN_CHANGED"
            self.report(kind, f"{path}/pattern", f"{{reader}} requires pattern {reader_pattern!r}")
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self.report("UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems", "{reader} requires unique items")

    def multiple_of(self, writer: _Side, reader: _Side, path: str) -> None:
        reader_step, writer_step = reader.get("multipleOf"), writer.get("multipleOf")
        if not _is_number(reader_step):
            return
        if not _is_number(writer_step):
            self.report(
                "MULTIPLE_OF_ADDED", f"{path}/multipleOf", f"{{reader}} adds multipleOf {reader_step}"
            )
            return
        ratio = writer_step / reader_step
        if not math.isclose(ratio, round(ratio)):
            self.report(
                "MULTIPLE_OF_CHANGED",
                f"{path}/multipleOf",
                f"multipleOf {writer_step} in {{writer}} is not a multiple of {reader_step} in {{reader}}",
            )

    def values(self, writer: _Side, reader: _Side, path: str) -> None:
        reader_enum, writer_enum = reader.get("enum"), writer.get("enum")
        writer_values = writer_enum if isinstance(writer_enum, list) else None
        if "const" in writer.node if isinstance(writer.node, dict) else False:
            writer_values = [writer.node["const"]]
        if isinstance(reader_enum, list):
            if writer_values is None:
                self.report(
                    "ENUM_ADDED", f"{path}/enum", "{reader} restricts values to an enum {writer} lacks"
                )
            else:
                missing = [v for v in writer_values if not _contains(reader_enum, v)]
                if missing:
                    self.report(
                        "ENUM_ARRAY_NARROWED", f"{path}/enum", f"{{reader}} lacks enum values {missing}"
                    )
        if isinstance(reader.node, dict) and "const" in reader.node:
            const = reader.node["const"]
            if writer_values is None:
                self.report("CONST_ADDED", f"{path}/const", f"{{reader}} requires the value {const!r}")
            elif any(not _same_value(v, const) for v in writer_values):
                self.report("CONST_CHANGED", f"{path}/const", f"{{reader}} requires the value {const!r}")

    def objects(self, writer: _Side, reader: _Side, path: str) -> None:
        writer_props = writer.get("properties") or {}
        reader_props = reader.get("properties") or {}
        writer_extra = writer.get("additionalProperties", True)
        reader_extra = reader.get("additionalProperties", True)
        for name, reader_prop in reader_props.items():
            where = f"{path}/properties/{name}"
            if name in writer_props:
                self.compare(writer.child(writer_props[name]), reader.child(reader_prop), where)
                continue
            covering = _pattern_schema(writer, name)
            if covering is not None:
                self.compare(writer.child(covering), reader.child(reader_prop), where)
            elif _is_empty(writer_extra):
                if not _is_empty(reader_prop):
                    self.report(
                        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        where,
                        f"{{writer}} allowed any value for {name!r}; {{reader}} restricts it",
                    )
            elif writer_extra is not False and not self.accepts(
                writer.child(writer_extra), reader.child(reader_prop), where
            ):
                self.report(
                    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    where,
                    f"property {name!r} of {{reader}} does not accept the additionalProperties of {{writer}}",
                )
        for name, writer_prop in writer_props.items():
            if name in reader_props or _pattern_schema(reader, name) is not None:
                continue
            where = f"{path}/properties/{name}"
            if reader_extra is False:
                self.report(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    where,
                    f"{{reader}} is closed and no longer lists property {name!r}",
                )
            elif not _is_empty(reader_extra) and not self.accepts(
                writer.child(writer_prop), reader.child(reader_extra), where
            ):
                self.report(
                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    where,
                    f"removed property {name!r} is not accepted by the additionalProperties of {{reader}}",
                )
        added_required = [r for r in reader.get("required") or [] if r not in (writer.get("required") or [])]
        for name in added_required:
            self.report(
                "REQUIRED_ATTRIBUTE_ADDED", f"{path}/required", f"{{reader}} requires property {name!r}"
            )
        self.additional_properties(writer, reader, writer_extra, reader_extra, path)

    def additional_properties(
        self, writer: _Side, reader: _Side, writer_extra: Any, reader_extra: Any, path: str
    ) -> None:
        where = f"{path}/additionalProperties"
        if writer_extra is False or _is_empty(reader_extra):
            return
        if reader_extra is False:
            self.report(
                "ADDITIONAL_PROPERTIES_REMOVED", where, "{reader} no longer allows additional properties"
            )
        elif _is_empty(writer_extra) or not self.accepts(
            writer.child(writer_extra), reader.child(reader_extra), where
        ):
            self.report(
                "ADDITIONAL_PROPERTIES_NARROWED", where, "{reader} narrows the allowed additional properties"
            )

    def arrays(self, writer: _Side, reader: _Side, path: str) -> None:
        writer_tuple, writer_rest = _tuple_items(writer.node)
        reader_tuple, reader_rest = _tuple_items(reader.node)
        if (
            _is_tuple(writer.node) != _is_tuple(reader.node)
            and _has_items(writer.node)
            and _has_items(reader.node)
        ):
            self.items_form_changed(writer, reader, reader_tuple, path)
            return
        for i in range(max(len(writer_tuple), len(reader_tuple))):
            w = writer_tuple[i] if i < len(writer_tuple) else writer_rest
            r = reader_tuple[i] if i < len(reader_tuple) else reader_rest
            self.compare(writer.child(w), reader.child(r), f"{path}/items/{i}")
        self.compare(writer.child(writer_rest), reader.child(reader_rest), f"{path}/items")

    def items_form_changed(self, writer: _Side, reader: _Side, reader_tuple: list[Any], path: str) -> None:
        """`items: {...}` on one side, positional items on the other: Confluent's array diff compares the
        one-schema-for-all-items forms and the positional forms separately, so this is never compatible
        as a whole (SCHEMA_ADDED when the reader gains a one-for-all schema; positions added to the
        writer's content model, which `items: {...}` leaves open, otherwise)."""
        if not _is_tuple(reader.node):
            self.report(
                "SCHEMA_ADDED", f"{path}/items", "{reader} constrains all items where {writer} had positions"
            )
            return
        extra = writer.get("additionalItems", True)
        for i, item in enumerate(reader_tuple):
            where = f"{path}/items/{i}"
            if extra is True or extra == {}:
                if not _is_empty(item):
                    self.report(
                        "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", where, "{reader} adds a position to an open array"
                    )
            elif extra is not False and not self.accepts(writer.child(extra), reader.child(item), where):
                self.report(
                    "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    where,
                    "{reader} adds a position",
                )

    def combinations(self, writer: _Side, reader: _Side, path: str) -> None:
        for keyword in ("anyOf", "oneOf", "allOf"):
            reader_branches, writer_branches = reader.get(keyword), writer.get(keyword)
            where = f"{path}/{keyword}"
            if not isinstance(reader_branches, list):
                if isinstance(writer_branches, list) and keyword != "allOf":
                    for i, branch in enumerate(writer_branches):
                        self.compare(
                            writer.child(branch),
                            _Side(_without(reader.node, keyword), reader.resolver),
                            f"{where}/{i}",
                        )
                continue
            if isinstance(writer_branches, list):
                self.matched_branches(writer, reader, keyword, writer_branches, reader_branches, where)
                continue
            plain_writer = _Side(_without(writer.node, keyword), writer.resolver)
            fits = [
                self.accepts(plain_writer, reader.child(b), f"{where}/{i}")
                for i, b in enumerate(reader_branches)
            ]
            if not (all(fits) if keyword == "allOf" else any(fits)):
                self.report(
                    "COMBINED_TYPE_CHANGED",
                    where,
                    f"{{reader}} adds a {keyword} that rejects documents of {{writer}}",
                )
        self.negation(writer, reader, path)

    def matched_branches(
        self,
        writer: _Side,
        reader: _Side,
        keyword: str,
        writer_branches: list[Any],
        reader_branches: list[Any],
        where: str,
    ) -> None:
        if keyword == "allOf":
            for i, branch in enumerate(reader_branches):
                if not any(
                    self.accepts(writer.child(w), reader.child(branch), f"{where}/{i}")
                    for w in writer_branches
                ):
                    self.report(
                        "PRODUCT_TYPE_EXTENDED", f"{where}/{i}", f"{{reader}} adds a constraint to {keyword}"
                    )
            return
        for i, branch in enumerate(writer_branches):
            if not any(
                self.accepts(writer.child(branch), reader.child(r), f"{where}/{i}") for r in reader_branches
            ):
                self.report(
                    "SUM_TYPE_NARROWED",
                    f"{where}/{i}",
                    f"no {keyword} branch of {{reader}} accepts branch {i} of {{writer}}",
                )

    def negation(self, writer: _Side, reader: _Side, path: str) -> None:
        reader_not = reader.get("not")
        if reader_not is None:
            return
        writer_not = writer.get("not")
        if writer_not is None:
            self.report("NOT_TYPE_ADDED", f"{path}/not", "{reader} adds a 'not' constraint")
        elif not self.accepts(reader.child(reader_not), writer.child(writer_not), f"{path}/not"):
            self.report("NOT_TYPE_EXTENDED", f"{path}/not", "{reader} excludes more documents with 'not'")


def _types(node: Any) -> frozenset[str]:
    if not isinstance(node, dict):
        return ALL_TYPES
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(t for t in declared if isinstance(t, str))
    values = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(values, list):
        return frozenset(_type_of(v) for v in values)
    return ALL_TYPES


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_value(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (_is_number(a) and _is_number(b) and a == b)


def _contains(values: list[Any], value: Any) -> bool:
    return any(_same_value(v, value) for v in values)


def _pattern_schema(side: _Side, name: str) -> Any:
    for pattern, schema in (side.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, name):
                return schema
        except re.error:
            continue
    return None


def _tuple_items(node: Any) -> tuple[list[Any], Any]:
    """(positional item schemas, schema for the remaining items) under Draft 7 and 2020-12 spellings."""
    if not isinstance(node, dict):
        return [], True
    if isinstance(node.get("prefixItems"), list):
        return node["prefixItems"], node.get("items", True)
    items = node.get("items", True)
    if isinstance(items, list):
        return items, node.get("additionalItems", True)
    return [], items


def _is_tuple(node: Any) -> bool:
    return isinstance(node, dict) and (
        isinstance(node.get("prefixItems"), list) or isinstance(node.get("items"), list)
    )


def _has_items(node: Any) -> bool:
    return isinstance(node, dict) and ("items" in node or "prefixItems" in node)


def _without(node: Any, keyword: str) -> Any:
    return {k: v for k, v in node.items() if k != keyword} if isinstance(node, dict) else node

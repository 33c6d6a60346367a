"""Avro schemas: validation with fastavro and a canonical form that decides "same schema".

The canonical form is the schema's JSON with every name fully qualified (no `namespace` keys), each
named type spelled out once and referenced by full name afterwards, primitive types written as bare
strings (`{"type": "int"}` -> `"int"`), keys in the Parsing Canonical Form order (`name, type, fields,
symbols, items, values, size`) followed by the attributes that matter to readers and that Confluent
keeps (`default`, `order`, `aliases`, `doc`, logical types, custom properties in sorted order), and no
whitespace. Whitespace, key order and namespace spelling therefore do not make a different schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from schema_registry.formats.avro_text import java_schema_string
from schema_registry.formats.types import InvalidSchemaError, ParsedSchema, SchemaType

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Keys whose position in the canonical form is fixed; everything else follows in sorted order.
_ORDERED_KEYS = ("name", "type", "fields", "symbols", "items", "values", "size", "default", "order")
_ORDERED_TAIL = ("aliases", "doc")
_STRUCTURAL = frozenset({*_ORDERED_KEYS, *_ORDERED_TAIL, "namespace"})


class UnknownNameError(InvalidSchemaError):
    """A type name that is neither primitive nor defined (yet): references may define it later."""


class AvroSchema(ParsedSchema):
    """A parsed Avro schema. `tree` is the canonical JSON value; `named` maps every full name the schema
    can use (its own and its references') to that type's canonical definition."""

    schema_type = SchemaType.AVRO

    def __init__(
        self, raw: str, references: Mapping[str, str] | None, tree: Any, named: Mapping[str, dict[str, Any]]
    ) -> None:
        super().__init__(raw, references)
        self.tree = tree
        self.named = dict(named)
        self._canonical = json.dumps(tree, separators=(",", ":"), ensure_ascii=False)

    @property
    def canonical(self) -> str:
        return self._canonical

    def normalized(self) -> str:
        return self._canonical

    def canonical_string(self) -> str:
        """Avro Java's `Schema.toString()` of the schema, as Confluent stores it (`avro_text`)."""
        try:
            return java_schema_string(json.loads(self.raw), [json.loads(t) for t in self.references.values()])
        except (ValueError, KeyError, TypeError, AttributeError):  # pragma: no cover - validated already
            return self.raw

    def resolve(self, node: Any) -> Any:
        """The definition behind a named-type reference; other nodes unchanged."""
        if isinstance(node, str) and node not in PRIMITIVES:
            return self.named[node]
        return node


def parse_avro(schema_str: str, references: Mapping[str, str] | None = None) -> AvroSchema:
    """Parse and validate an Avro schema; named types defined by `references` may be used by name."""
    named: dict[str, dict[str, Any]] = {}
    fastavro_named: dict[str, Any] = {}
    _load_references(references or {}, named, fastavro_named)
    document = _load_json(schema_str, "schema")
    tree = _validate_one(document, named, fastavro_named, where="schema")
    return AvroSchema(schema_str, references, tree, named)


def _load_references(
    references: Mapping[str, str], named: dict[str, dict[str, Any]], fastavro_named: dict[str, Any]
) -> None:
    """Parse reference texts in dependency order (they may use each other's types, in any order given)."""
    pending = {name: _load_json(text, f"reference '{name}'") for name, text in references.items()}
    while pending:
        progressed = False
        last_error: UnknownNameError | None = None
        for name, document in list(pending.items()):
            try:
                _validate_one(document, named, fastavro_named, where=f"reference '{name}'")
            except UnknownNameError as exc:
                last_error = exc
                continue
            del pending[name]
            progressed = True
        if not progressed and last_error is not None:
            raise last_error


def _validate_one(
    document: Any, named: dict[str, dict[str, Any]], fastavro_named: dict[str, Any], *, where: str
) -> Any:
    """Normalize one schema document, then let fastavro check it; only commit its names if both pass."""
    trial_named = dict(named)
    tree = _Normalizer(trial_named, where).node(document, "", "")
    trial_fastavro = dict(fastavro_named)
    try:
        fastavro.parse_schema(document, named_schemas=trial_fastavro)
    except UnknownType as exc:
        raise UnknownNameError(f"{where}: unknown type {exc}") from None
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise InvalidSchemaError(f"{where}: {exc}") from None
    named.update(trial_named)
    fastavro_named.update(trial_fastavro)
    return tree


def _load_json(text: str, where: str) -> Any:
    if not isinstance(text, str):
        raise InvalidSchemaError(f"{where}: schema must be a string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidSchemaError(f"{where}: not valid JSON: {exc}") from None


class _Normalizer:
    """Walks a schema document, checking what fastavro does not (names, duplicates, unions) and building
    the canonical tree. `named` receives every named type defined on the way."""

    def __init__(self, named: dict[str, dict[str, Any]], where: str) -> None:
        self.named = named
        self.where = where

    def fail(self, path: str, message: str, error: type[InvalidSchemaError] = InvalidSchemaError) -> None:
        raise error(f"{self.where}: {message} at {path or '/'}")

    def node(self, node: Any, namespace: str, path: str) -> Any:
        if isinstance(node, str):
            return self.reference(node, namespace, path)
        if isinstance(node, list):
            return self.union(node, namespace, path)
        if isinstance(node, dict):
            return self.complex(node, namespace, path)
        self.fail(path, f"a type must be a name, an object or a union array, not {json.dumps(node)}")

    def reference(self, name: str, namespace: str, path: str) -> str:
        if name in PRIMITIVES:
            return name
        candidates = [name] if "." in name else [f"{namespace}.{name}", name] if namespace else [name]
        for candidate in candidates:
            if candidate in self.named:
                return candidate
        self.fail(path, f"unknown type {name!r}", UnknownNameError)
        raise AssertionError("unreachable")

    def union(self, branches: list[Any], namespace: str, path: str) -> list[Any]:
        out, seen = [], set()
        for i, branch in enumerate(branches):
            normalized = self.node(branch, namespace, f"{path}/{i}")
            if isinstance(normalized, list):
                self.fail(f"{path}/{i}", "a union may not directly contain another union")
            key = branch_key(normalized)
            if key in seen:
                self.fail(f"{path}/{i}", f"duplicate union branch {key!r}")
            seen.add(key)
            out.append(normalized)
        return out

    def complex(self, node: dict[str, Any], namespace: str, path: str) -> Any:
        kind = node.get("type")
        if isinstance(kind, str) and kind in NAMED_KINDS:
            return self.named_type(node, kind, namespace, path)
        if kind == "array":
            self.require(node, "items", path)
            items = self.node(node["items"], namespace, f"{path}/items")
            return self.with_props(node, {"type": "array", "items": items}, keep_doc=False)
        if kind == "map":
            self.require(node, "values", path)
            values = self.node(node["values"], namespace, f"{path}/values")
            return self.with_props(node, {"type": "map", "values": values}, keep_doc=False)
        if isinstance(kind, str) and kind in PRIMITIVES:
            props = self.with_props(node, {"type": kind}, keep_doc=False)
            return kind if len(props) == 1 else props
        if kind is None:
            self.fail(path, "missing 'type'")
        return self.node(kind, namespace, f"{path}/type")

    def named_type(self, node: dict[str, Any], kind: str, namespace: str, path: str) -> str | dict[str, Any]:
        fullname, own_namespace = self.full_name(node, namespace, path)
        if fullname in PRIMITIVES:
            self.fail(path, f"a named type cannot be called {fullname!r}")
        if fullname in self.named:
            self.fail(path, f"type {fullname!r} is defined twice")
        out: dict[str, Any] = {"name": fullname, "type": kind}
        self.named[fullname] = out  # registered first so a record may refer to itself
        if kind in ("record", "error"):
            out["fields"] = self.fields(node, own_namespace, path)
        elif kind == "enum":
            out["symbols"] = self.symbols(node, path)
            if "default" in node and node["default"] not in out["symbols"]:
                self.fail(f"{path}/default", f"enum default {node['default']!r} is not one of the symbols")
        else:
            size = node.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                self.fail(f"{path}/size", "a fixed type needs a non-negative integer 'size'")
            out["size"] = size
        if kind == "enum" and "default" in node:
            out["default"] = node["default"]
        if "aliases" in node:
            out["aliases"] = self.aliases(node["aliases"], own_namespace, f"{path}/aliases")
        self.with_props(node, out)
        return out

    def full_name(self, node: dict[str, Any], namespace: str, path: str) -> tuple[str, str]:
        name = node.get("name")
        if not isinstance(name, str):
            self.fail(f"{path}/name", "a named type needs a string 'name'")
            raise AssertionError("unreachable")
        if "." not in name:
            declared = node.get("namespace", namespace)
            if declared is not None and not isinstance(declared, str):
                self.fail(f"{path}/namespace", "'namespace' must be a string")
            name = f"{declared}.{name}" if declared else name
        self.check_dotted(name, f"{path}/name")
        return name, name.rpartition(".")[0]

    def check_dotted(self, name: str, path: str) -> None:
        for part in name.split("."):
            if not _NAME.match(part):
                self.fail(path, f"invalid name {name!r} (each part must match [A-Za-z_][A-Za-z0-9_]*)")

    def fields(self, node: dict[str, Any], namespace: str, path: str) -> list[dict[str, Any]]:
        fields = node.get("fields")
        if not isinstance(fields, list):
            self.fail(f"{path}/fields", "a record needs a 'fields' array")
            raise AssertionError("unreachable")
        out, seen = [], set()
        for i, field in enumerate(fields):
            where = f"{path}/fields/{i}"
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                self.fail(where, "a field must be an object with a string 'name'")
            name = field["name"]
            if not _NAME.match(name):
                self.fail(f"{where}/name", f"invalid field name {name!r}")
            if name in seen:
                self.fail(f"{where}/name", f"duplicate field name {name!r}")
            seen.add(name)
            self.require(field, "type", where)
            entry: dict[str, Any] = {
                "name": name,
                "type": self.node(field["type"], namespace, f"{where}/type"),
            }
            if "default" in field:
                entry["default"] = field["default"]
            if field.get("order", "ascending") != "ascending":  # the default order is no difference
                entry["order"] = field["order"]
            if "aliases" in field:
                entry["aliases"] = self.plain_names(field["aliases"], f"{where}/aliases")
            out.append(self.with_props(field, entry))
        return out

    def symbols(self, node: dict[str, Any], path: str) -> list[str]:
        symbols = node.get("symbols")
        if not isinstance(symbols, list):
            self.fail(f"{path}/symbols", "an enum needs a 'symbols' array")
            raise AssertionError("unreachable")
        names = self.plain_names(symbols, f"{path}/symbols")
        if len(set(names)) != len(names):
            self.fail(f"{path}/symbols", "enum symbols must be unique")
        return names

    def plain_names(self, names: Any, path: str) -> list[str]:
        if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
            self.fail(path, "expected an array of names matching [A-Za-z_][A-Za-z0-9_]*")
        return list(names)

    def aliases(self, aliases: Any, namespace: str, path: str) -> list[str]:
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            self.fail(path, "'aliases' must be an array of names")
        out = [a if "." in a or not namespace else f"{namespace}.{a}" for a in aliases]
        for alias in out:
            self.check_dotted(alias, path)
        return out

    def require(self, node: dict[str, Any], key: str, path: str) -> None:
        if key not in node:
            self.fail(path, f"missing {key!r}")

    @staticmethod
    def with_props(node: dict[str, Any], out: dict[str, Any], *, keep_doc: bool = True) -> dict[str, Any]:
        """Append `doc` and custom properties (logicalType, precision, ...) after the structural keys.
        Avro keeps no `doc` (nor `aliases`, `name`...) on a primitive, array or map: they are dropped."""
        if "doc" in node and keep_doc:
            out["doc"] = node["doc"]
        if not keep_doc:
            node = {k: v for k, v in node.items() if k not in ("aliases", "name", "namespace")}
        for key in sorted(k for k in node if k not in _STRUCTURAL):
            out[key] = node[key]
        return out


def branch_key(node: Any) -> str:
    """What makes two union branches the same branch: the type name (full name for named types)."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return str(node["name"] if node.get("type") in NAMED_KINDS else node["type"])
    return "union"

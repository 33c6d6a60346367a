"""Avro's own schema string: what Avro Java's `Schema.toString()` prints, and so what Confluent stores.

Confluent stores an Avro schema as `AvroSchema.canonicalString()`, that is `Schema.toString(references)`
of the Java library: compact JSON; for a named type `type`, `name` (short), `namespace` only where it
differs from the enclosing one, then `doc`, the fields / symbols / size, `default` (enums), the custom
properties in the order they were written, and `aliases`; for a field `name`, `type`, `doc`, `default`,
`order` (unless ascending), `aliases`, then its properties; a primitive without properties as a bare
string; a named type already printed (or defined by a referenced schema) by its name, short when it
is in the current namespace. Keys Avro reserves and does not keep (a `doc` on a primitive) disappear.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
TYPE_NAMES = PRIMITIVES | {"record", "enum", "array", "map", "union", "fixed"}
SCHEMA_RESERVED = frozenset(
    {"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"}
)
ENUM_RESERVED = SCHEMA_RESERVED | {"default"}
FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})


@dataclass
class _Named:
    full: str
    space: str | None
    node: dict[str, Any]
    fields: list[tuple[dict[str, Any], Any]] = field(default_factory=list)


def java_schema_string(document: Any, references: Iterable[Any] = ()) -> str:
    """The schema as Avro Java prints it; `references` are the referenced schemas' documents."""
    references = list(references)
    definitions: dict[str, _Named] = {}
    for doc in [*references, document]:
        _collect(doc, None, definitions)
    known = {_top_name(doc, definitions) for doc in references}
    writer = _Writer(definitions, {name for name in known if name})
    return json.dumps(writer.write(document, None), separators=(",", ":"), ensure_ascii=False)


def _split(name: str, space: str | None) -> tuple[str, str | None]:
    """(full name, namespace) of a name declared in `space`."""
    if "." in name:
        return name, name.rpartition(".")[0] or None
    return (f"{space}.{name}" if space else name), space or None


def _declared_space(node: dict[str, Any], enclosing: str | None) -> str | None:
    if "namespace" in node:
        return node["namespace"] or None
    return enclosing


def _collect(node: Any, space: str | None, out: dict[str, _Named]) -> None:
    """Every named type defined in `node`, by full name, with the namespace it was declared in."""
    if isinstance(node, list):
        for branch in node:
            _collect(branch, space, out)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        full, own = _split(str(node["name"]), _declared_space(node, space))
        out.setdefault(full, _Named(full, own, node))
        for item in node.get("fields") or () if kind in ("record", "error") else ():
            _collect(item.get("type"), own, out)
    elif kind == "array":
        _collect(node.get("items"), space, out)
    elif kind == "map":
        _collect(node.get("values"), space, out)
    elif isinstance(kind, (dict, list)):
        _collect(kind, space, out)


def _top_name(document: Any, definitions: dict[str, _Named]) -> str | None:
    if isinstance(document, dict) and document.get("type") in ("record", "error", "enum", "fixed"):
        return _split(str(document["name"]), _declared_space(document, None))[0]
    return None


def _props(node: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in reserved}


class _Writer:
    def __init__(self, definitions: dict[str, _Named], known: set[str]) -> None:
        self.definitions = definitions
        self.known = known

    def resolve(self, name: str, space: str | None) -> str:
        if "." in name or not space:
            return name
        qualified = f"{space}.{name}"
        return qualified if qualified in self.definitions or name not in self.definitions else name

    @staticmethod
    def qualified(full: str, space: str | None) -> str:
        own, _, short = full.rpartition(".")
        if own and own == space and short not in TYPE_NAMES:
            return short
        return full

    def write(self, node: Any, space: str | None) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            return self.named(self.definitions[self.resolve(node, space)], space)
        if isinstance(node, list):
            return [self.write(branch, space) for branch in node]
        kind = node.get("type")
        if isinstance(kind, (dict, list)):
            return self.write(kind, space)
        if kind in PRIMITIVES:
            props = _props(node, SCHEMA_RESERVED)
            return {"type": kind, **props} if props else kind
        if kind == "array":
            return {
                "type": "array",
                "items": self.write(node["items"], space),
                **_props(node, SCHEMA_RESERVED),
            }
        if kind == "map":
            return {
                "type": "map",
                "values": self.write(node["values"], space),
                **_props(node, SCHEMA_RESERVED),
            }
        if kind in ("record", "error", "enum", "fixed"):
            full, _ = _split(str(node["name"]), _declared_space(node, space))
            return self.named(self.definitions[full], space)
        return self.write(str(kind), space)  # {"type": "SomeNamedType"}

    def named(self, named: _Named, space: str | None) -> Any:
        if named.full in self.known:
            return self.qualified(named.full, space)
        self.known.add(named.full)
        node, own = named.node, named.space
        kind = node["type"]
        out: dict[str, Any] = {"type": kind, "name": named.full.rpartition(".")[2]}
        if own is not None and own != space:
            out["namespace"] = own
        elif own is None and space is not None:
            out["namespace"] = ""
        if node.get("doc") is not None:
            out["doc"] = node["doc"]
        if kind in ("record", "error"):
            out["fields"] = [self.field(item, own) for item in node.get("fields") or ()]
            out.update(_props(node, SCHEMA_RESERVED))
        elif kind == "enum":
            out["symbols"] = list(node.get("symbols") or ())
            if node.get("default") is not None:
                out["default"] = node["default"]
            out.update(_props(node, ENUM_RESERVED))
        else:
            out["size"] = node["size"]
            out.update(_props(node, SCHEMA_RESERVED))
        if node.get("aliases"):
            out["aliases"] = [self.qualified(_split(a, own)[0], own) for a in node["aliases"]]
        return out

    def field(self, item: dict[str, Any], space: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": item["name"], "type": self.write(item["type"], space)}
        if item.get("doc") is not None:
            out["doc"] = item["doc"]
        if "default" in item:
            out["default"] = item["default"]
        order = str(item.get("order", "ascending")).lower()
        if order != "ascending":
            out["order"] = order
        if item.get("aliases"):
            out["aliases"] = list(item["aliases"])
        out.update(_props(item, FIELD_RESERVED))
        return out

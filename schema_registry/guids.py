"""Schema GUIDs, as Confluent computes them: the UUID spelling of the MD5 of a schema's identity.

The MD5 covers the stored schema string, each reference (name, subject, version as 4 big-endian bytes),
then, each behind a 1 byte, the metadata (tags with their values, properties, sensitive names, all in
sorted order) and the rule set (every rule's name, doc, kind, mode, type, tags, params, expr, onSuccess,
onFailure, a 1 byte when disabled; then enableAt) — Confluent's `Schema.updateHash`. The same schema
registered under several subjects has one GUID; the index maps each GUID to its ids, by context (each
context has its own ids), kept up to date from the store's log of puts.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import uuid
from typing import Any

from schema_registry.contexts import DEFAULT_CONTEXT, context_of
from schema_registry.records import SchemaValue
from schema_registry.store import SchemaStore


def schema_guid(item: SchemaValue) -> str:
    md = hashlib.md5(usedforsecurity=False)
    md.update(item.schema.encode())
    for ref in item.references:
        md.update(ref.name.encode())
        md.update(ref.subject.encode())
        md.update(struct.pack(">i", ref.version))
    if item.metadata is not None:
        md.update(b"\x01")
        _hash_metadata(md, json.loads(item.metadata))
    if item.rule_set is not None:
        md.update(b"\x01")
        _hash_rule_set(md, json.loads(item.rule_set))
    return str(uuid.UUID(bytes=md.digest()))


def _hash_metadata(md: Any, metadata: dict[str, Any]) -> None:
    for key, values in sorted((metadata.get("tags") or {}).items()):
        md.update(key.encode())
        for value in sorted(values):
            md.update(value.encode())
    for key, value in sorted((metadata.get("properties") or {}).items()):
        md.update(key.encode())
        md.update(value.encode())
    for name in sorted(metadata.get("sensitive") or ()):
        md.update(name.encode())


def _hash_rule_set(md: Any, rule_set: dict[str, Any]) -> None:
    for kind in ("migrationRules", "domainRules", "encodingRules"):
        for rule in rule_set.get(kind) or ():
            for key in ("name", "doc", "kind", "mode", "type"):
                if rule.get(key) is not None:
                    md.update(str(rule[key]).encode())
            for tag in sorted(rule.get("tags") or ()):
                md.update(str(tag).encode())
            for key, value in sorted((rule.get("params") or {}).items()):
                md.update(str(key).encode())
                md.update(str(value).encode())
            for key in ("expr", "onSuccess", "onFailure"):
                if rule.get(key) is not None:
                    md.update(str(rule[key]).encode())
            if rule.get("disabled"):
                md.update(b"\x01")
    if rule_set.get("enableAt") is not None:
        md.update(str(rule_set["enableAt"]).encode())


class GuidIndex:
    """GUID -> (context, schema id) pairs, brought up to date from the store on each look-up."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self._ids: dict[str, set[tuple[str, int]]] = {}
        self._indexed = 0
        self._lock = threading.Lock()

    def ids(self, guid: str) -> list[tuple[str, int]]:
        """The (context, id) pairs still in the store whose schema has this GUID, sorted by context then
        id (Confluent's `ContextId` order; the default context "." sorts first)."""
        with self._lock:
            new, self._indexed = self._store.puts_since(self._indexed)
            for item in new:
                self._ids.setdefault(schema_guid(item), set()).add((context_of(item.subject), item.schema_id))
            candidates = sorted(self._ids.get(guid.lower(), ()))
        return [(c, i) for c, i in candidates if self._store.by_id(i, c)]

    def first(self, guid: str) -> tuple[str, int] | None:
        """The id Confluent answers `GET /schemas/guids/{guid}` with: the default context's, else the
        first context's."""
        found = self.ids(guid)
        default = [pair for pair in found if pair[0] == DEFAULT_CONTEXT]
        return (default or found)[0] if found else None

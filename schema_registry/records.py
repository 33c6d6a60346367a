"""The `_schemas` topic record layout, byte-compatible with Confluent Schema Registry and Karapace.

Keys are compact JSON objects (`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`), values are
JSON objects or null (a tombstone: the key's record is gone for good). Because log compaction matches
keys byte for byte, keys are written in exactly Confluent's field order and separators.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class KeyType(StrEnum):
    SCHEMA = "SCHEMA"
    CONFIG = "CONFIG"
    MODE = "MODE"
    DELETE_SUBJECT = "DELETE_SUBJECT"
    NOOP = "NOOP"
    CONTEXT = "CONTEXT"


DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class RecordKey:
    keytype: KeyType
    subject: str | None = None
    version: int | None = None
    context: str | None = None  # CONTEXT keys only: the context's name, such as ".ctx"
    tenant: str = DEFAULT_TENANT  # CONTEXT keys only

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"keytype": self.keytype.value}
        if self.keytype is KeyType.SCHEMA:
            doc.update(subject=self.subject, version=self.version, magic=1)
        elif self.keytype is KeyType.NOOP:
            doc["magic"] = 0
        elif self.keytype is KeyType.CONTEXT:
            doc.update(tenant=self.tenant, context=self.context, magic=0)
        else:
            doc.update(subject=self.subject, magic=0)
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RecordKey | None:
        """The key, or None for keys this registry does not understand (skipped, like Confluent does)."""
        try:
            doc = json.loads(raw)
            keytype = KeyType(doc["keytype"])
        except (ValueError, KeyError, TypeError):
            return None
        version = doc.get("version")
        return cls(
            keytype,
            doc.get("subject"),
            int(version) if version is not None else None,
            context=doc.get("context"),
            tenant=doc.get("tenant") or DEFAULT_TENANT,
        )


def context_value(context: str) -> bytes:
    """The value of a CONTEXT record (Confluent's `ContextValue`)."""
    return json.dumps({"tenant": DEFAULT_TENANT, "context": context}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reference:
    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class SchemaValue:
    """One version of a subject, as stored in a SCHEMA record. `metadata` and `rule_set` (Confluent data
    contracts) are kept as canonical JSON text (`canonical_json`), so values compare and hash as text."""

    subject: str
    version: int
    schema_id: int
    schema: str
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = field(default=())
    deleted: bool = False
    metadata: str | None = None
    rule_set: str | None = None

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.schema,
            "deleted": self.deleted,
        }
        if self.schema_type != "AVRO":
            doc["schemaType"] = self.schema_type
        if self.references:
            doc["references"] = [r.to_json() for r in self.references]
        if self.metadata is not None:
            doc["metadata"] = json.loads(self.metadata)
        if self.rule_set is not None:
            doc["ruleSet"] = json.loads(self.rule_set)
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, doc: dict[str, Any]) -> SchemaValue:
        refs = tuple(
            Reference(str(r["name"]), str(r["subject"]), int(r["version"]))
            for r in doc.get("references") or ()
        )
        return cls(
            subject=str(doc["subject"]),
            version=int(doc["version"]),
            schema_id=int(doc["id"]),
            schema=str(doc["schema"]),
            schema_type=str(doc.get("schemaType") or "AVRO"),
            references=refs,
            deleted=bool(doc.get("deleted", False)),
            metadata=canonical_json(doc.get("metadata")),
            rule_set=canonical_json(doc.get("ruleSet")),
        )


def canonical_json(doc: Any) -> str | None:
    """One text per JSON value (sorted keys, no whitespace); None for null and for empty objects."""
    if doc is None or doc == {}:
        return None
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode_json(doc: dict[str, Any] | None) -> bytes | None:
    return None if doc is None else json.dumps(doc, separators=(",", ":")).encode()


def decode_json(raw: bytes | None) -> dict[str, Any] | None:
    """A record value as a dict; None for tombstones and for values that are not JSON objects."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None

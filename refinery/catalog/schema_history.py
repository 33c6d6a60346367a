"""Every registered version of a subject with its schema text, and a line diff between consecutive
versions, from the schema registry's REST API (through the shared registry client).

Avro and JSON Schema texts are pretty-printed (two-space indent, keys in their order) before diffing, so
the diff shows the fields that changed rather than one long line; Protobuf text is shown as registered.
A registered version never changes, so each one is fetched once. Blocking: run in a thread.
"""

from __future__ import annotations

import difflib
import itertools
import json
import threading
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.registry_client import is_not_found


def pretty(schema_str: str, schema_type: str) -> str:
    """Schema text laid out one field per line (Avro/JSON); Protobuf and unparsable text unchanged."""
    if schema_type.upper() in ("AVRO", "JSON"):
        try:
            return json.dumps(json.loads(schema_str), indent=2, ensure_ascii=False)
        except ValueError:
            return schema_str
    return schema_str


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """A unified diff (3 lines of context) of two schema texts, without line endings."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name, lineterm=""
        )
    ]


class SchemaHistory:
    """Versions of subjects from the registry, cached per (subject, version)."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def subject(self, subject: str) -> dict[str, Any] | None:
        """`{subject, versions: [{version, id, type, text}], diffs: [{from, to, lines}]}`; None if the
        registry has no such subject. SchemaRegistryError / transport errors for an outage."""
        try:
            numbers = sorted(self.client.get_versions(subject))
        except SchemaRegistryError as exc:
            if is_not_found(exc):
                return None
            raise
        versions = [self._version(subject, n) for n in numbers]
        diffs = [
            {
                "from": a["version"],
                "to": b["version"],
                "lines": diff_lines(a["text"], b["text"], f"v{a['version']}", f"v{b['version']}"),
            }
            for a, b in itertools.pairwise(versions)
        ]
        return {"subject": subject, "versions": versions, "diffs": diffs}

    def _version(self, subject: str, number: int) -> dict[str, Any]:
        with self._lock:
            cached = self._versions.get((subject, number))
        if cached is not None:
            return cached
        registered = self.client.get_version(subject, number)
        schema_type = registered.schema.schema_type or "AVRO"  # Confluent omits the type for Avro
        found = {
            "version": number,
            "id": registered.schema_id,
            "type": schema_type,
            "text": pretty(registered.schema.schema_str or "", schema_type),
        }
        with self._lock:
            self._versions[(subject, number)] = found
        return found

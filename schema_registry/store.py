"""The in-memory view of the `_schemas` topic: subjects, versions, schemas by id, configs and modes.

Only the topic reader mutates it (`apply`), in log order; request handlers read it. Every method takes
the lock, so readers always see a state that existed after some record of the log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from schema_registry.records import KeyType, RecordKey, SchemaValue, decode_json


class SchemaStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._subjects: dict[str, dict[int, SchemaValue]] = {}
        self._by_id: dict[int, dict[tuple[str, int], SchemaValue]] = {}
        self._configs: dict[str | None, str] = {}
        self._modes: dict[str | None, str] = {}
        self.max_id = 0
        self._puts: list[SchemaValue] = []  # every version put, in log order (for incremental indexes)
        # (subject, version) -> the versions whose references name it
        self._referrers: dict[tuple[str, int], dict[tuple[str, int], SchemaValue]] = {}
        self.records_applied = 0
        self.generation = 0  # bumped by every change; caches of answers derived from the store key on it

    @contextmanager
    def locked(self) -> Iterator[SchemaStore]:
        with self.lock:
            yield self

    # --- applying the log -------------------------------------------------------------------------

    def apply(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        """Apply one record of the topic. Records this registry does not understand are skipped."""
        key = RecordKey.decode(raw_key) if raw_key is not None else None
        if key is None:
            return
        value = decode_json(raw_value)
        with self.lock:
            self.records_applied += 1
            self.generation += 1
            if key.keytype is KeyType.SCHEMA:
                self._apply_schema(key, value)
            elif key.keytype is KeyType.CONFIG:
                self._apply_setting(self._configs, key.subject, value, "compatibilityLevel")
            elif key.keytype is KeyType.MODE:
                self._apply_setting(self._modes, key.subject, value, "mode")
            elif key.keytype is KeyType.DELETE_SUBJECT and value is not None and key.subject:
                upto = int(value.get("version") or 0)
                for version, item in list(self._subjects.get(key.subject, {}).items()):
                    if version <= upto and not item.deleted:
                        self._put(replace(item, deleted=True))

    def _apply_schema(self, key: RecordKey, value: dict | None) -> None:
        if value is None:  # tombstone: a hard delete
            if key.subject is not None and key.version is not None:
                self._remove(key.subject, key.version)
            return
        try:
            item = SchemaValue.decode(value)
        except (KeyError, ValueError, TypeError):
            return
        self._put(item)

    def _put(self, item: SchemaValue) -> None:
        previous = self._subjects.get(item.subject, {}).get(item.version)
        if previous is not None:
            self._by_id.get(previous.schema_id, {}).pop((item.subject, item.version), None)
            self._unlink_references(previous)
        for ref in item.references:
            self._referrers.setdefault((ref.subject, ref.version), {})[(item.subject, item.version)] = item
        self._subjects.setdefault(item.subject, {})[item.version] = item
        self._by_id.setdefault(item.schema_id, {})[(item.subject, item.version)] = item
        self.max_id = max(self.max_id, item.schema_id)
        self._puts.append(item)

    def _remove(self, subject: str, version: int) -> None:
        versions = self._subjects.get(subject, {})
        item = versions.pop(version, None)
        if item is None:
            return
        self._unlink_references(item)
        users = self._by_id.get(item.schema_id, {})
        users.pop((subject, version), None)
        if not users:
            self._by_id.pop(item.schema_id, None)
        if not versions:
            self._subjects.pop(subject, None)

    def _unlink_references(self, item: SchemaValue) -> None:
        for ref in item.references:
            users = self._referrers.get((ref.subject, ref.version), {})
            users.pop((item.subject, item.version), None)
            if not users:
                self._referrers.pop((ref.subject, ref.version), None)

    @staticmethod
    def _apply_setting(
        target: dict[str | None, str], subject: str | None, value: dict | None, field: str
    ) -> None:
        if value is None or not value.get(field):
            target.pop(subject, None)
        else:
            target[subject] = str(value[field])

    def note_id(self, schema_id: int) -> None:
        """Remember an id used before (kept in the coordination topic) so it is never handed out again."""
        with self.lock:
            self.max_id = max(self.max_id, schema_id)
            self.generation += 1

    # --- queries ------------------------------------------------------------------------------------

    def subjects(self, *, include_deleted: bool = False) -> list[str]:
        with self.lock:
            return sorted(
                s
                for s, vs in self._subjects.items()
                if include_deleted or any(not v.deleted for v in vs.values())
            )

    def versions(self, subject: str) -> dict[int, SchemaValue]:
        """Every stored version of the subject (soft-deleted ones included), by version number."""
        with self.lock:
            return dict(sorted(self._subjects.get(subject, {}).items()))

    def by_id(self, schema_id: int) -> list[SchemaValue]:
        """Every subject version using this schema id, soft-deleted ones included."""
        with self.lock:
            return sorted(self._by_id.get(schema_id, {}).values(), key=lambda v: (v.subject, v.version))

    def referrers(self, subject: str, version: int) -> list[SchemaValue]:
        """The versions (soft-deleted ones included) whose references name this subject version."""
        with self.lock:
            return list(self._referrers.get((subject, version), {}).values())

    def puts_since(self, count: int) -> tuple[list[SchemaValue], int]:
        """The versions put after the first `count` puts, and the new count (for incremental indexes;
        an entry may since have been deleted, so check the store before trusting it)."""
        with self.lock:
            return self._puts[count:], len(self._puts)

    def all_versions(self) -> list[SchemaValue]:
        with self.lock:
            return [v for vs in self._subjects.values() for v in vs.values()]

    def config(self, subject: str | None) -> str | None:
        with self.lock:
            return self._configs.get(subject)

    def mode(self, subject: str | None) -> str | None:
        with self.lock:
            return self._modes.get(subject)

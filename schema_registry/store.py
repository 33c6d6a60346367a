"""The in-memory view of the `_schemas` topic: subjects, versions, schemas by id, configs, modes, contexts.

Only the topic reader mutates it (`apply`), in log order; request handlers read it. Every method takes
the lock, so readers always see a state that existed after some record of the log. Subjects are stored
under their qualified names (`:.ctx:s`); schema ids, and the highest one handed out, are per context.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from schema_registry.contexts import DEFAULT_CONTEXT, context_of, reference_target
from schema_registry.records import DEFAULT_TENANT, KeyType, RecordKey, SchemaValue, decode_json


class SchemaStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._subjects: dict[str, dict[int, SchemaValue]] = {}
        self._by_id: dict[tuple[str, int], dict[tuple[str, int], SchemaValue]] = {}  # (context, id)
        self._configs: dict[str | None, str] = {}
        self._modes: dict[str | None, str] = {}
        self._max_ids: dict[str, int] = {}  # context -> the highest id handed out in it
        self._contexts: set[str] = set()  # the contexts with a CONTEXT record (not the default one)
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
            elif key.keytype is KeyType.CONTEXT and key.context and key.tenant == DEFAULT_TENANT:
                if value is None:
                    self._contexts.discard(key.context)
                else:
                    self._contexts.add(key.context)
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
        context = context_of(item.subject)
        previous = self._subjects.get(item.subject, {}).get(item.version)
        if previous is not None:
            self._by_id.get((context, previous.schema_id), {}).pop((item.subject, item.version), None)
            self._unlink_references(previous)
        for ref in item.references:
            target = (reference_target(item.subject, ref.subject), ref.version)
            self._referrers.setdefault(target, {})[(item.subject, item.version)] = item
        self._subjects.setdefault(item.subject, {})[item.version] = item
        self._by_id.setdefault((context, item.schema_id), {})[(item.subject, item.version)] = item
        self._max_ids[context] = max(self._max_ids.get(context, 0), item.schema_id)
        self._puts.append(item)

    def _remove(self, subject: str, version: int) -> None:
        versions = self._subjects.get(subject, {})
        item = versions.pop(version, None)
        if item is None:
            return
        self._unlink_references(item)
        key = (context_of(subject), item.schema_id)
        users = self._by_id.get(key, {})
        users.pop((subject, version), None)
        if not users:
            self._by_id.pop(key, None)
        if not versions:
            self._subjects.pop(subject, None)

    def _unlink_references(self, item: SchemaValue) -> None:
        for ref in item.references:
            target = (reference_target(item.subject, ref.subject), ref.version)
            users = self._referrers.get(target, {})
            users.pop((item.subject, item.version), None)
            if not users:
                self._referrers.pop(target, None)

    @staticmethod
    def _apply_setting(
        target: dict[str | None, str], subject: str | None, value: dict | None, field: str
    ) -> None:
        if value is None or not value.get(field):
            target.pop(subject, None)
        else:
            target[subject] = str(value[field])

    def note_id(self, schema_id: int, context: str = DEFAULT_CONTEXT) -> None:
        """Remember an id used before (kept in the coordination topic) so it is never handed out again."""
        with self.lock:
            self._max_ids[context] = max(self._max_ids.get(context, 0), schema_id)
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

    @property
    def max_id(self) -> int:
        """The highest id handed out in the default context."""
        return self.max_id_in(DEFAULT_CONTEXT)

    def max_id_in(self, context: str) -> int:
        with self.lock:
            return self._max_ids.get(context, 0)

    def contexts(self) -> list[str]:
        """The contexts other than the default one that have a CONTEXT record, sorted."""
        with self.lock:
            return sorted(self._contexts)

    def has_context(self, context: str) -> bool:
        with self.lock:
            return context in self._contexts

    def by_id(self, schema_id: int, context: str = DEFAULT_CONTEXT) -> list[SchemaValue]:
        """Every subject version of the context using this schema id, soft-deleted ones included."""
        with self.lock:
            users = self._by_id.get((context, schema_id), {})
            return sorted(users.values(), key=lambda v: (v.subject, v.version))

    def referrers(self, subject: str, version: int) -> list[SchemaValue]:
        """The versions (soft-deleted ones included) whose references name this (qualified) subject
        version, a reference being read in its referrer's context."""
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

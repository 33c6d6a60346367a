"""Compatibility levels and modes, global, per context and per subject (CONFIG and MODE records).

As Confluent resolves them: the subject's own setting; else its context's (`/config/:.ctx:`) for a
subject in a named context, or the global one (`/config`) in the default context; else the
`:.__GLOBAL:` context's; else the server's default.
"""

from __future__ import annotations

from collections.abc import Callable

from schema_registry.contexts import DEFAULT_CONTEXT, split
from schema_registry.errors import ErrorCode, RegistryError, SubjectNotFoundError, invalid
from schema_registry.formats import CompatibilityLevel
from schema_registry.records import KeyType, RecordKey, encode_json
from schema_registry.store import SchemaStore

MODES = ("READWRITE", "READONLY", "IMPORT")
GLOBAL_CONTEXT_KEY = ":.__GLOBAL:"
Writer = Callable[[list[tuple[bytes, bytes | None]]], None]


def parse_level(raw: object) -> str:
    names = [level.value for level in CompatibilityLevel]
    text = str(raw or "").upper()
    if text not in names:
        raise invalid(
            ErrorCode.INVALID_COMPATIBILITY_LEVEL,
            f"Invalid compatibility level {raw!r}. Valid values are: {', '.join(names)}",
        )
    return text


def parse_mode(raw: object) -> str:
    text = str(raw or "").upper()
    if text not in MODES:
        raise invalid(ErrorCode.INVALID_MODE, f"Invalid mode {raw!r}. Valid values are: {', '.join(MODES)}")
    return text


class Policies:
    def __init__(self, store: SchemaStore, write: Writer, default_level: str = "BACKWARD") -> None:
        self._store = store
        self._write = write
        self.default_level = parse_level(default_level)

    # --- compatibility ------------------------------------------------------------------------------

    def global_compatibility(self) -> str:
        return self._store.config(None) or self.default_level

    def effective_compatibility(self, subject: str) -> str:
        return _in_scope(self._store.config, subject) or self.default_level

    def subject_compatibility(self, subject: str, *, default_to_global: bool) -> str:
        level = self._store.config(subject)
        if level is not None:
            return level
        if default_to_global:
            return self.global_compatibility()
        raise RegistryError(
            f"Subject '{subject}' does not have subject-level compatibility configured",
            ErrorCode.SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED,
        )

    def set_compatibility(self, subject: str | None, level: object) -> str:
        text = parse_level(level)
        self._write(
            [(RecordKey(KeyType.CONFIG, subject).encode(), encode_json({"compatibilityLevel": text}))]
        )
        return text

    def delete_compatibility(self, subject: str | None) -> str:
        """Drop the subject's (or the global) level; returns the level that was in force."""
        if subject is not None and self._store.config(subject) is None and not self._store.versions(subject):
            raise SubjectNotFoundError(subject)
        previous = self._store.config(subject) if subject else self.global_compatibility()
        self._write([(RecordKey(KeyType.CONFIG, subject).encode(), None)])
        return previous or self.global_compatibility()

    # --- modes --------------------------------------------------------------------------------------

    def global_mode(self) -> str:
        return self._store.mode(None) or "READWRITE"

    def effective_mode(self, subject: str) -> str:
        return _in_scope(self._store.mode, subject) or "READWRITE"

    def subject_mode(self, subject: str, *, default_to_global: bool) -> str:
        mode = self._store.mode(subject)
        if mode is not None:
            return mode
        if default_to_global:
            return self.global_mode()
        raise RegistryError(
            f"Subject '{subject}' does not have subject-level mode configured",
            ErrorCode.SUBJECT_LEVEL_MODE_NOT_CONFIGURED,
        )

    def set_mode(self, subject: str | None, mode: object, *, force: bool = False) -> str:
        text = parse_mode(mode)
        if text == "IMPORT" and not force:
            if not subject:
                has_schemas = bool(self._store.subjects())
            elif not split(subject).name:  # a context: any subject in it
                has_schemas = any(split(s).context == split(subject).context for s in self._store.subjects())
            else:
                has_schemas = bool(self._store.versions(subject))
            if has_schemas:
                raise invalid(
                    ErrorCode.OPERATION_NOT_PERMITTED,
                    "Cannot import since found existing subjects; set force=true to switch to IMPORT anyway",
                )
        self._write([(RecordKey(KeyType.MODE, subject).encode(), encode_json({"mode": text}))])
        return text

    def delete_mode(self, subject: str | None) -> str:
        previous = self._store.mode(subject) if subject else self.global_mode()
        self._write([(RecordKey(KeyType.MODE, subject).encode(), None)])
        return previous or self.global_mode()

    def require_writable(self, subject: str, mode: str | None = None) -> None:
        if (mode or self.effective_mode(subject)) == "READONLY":
            raise invalid(ErrorCode.OPERATION_NOT_PERMITTED, f"Subject {subject} is in read-only mode")


def _in_scope(setting: Callable[[str | None], str | None], subject: str) -> str | None:
    """The subject's setting, else its context's (or the global one in the default context), else the
    `:.__GLOBAL:` context's."""
    own = setting(subject)
    if own is not None:
        return own
    context = split(subject).context
    scoped = setting(None) if context == DEFAULT_CONTEXT else setting(f":{context}:")
    return scoped if scoped is not None else setting(GLOBAL_CONTEXT_KEY)

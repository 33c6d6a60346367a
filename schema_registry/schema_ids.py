"""Which id a schema already has, without comparing it with every stored version.

A new registration reuses the id of the same schema registered before (under any subject), as
Confluent does: same type, same canonical form, same references, same metadata and rule set, within
the subject's context (each context has its own ids). The index
maps that identity to the id and is brought up to date incrementally from the store's log of puts, so a
registration parses only the versions stored since the previous one (not all of them, every time).
Deleted versions stay indexed until their id is gone from the store altogether.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from schema_registry.contexts import context_of
from schema_registry.errors import RegistryError
from schema_registry.formats import ParsedSchema
from schema_registry.records import Reference, SchemaValue
from schema_registry.references import SchemaParser, type_name
from schema_registry.store import SchemaStore

Identity = tuple[str, str, tuple[Reference, ...], str | None, str | None]


def identity(
    parsed: ParsedSchema, references: Sequence[Reference], metadata: str | None, rule_set: str | None
) -> Identity:
    return (type_name(parsed.schema_type), parsed.canonical, tuple(references), metadata, rule_set)


class SchemaIds:
    def __init__(self, store: SchemaStore, parser: SchemaParser) -> None:
        self._store = store
        self._parser = parser
        self._ids: dict[tuple[str, Identity], int] = {}  # (context, identity) -> id
        self._indexed = 0
        self._lock = threading.Lock()

    def existing_id(self, context: str, key: Identity) -> int | None:
        with self._lock:
            self._catch_up()
            schema_id = self._ids.get((context, key))
        if schema_id is not None and not self._store.by_id(schema_id, context):
            return None  # hard-deleted everywhere since
        return schema_id

    def _catch_up(self) -> None:
        new, self._indexed = self._store.puts_since(self._indexed)
        for item in new:
            identity_ = self._identity(item)
            if identity_ is None:
                continue
            context = context_of(item.subject)
            key = (context, identity_)
            current = self._ids.get(key)
            if current is None or (current != item.schema_id and not self._store.by_id(current, context)):
                self._ids[key] = item.schema_id

    def _identity(self, item: SchemaValue) -> Identity | None:
        try:
            parsed = self._parser.parse_stored(item)
        except RegistryError:  # a record this registry cannot parse (written elsewhere): not reusable
            return None
        return identity(parsed, item.references, item.metadata, item.rule_set)

"""Parsing stored and submitted schemas, with their references resolved from the store (and cached)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from schema_registry.contexts import reference_target
from schema_registry.errors import ErrorCode, RegistryError, invalid
from schema_registry.formats import InvalidSchemaError, ParsedSchema, parse_schema
from schema_registry.formats.protobuf import descriptor_to_text
from schema_registry.records import Reference, SchemaValue
from schema_registry.store import SchemaStore

SchemaKey = tuple[str, str, tuple[Reference, ...]]


def parse_references(raw: Any) -> tuple[Reference, ...]:
    """The `references` field of a request body, validated (42201 names the bad entry)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid(ErrorCode.INVALID_SCHEMA, "'references' must be a list of {name, subject, version}")
    refs = []
    for i, item in enumerate(raw):
        try:
            refs.append(Reference(str(item["name"]), str(item["subject"]), int(item["version"])))
        except (KeyError, TypeError, ValueError):
            raise invalid(
                ErrorCode.INVALID_SCHEMA,
                f"references[{i}] must be an object with string 'name' and 'subject' and integer 'version'",
            ) from None
    return tuple(refs)


def in_context_of(subject: str, references: Sequence[Reference]) -> tuple[Reference, ...]:
    """The references with the subjects they name, read in the referring subject's context (a
    reference `b` from `:.ctx:a` names `:.ctx:b`); unchanged in the default context."""
    return tuple(Reference(r.name, reference_target(subject, r.subject), r.version) for r in references)


SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")


def type_name(schema_type: object) -> str:
    """ "AVRO" / "PROTOBUF" / "JSON" for an enum member or a string."""
    return str(getattr(schema_type, "value", schema_type))


def parse_schema_type(raw: object) -> str:
    """The `schemaType` field of a request body: absent means AVRO (42201 for anything unknown)."""
    if raw is None or raw == "":
        return "AVRO"
    name = str(raw).upper()
    if name not in SCHEMA_TYPES:
        raise invalid(
            ErrorCode.INVALID_SCHEMA, f"Invalid schemaType {raw!r}: use one of {', '.join(SCHEMA_TYPES)}"
        )
    return name


class SchemaParser:
    """Turns (type, text, references) into ParsedSchema, resolving references through the store.
    References given to `parse` name qualified subjects (`in_context_of`); stored ones are read in
    their version's context."""

    def __init__(self, store: SchemaStore, *, cache_size: int = 10_000) -> None:
        self._store = store
        self._cache: dict[SchemaKey, ParsedSchema] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def parse(self, schema_type: str, schema: str, references: Sequence[Reference] = ()) -> ParsedSchema:
        """Parse, raising 42201 with the parser's reason for an invalid schema or a dangling reference."""
        key: SchemaKey = (schema_type, schema, tuple(references))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        resolved = self.resolve(references)
        try:
            parsed = parse_schema(schema_type, schema, resolved)
        except InvalidSchemaError as exc:
            raise invalid(ErrorCode.INVALID_SCHEMA, f"Invalid schema: {exc}") from exc
        with self._lock:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = parsed
        return parsed

    def parse_stored(self, item: SchemaValue) -> ParsedSchema:
        return self.parse(item.schema_type, item.schema, in_context_of(item.subject, item.references))

    def protobuf_text(self, schema: str, references: Sequence[Reference]) -> str | None:
        """The .proto text of a Protobuf schema sent as a base64 FileDescriptorProto, else None."""
        try:
            return descriptor_to_text(schema, self.resolve(references))
        except InvalidSchemaError as exc:
            raise invalid(ErrorCode.INVALID_SCHEMA, f"Invalid schema: {exc}") from exc

    def stored_form(
        self, parsed: ParsedSchema, references: Sequence[Reference], *, normalize: bool
    ) -> tuple[str, ParsedSchema]:
        """The text to store for a submitted schema, parsed: Confluent's canonical string of it (or its
        normalized form). A text that does not parse back to the same schema is never stored: the
        submitted text is kept then."""
        text = parsed.normalized() if normalize else parsed.canonical_string()
        if text == parsed.raw:
            return text, parsed
        try:
            reparsed = self.parse(parsed.schema_type.value, text, references)
        except RegistryError:
            return parsed.raw, parsed
        return (text, reparsed) if reparsed == parsed else (parsed.raw, parsed)

    def resolve(self, references: Sequence[Reference]) -> dict[str, str]:
        """name -> schema text for every reference, transitively (the referenced schemas' own refs too)."""
        out: dict[str, str] = {}
        pending = list(references)
        while pending:
            ref = pending.pop()
            if ref.name in out:
                continue
            target = self.referenced_version(ref)
            out[ref.name] = target.schema
            pending.extend(in_context_of(target.subject, target.references))
        return out

    def referenced_version(self, ref: Reference) -> SchemaValue:
        versions = {v: item for v, item in self._store.versions(ref.subject).items() if not item.deleted}
        version = max(versions, default=None) if ref.version == -1 else ref.version
        target = versions.get(version) if version is not None else None
        if target is None:
            raise invalid(
                ErrorCode.INVALID_SCHEMA,
                f"Invalid schema: reference {ref.name!r} points to subject {ref.subject!r} "
                f"version {ref.version}, which does not exist",
            )
        return target

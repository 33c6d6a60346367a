"""The registry's business rules: registering, looking up and deleting schemas, checking compatibility.

Reads come from the in-memory store. Writes are serialized by one lock in the leader process: each
re-reads the topic to its end, validates against that state, writes its records and waits until they
are read back — so concurrent registrations of one schema get one id, and ids only ever grow.

Subjects arrive qualified (`:.ctx:s`, `schema_registry.contexts`); each context has its own subjects and
ids. Reads by an unqualified name that the default context does not have try each context in turn, as
Confluent's `...UsingContexts` look-ups do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from schema_registry.answers import AnswerCache
from schema_registry.contexts import (
    DEFAULT_CONTEXT,
    WILDCARD,
    Qualified,
    prefix_matcher,
    split,
    valid_subject,
)
from schema_registry.errors import (
    ErrorCode,
    IncompatibleSchemaError,
    LeaderUnavailableError,
    NotFoundError,
    RegistryError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
    invalid,
)
from schema_registry.formats import ParsedSchema, check_compatibility
from schema_registry.guids import GuidIndex
from schema_registry.kafka_log import KafkaLog
from schema_registry.policies import Policies
from schema_registry.records import KeyType, RecordKey, Reference, SchemaValue, context_value, encode_json
from schema_registry.references import SchemaParser, in_context_of, type_name
from schema_registry.schema_ids import SchemaIds, identity
from schema_registry.store import SchemaStore

MAX_VERSION = 2**31 - 1
LATEST = "latest"


@dataclass(frozen=True)
class SchemaRequest:
    """A schema as submitted in a request body."""

    schema: str
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()
    schema_id: int | None = None  # IMPORT mode only
    version: int | None = None  # IMPORT mode only
    metadata: str | None = None  # canonical JSON (`contracts.parse_metadata`)
    rule_set: str | None = None  # canonical JSON (`contracts.parse_rule_set`)


def parse_version(raw: str | int, *, allow_latest: bool = True) -> int | None:
    """A version path parameter: 1..2^31-1, or None for "latest" / -1 (42202 otherwise)."""
    text = str(raw).strip()
    if allow_latest and text in (LATEST, "-1"):
        return None
    # isascii: str.isdigit() is also true for digits int() refuses, such as "¹" (found by the fuzzer)
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_VERSION:
        return int(text)
    raise invalid(
        ErrorCode.INVALID_VERSION,
        f"The specified version '{text}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )


class RegistryService:
    def __init__(self, store: SchemaStore, log: KafkaLog, is_leader: Callable[[], bool]) -> None:
        self.store = store
        self.log = log
        self.parser = SchemaParser(store)
        self.ids = SchemaIds(store, self.parser)
        self.guids = GuidIndex(store)
        self.answers: AnswerCache[bytes] = AnswerCache(store)
        self.policies = Policies(store, self._write)
        self._is_leader = is_leader
        self._write_lock = threading.Lock()

    # --- subjects and versions ----------------------------------------------------------------------

    def subjects(
        self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = WILDCARD
    ) -> list[str]:
        """Subjects (with a live version; or any, `deleted`; or only those without one, `deleted_only`)
        that `prefix` selects (`contexts.prefix_matcher`: by default every context's)."""
        names = self.store.subjects(include_deleted=deleted or deleted_only)
        if deleted_only:
            live = set(self.store.subjects())
            names = [n for n in names if n not in live]
        selected = prefix_matcher(prefix, self.store.contexts())
        return [n for n in names if selected(n)]

    def contexts(self) -> list[str]:
        """The default context, then the others in name order (Confluent's `GET /contexts`)."""
        return [DEFAULT_CONTEXT, *self.store.contexts()]

    def schemas(
        self, *, prefix: str = "", deleted: bool = False, latest_only: bool = False
    ) -> list[SchemaValue]:
        """Every version of the subjects `prefix` selects, by subject then version (GET /schemas; the
        default prefix "" is the default context)."""
        out: list[SchemaValue] = []
        selected = prefix_matcher(prefix, self.store.contexts())
        for subject in self.store.subjects(include_deleted=deleted):
            if not selected(subject):
                continue
            versions = [v for v in self.store.versions(subject).values() if deleted or not v.deleted]
            out.extend(versions[-1:] if latest_only else versions)
        return out

    def _versions(self, subject: str, *, deleted: bool = False) -> dict[int, SchemaValue]:
        versions = self.store.versions(subject)
        visible = {v: item for v, item in versions.items() if deleted or not item.deleted}
        if not visible:
            raise SubjectNotFoundError(subject)
        return visible

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        return list(self._versions(subject, deleted=deleted))

    def version(self, subject: str, version: str | int, *, deleted: bool = False) -> SchemaValue:
        """A version of the subject; for an unqualified name the default context lacks, the first
        context holding that version of the name (Confluent's `getUsingContexts`)."""
        number = parse_version(version)
        try:
            return self._version(subject, number, deleted=deleted)
        except NotFoundError:
            for other in self._in_other_contexts(subject):
                try:
                    return self._version(other, number, deleted=deleted)
                except NotFoundError:
                    continue
            raise

    def _version(self, subject: str, number: int | None, *, deleted: bool) -> SchemaValue:
        versions = self._versions(subject, deleted=deleted)
        if number is None:
            return versions[max(versions)]
        if number not in versions:
            raise VersionNotFoundError(subject, number)
        return versions[number]

    def _in_other_contexts(self, subject: str) -> list[str]:
        """The same name in each named context, for a subject of the default context (else none)."""
        name = split(subject)
        if name.context != DEFAULT_CONTEXT or not name.name:
            return []
        return [Qualified(c, name.name).qualified for c in self.store.contexts()]

    def referenced_by(self, subject: str, version: str | int) -> list[int]:
        target = self.version(subject, version, deleted=True)
        return sorted(
            {
                item.schema_id
                for item in self.store.referrers(target.subject, target.version)
                if not item.deleted
            }
        )

    # --- schemas by id ------------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int, *, subject: str | None = None) -> SchemaValue:
        """The version using the id that Confluent's `getSchemaKeyUsingContexts` picks. The id is looked
        up in the subject's context (the default one without a subject): `:.ctx:` means any subject of
        `.ctx`; a qualified subject must use the id itself. An unqualified subject that does not use it
        is tried in each named context, then any subject of the default context is taken."""
        found = self._by_id(schema_id, subject)
        if found is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return found

    def _by_id(self, schema_id: int, subject: str | None) -> SchemaValue | None:
        name = split(subject) if subject is not None else Qualified(DEFAULT_CONTEXT, "")
        users = self.store.by_id(schema_id, name.context)
        if not name.name:
            return users[0] if users else None
        mine = [u for u in users if u.subject == name.qualified]
        if mine or name.context != DEFAULT_CONTEXT:
            return mine[-1] if mine else None
        for other in self._in_other_contexts(name.qualified):
            theirs = [u for u in self.store.by_id(schema_id, split(other).context) if u.subject == other]
            if theirs:
                return theirs[-1]
        return users[0] if users else None

    def schema_by_guid(self, guid: str) -> SchemaValue:
        found = self.guids.first(guid)
        if found is None:
            raise SchemaNotFoundError(f"Schema {guid} not found")
        context, schema_id = found
        return self.store.by_id(schema_id, context)[0]

    def subject_versions_for_id(
        self, schema_id: int, *, subject: str | None = None, deleted: bool = False
    ) -> list[SchemaValue]:
        """The versions using the id in the context where `schema_by_id` finds it."""
        found = self._by_id(schema_id, subject)
        if found is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        users = self.store.by_id(schema_id, split(found.subject).context)
        return [u for u in users if deleted or not u.deleted]

    # --- lookup and compatibility -------------------------------------------------------------------

    def prepare(
        self, subject: str, request: SchemaRequest, *, normalize: bool
    ) -> tuple[SchemaRequest, ParsedSchema]:
        """Parse the submitted schema for the subject (its references read in the subject's context);
        the returned request holds the text to store (Confluent's canonical string of it, or its
        normalized form; a Protobuf descriptor becomes .proto text) and the references as sent."""
        if not request.schema.strip():
            raise invalid(ErrorCode.INVALID_SCHEMA, "Empty schema")
        references = in_context_of(subject, request.references)
        if request.schema_type == "PROTOBUF":
            as_text = self.parser.protobuf_text(request.schema, references)
            if as_text is not None:
                request = replace(request, schema=as_text)
        parsed = self.parser.parse(request.schema_type, request.schema, references)
        text, parsed = self.parser.stored_form(parsed, references, normalize=normalize)
        return replace(request, schema=text), parsed

    def _same(self, item: SchemaValue, parsed: ParsedSchema, request: SchemaRequest) -> bool:
        """The version holds this schema, with these references, metadata and rule set."""
        if (
            item.schema_type != type_name(parsed.schema_type)
            or tuple(item.references) != tuple(request.references)
            or item.metadata != request.metadata
            or item.rule_set != request.rule_set
        ):
            return False
        if item.schema == request.schema:
            return True
        try:
            return self.parser.parse_stored(item).canonical == parsed.canonical
        except RegistryError:
            return False

    def lookup(
        self, subject: str, request: SchemaRequest, *, normalize: bool = False, deleted: bool = False
    ) -> SchemaValue:
        """The version of the subject holding this schema (Confluent: an exact match first, then the same
        schema with the latest version's metadata and rule set filled in where the request has none).
        An unqualified subject the default context does not match is tried in each named context."""
        try:
            return self._lookup(subject, request, normalize=normalize, deleted=deleted)
        except NotFoundError:
            for other in self._in_other_contexts(subject):
                try:
                    return self._lookup(other, request, normalize=normalize, deleted=deleted)
                except RegistryError:
                    continue
            raise

    def _lookup(self, subject: str, request: SchemaRequest, *, normalize: bool, deleted: bool) -> SchemaValue:
        versions = self._versions(subject, deleted=deleted)
        if not request.schema.strip():
            raise SchemaNotFoundError("Schema not found")
        request, parsed = self.prepare(subject, request, normalize=normalize)
        candidates = [request]
        inherited = inherit_contracts(request, self._latest(versions))
        if inherited != request:
            candidates.append(inherited)
        for candidate in candidates:
            for item in sorted(versions.values(), key=lambda v: v.version):
                if self._same(item, parsed, candidate):
                    return item
        raise SchemaNotFoundError("Schema not found")

    @staticmethod
    def _latest(versions: dict[int, SchemaValue]) -> SchemaValue | None:
        live = [v for v in versions.values() if not v.deleted]
        return max(live, key=lambda v: v.version) if live else None

    def incompatibilities(
        self,
        subject: str,
        request: SchemaRequest,
        *,
        version: str | int | None = None,
        normalize: bool = False,
    ) -> list[str]:
        """Why the schema is incompatible with the subject (all versions the level covers, or one)."""
        level = self.policies.effective_compatibility(subject)
        _, parsed = self.prepare(subject, request, normalize=normalize)
        live = {v: item for v, item in self.store.versions(subject).items() if not item.deleted}
        if version is not None:
            number = parse_version(version)
            if number is None and not live:
                return []
            chosen = live.get(number if number is not None else max(live)) if live else None
            if chosen is None:  # Confluent: 40402 whether or not the subject exists
                raise VersionNotFoundError(subject, str(number))
            previous = [chosen]
        else:
            previous = [live[v] for v in sorted(live)]
        if not previous:
            return []
        return check_compatibility(level, parsed, [self.parser.parse_stored(p) for p in previous])

    # --- writes (leader only) -----------------------------------------------------------------------

    def _write(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if not self._is_leader():
            raise LeaderUnavailableError("this registry instance is not the leader; retry the write")
        self.log.write(records)

    def _begin_write(self) -> None:
        if not self._is_leader():
            raise LeaderUnavailableError("this registry instance is not the leader; retry the write")
        self.log.catch_up()

    def write_policy(self, change: Callable[[Policies], str]) -> str:
        """Run a config or mode change under the write lock (leader only)."""
        with self._write_lock:
            self._begin_write()
            return change(self.policies)

    def register(self, subject: str, request: SchemaRequest, *, normalize: bool = False) -> SchemaValue:
        if not valid_subject(subject):
            raise invalid(ErrorCode.INVALID_SUBJECT, f"The specified subject '{subject}' is not a valid.")
        existing = self._already_registered(subject, request, normalize=normalize)
        if existing is not None:
            return existing
        with self._write_lock:
            self._begin_write()
            mode = self.policies.effective_mode(subject)
            self.policies.require_writable(subject, mode)
            versions = self.store.versions(subject)
            if mode != "IMPORT":
                request = filled(request, self._latest(versions))
            request, parsed = self.prepare(subject, request, normalize=normalize)
            if mode == "IMPORT":
                return self._import(subject, request, parsed)
            if request.schema_id is not None or request.version is not None:
                raise invalid(
                    ErrorCode.OPERATION_NOT_PERMITTED,
                    "Setting an explicit schema id or version is only permitted in IMPORT mode",
                )
            for item in versions.values():
                if not item.deleted and self._same(item, parsed, request):
                    return item
            problems = self.incompatibilities(subject, request)
            if problems:
                raise IncompatibleSchemaError(problems)
            context = split(subject).context
            item = SchemaValue(
                subject=subject,
                version=max(versions, default=0) + 1,
                schema_id=self._existing_id(subject, parsed, request) or self.store.max_id_in(context) + 1,
                schema=request.schema,
                schema_type=type_name(parsed.schema_type),
                references=request.references,
                metadata=request.metadata,
                rule_set=request.rule_set,
            )
            self._write(
                [
                    *self._context_record(subject),
                    (RecordKey(KeyType.SCHEMA, subject, item.version).encode(), item.encode()),
                ]
            )
            return item

    def _context_record(self, subject: str) -> list[tuple[bytes, bytes | None]]:
        """The CONTEXT record a subject's first registration in a named context writes with it (in the
        same batch: no extra round trip), so Confluent reading the topic knows the context too."""
        context = split(subject).context
        if context == DEFAULT_CONTEXT or self.store.has_context(context):
            return []
        return [(RecordKey(KeyType.CONTEXT, context=context).encode(), context_value(context))]

    def _already_registered(
        self, subject: str, request: SchemaRequest, *, normalize: bool
    ) -> SchemaValue | None:
        """Idempotent re-registration without waiting for the write lock: once the topic is read to its
        end, a schema live under the subject is the answer the locked path would give too (it writes
        nothing). Anything else (a new schema, IMPORT or READONLY mode, an error) takes the locked path."""
        if request.schema_id is not None or request.version is not None or not self._is_leader():
            return None
        self.log.catch_up()
        if self.policies.effective_mode(subject) != "READWRITE":
            return None
        versions = self.store.versions(subject)
        try:
            request, parsed = self.prepare(
                subject, filled(request, self._latest(versions)), normalize=normalize
            )
        except RegistryError:
            return None
        for item in versions.values():
            if not item.deleted and self._same(item, parsed, request):
                return item
        return None

    def _existing_id(self, subject: str, parsed: ParsedSchema, request: SchemaRequest) -> int | None:
        return self.ids.existing_id(
            split(subject).context,
            identity(parsed, request.references, request.metadata, request.rule_set),
        )

    def _import(self, subject: str, request: SchemaRequest, parsed: ParsedSchema) -> SchemaValue:
        """IMPORT mode: keep the id (and version) the schema had in the registry it comes from."""
        versions = self.store.versions(subject)
        context = split(subject).context
        schema_id = (
            request.schema_id
            or self._existing_id(subject, parsed, request)
            or self.store.max_id_in(context) + 1
        )
        for other in self.store.by_id(schema_id, context):
            if not self._same(other, parsed, request):
                raise invalid(
                    ErrorCode.OPERATION_NOT_PERMITTED,
                    f"Schema id {schema_id} already belongs to a different schema; cannot import it again",
                )
        version = request.version or max(versions, default=0) + 1
        existing = versions.get(version)
        if existing is not None:
            if existing.schema_id == schema_id and not existing.deleted:
                return existing
            raise invalid(
                ErrorCode.OPERATION_NOT_PERMITTED,
                f"Version {version} of subject '{subject}' already exists with schema id "
                f"{existing.schema_id}",
            )
        item = SchemaValue(
            subject,
            version,
            schema_id,
            request.schema,
            type_name(parsed.schema_type),
            request.references,
            metadata=request.metadata,
            rule_set=request.rule_set,
        )
        key = RecordKey(KeyType.SCHEMA, subject, version).encode()
        self._write([*self._context_record(subject), (key, item.encode())])
        return item

    def delete_context(self, context: str) -> None:
        """Forget an empty named context (`DELETE /contexts/{context}`; 42211 while it has subjects,
        soft-deleted ones included). A context that was never created is no error."""
        with self._write_lock:
            self._begin_write()
            prefix = Qualified(context, "").qualified
            if any(split(s).context == context for s in self.store.subjects(include_deleted=True)):
                raise RegistryError(
                    f"The specified context '{prefix}' is not empty.", ErrorCode.CONTEXT_NOT_EMPTY
                )
            if self.store.has_context(context):
                self._write([(RecordKey(KeyType.CONTEXT, context=context).encode(), None)])

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        with self._write_lock:
            self._begin_write()
            self.policies.require_writable(subject)
            versions = self.store.versions(subject)
            if not versions:
                raise SubjectNotFoundError(subject)
            live = [v for v, item in versions.items() if not item.deleted]
            if permanent:
                if live:
                    raise RegistryError(
                        f"Subject '{subject}' was not deleted first before being permanently deleted",
                        ErrorCode.SUBJECT_NOT_SOFT_DELETED,
                    )
                self._hard_delete(subject, list(versions))
                return list(versions)
            if not live:
                raise RegistryError(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
                    ErrorCode.SUBJECT_SOFT_DELETED,
                )
            for v in live:
                self._refuse_if_referenced(subject, v)
            value = encode_json({"subject": subject, "version": max(versions)})
            self._write([(RecordKey(KeyType.DELETE_SUBJECT, subject).encode(), value)])
            return live

    def delete_version(self, subject: str, version: str | int, *, permanent: bool = False) -> int:
        with self._write_lock:
            self._begin_write()
            self.policies.require_writable(subject)
            number = parse_version(version)
            versions = self.store.versions(subject)
            if not versions:
                raise SubjectNotFoundError(subject)
            if number is None:
                live = [v for v, item in versions.items() if not item.deleted]
                if not live:
                    raise VersionNotFoundError(subject, LATEST)
                number = max(live)
            item = versions.get(number)
            if item is None:
                raise VersionNotFoundError(subject, number)
            if permanent:
                if not item.deleted:
                    raise RegistryError(
                        f"Subject '{subject}' Version {number} was not deleted first before being "
                        "permanently deleted",
                        ErrorCode.SCHEMAVERSION_NOT_SOFT_DELETED,
                    )
                self._hard_delete(subject, [number])
                return number
            if item.deleted:
                raise RegistryError(
                    f"Subject '{subject}' Version {number} was soft deleted.Set permanent=true to delete "
                    "permanently",
                    ErrorCode.SCHEMAVERSION_SOFT_DELETED,
                )
            self._refuse_if_referenced(subject, number)
            deleted = replace(item, deleted=True)
            self._write([(RecordKey(KeyType.SCHEMA, subject, number).encode(), deleted.encode())])
            return number

    def _refuse_if_referenced(self, subject: str, version: int) -> None:
        if any(
            not item.deleted for item in self.store.referrers(subject, version)
        ):  # Confluent's text (its SchemaKey.toString()); GET .../referencedby names the users
            raise RegistryError(
                "One or more references exist to the schema "
                f"{{magic=1,keytype=SCHEMA,subject={subject},version={version}}}.",
                ErrorCode.REFERENCE_EXISTS,
            )

    def _hard_delete(self, subject: str, versions: list[int]) -> None:
        context = split(subject).context
        self.log.remember_max_id(self.store.max_id_in(context), context)
        records: list[tuple[bytes, bytes | None]] = [
            (RecordKey(KeyType.SCHEMA, subject, v).encode(), None) for v in versions
        ]
        if not self.store.versions(subject).keys() - set(versions):
            records.append((RecordKey(KeyType.DELETE_SUBJECT, subject).encode(), None))
        self._write(records)


def inherit_contracts(request: SchemaRequest, latest: SchemaValue | None) -> SchemaRequest:
    """The request with the latest version's metadata and rule set where it has none (Confluent's
    `maybeSetMetadataRuleSet`, without config-level defaults and overrides)."""
    if latest is None:
        return request
    return replace(
        request,
        metadata=request.metadata if request.metadata is not None else latest.metadata,
        rule_set=request.rule_set if request.rule_set is not None else latest.rule_set,
    )


def filled(request: SchemaRequest, latest: SchemaValue | None) -> SchemaRequest:
    """A registration as Confluent completes it: an empty schema means the latest version's schema (a
    new version with other metadata or rules), and missing metadata and rules are inherited."""
    if not request.schema.strip() and latest is not None:
        request = replace(
            request, schema=latest.schema, schema_type=latest.schema_type, references=latest.references
        )
    return inherit_contracts(request, latest)

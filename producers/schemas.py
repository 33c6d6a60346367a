"""Schemas in the registry: the subject naming rule, registration, and cached look-ups.

Subject naming rule (one subject per title and category, its versions are our versions):

    subject = "{title}.{category}-value"        e.g. "1234.player_killed-value"
    version = the subject version in the registry (1, 2, ...)

So `(title="1234", category="player_killed", version=2)` is version 2 of subject
`1234.player_killed-value`, and the registry's compatibility rules apply between a category's versions.
The schema is shared by every env and source. The `-value` suffix follows Confluent's convention for
record values. We talk to the registry only through confluent-kafka's `SchemaRegistryClient`, built
by `common.registry_client`.

Registering is an explicit step (`SchemaCatalog.register`, `refinery-client register`); `register`
checks that the registry will give the version the caller expects before it writes anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fastavro
import jsonschema
from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import RegistrySettings
from common.errors import RegistryAccessError
from common.registry_client import (
    TRANSPORT_ERRORS,
    is_access_denied,
    is_not_found,
    not_a_registry,
    redacted_url,
    registry_client,
)
from common.topics import validate_component, validate_version
from producers.avro_fast import compile_encoder as compile_avro_encoder
from producers.avro_fast import compile_fast_check as compile_avro_fast_check
from producers.errors import (
    RegistryUnavailableError,
    SchemaNotRegisteredError,
    SchemaRejectedError,
    SchemaVersionError,
)
from producers.json_fast import compile_fast_check
from producers.protobuf_schema import CompiledProto, compile_proto

SUBJECT_SUFFIX = "-value"
SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")
FORMAT_BY_SCHEMA_TYPE = {"AVRO": "avro", "PROTOBUF": "protobuf", "JSON": "json"}

T = TypeVar("T")


def subject_for(title: str, category: str) -> str:
    """The registry subject holding every version of (title, category)'s schema."""
    validate_component("title", title)
    validate_component("category", category)
    return f"{title}.{category}{SUBJECT_SUFFIX}"


@dataclass(frozen=True)
class ResolvedSchema:
    """A registered schema, parsed once and ready to validate, encode and decode payloads."""

    schema_id: int
    schema_type: str
    schema_str: str
    subject: str | None = None
    version: int | None = None
    avro: Any = field(default=None, repr=False, compare=False)  # fastavro parsed schema
    avro_fields: frozenset[str] | None = field(default=None, repr=False, compare=False)  # of a record
    json_validator: Any = field(default=None, repr=False, compare=False)  # jsonschema validator
    json_fast_check: Any = field(default=None, repr=False, compare=False)  # see producers.json_fast
    avro_fast_check: Any = field(default=None, repr=False, compare=False)  # see producers.avro_fast
    avro_encoder: Any = field(default=None, repr=False, compare=False)  # see producers.avro_fast
    proto: CompiledProto | None = field(default=None, repr=False, compare=False)

    @property
    def payload_format(self) -> str:
        return FORMAT_BY_SCHEMA_TYPE[self.schema_type]


def _call(what: str, fn: Callable[[], T], url: str = "") -> T:
    """Run a registry call, turning transport and server failures, and the answers of something that
    is not a registry at `url`, into RegistryUnavailableError, and refused credentials (401/403) into
    RegistryAccessError (never a "not registered" or a rejected schema)."""
    try:
        return fn()
    except TRANSPORT_ERRORS as exc:
        raise RegistryUnavailableError(f"schema registry unreachable while {what}: {exc}") from None
    except SchemaRegistryError as exc:
        if is_access_denied(exc):
            where = f" at {redacted_url(url)}" if url else ""
            raise RegistryAccessError(
                f"schema registry{where} refused our credentials while {what} (HTTP {exc.http_status_code}: "
                f"{exc.error_message}); set REFINERY_REGISTRY_USERNAME and REFINERY_REGISTRY_PASSWORD "
                "(or a token) for a user with the role this needs"
            ) from None
        if exc.http_status_code >= 500 or exc.http_status_code < 0:
            raise RegistryUnavailableError(f"schema registry failed while {what}: {exc}") from None
        wrong_service = not_a_registry(exc, url) if url else None
        if wrong_service is not None:
            raise RegistryUnavailableError(wrong_service) from None
        raise


class SchemaCatalog:
    """Registers schemas and resolves them by (title, category, version) or by id, caching both ways."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client
        rest = getattr(client, "_rest_client", None)  # for messages; confluent's mock client has none
        self.url = ",".join(getattr(rest, "base_urls", None) or [])
        self._by_key: dict[tuple[str, str, int], ResolvedSchema] = {}
        self._by_id: dict[int, ResolvedSchema] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: RegistrySettings | None = None, *, timeout_s: float = 5.0
    ) -> SchemaCatalog:
        return cls(registry_client(settings or RegistrySettings(), timeout=timeout_s))

    def close(self) -> None:
        self.client.close()

    def ping(self) -> None:
        """RegistryUnavailableError unless the registry answers (a cheap subjects listing)."""
        try:
            _call("listing subjects", self.client.get_subjects, self.url)
        except SchemaRegistryError as exc:
            raise RegistryUnavailableError(f"schema registry refused a subjects listing: {exc}") from None

    # --- registration ------------------------------------------------------------------------------
    def register_subject(self, subject: str, schema_str: str, schema_type: str) -> RegisteredSchema:
        """Register a schema under any subject; return the registry's answer (id and version)."""
        schema = _schema(schema_str, schema_type)
        try:
            return _call(
                f"registering a schema under {subject!r}",
                lambda: self.client.register_schema_full_response(subject, schema),
                self.url,
            )
        except SchemaRegistryError as exc:
            raise SchemaRejectedError(f"registry refused the schema for {subject!r}: {exc}") from None

    def register(
        self, title: str, category: str, schema_str: str, schema_type: str, *, version: int | None = None
    ) -> ResolvedSchema:
        """Register a schema for (title, category). With `version`, refuse unless it becomes that version
        (or already is it): versions are assigned by the registry in order, so v2 needs v1 first."""
        subject = subject_for(title, category)
        if version is not None:
            self._check_next_version(subject, _schema(schema_str, schema_type), validate_version(version))
        registered = self.register_subject(subject, schema_str, schema_type)
        assigned = registered.version
        if assigned is None:  # some registries answer with the id only
            assigned = self._lookup(subject, _schema(schema_str, schema_type)).version
        if version is not None and assigned != version:
            raise SchemaVersionError(
                f"{subject!r}: the schema was registered as version {assigned}, not {version}"
            )
        if registered.schema_id is None or assigned is None:
            raise RegistryUnavailableError(f"registry gave no id or version for {subject!r}")
        return self._resolved(registered.schema_id, schema_str, schema_type, subject, assigned, [])

    def _lookup(self, subject: str, schema: Schema) -> RegisteredSchema:
        return _call(
            f"looking up a schema in {subject!r}",
            lambda: self.client.lookup_schema(subject, schema),
            self.url,
        )

    def _check_next_version(self, subject: str, schema: Schema, version: int) -> None:
        try:
            existing = self._lookup(subject, schema)
        except SchemaRegistryError as exc:
            if not is_not_found(exc):
                raise SchemaRejectedError(f"registry refused the schema for {subject!r}: {exc}") from None
        else:
            if existing.version != version:
                raise SchemaVersionError(
                    f"{subject!r}: this schema is already version {existing.version}, not {version}"
                )
            return
        try:
            versions = _call(
                f"listing versions of {subject!r}", lambda: self.client.get_versions(subject), self.url
            )
        except SchemaRegistryError as exc:
            if not is_not_found(exc):
                raise
            versions = []
        expected = max(versions, default=0) + 1
        if version != expected:
            raise SchemaVersionError(
                f"{subject!r} has versions {sorted(versions) or 'none'}; registering now would make version "
                f"{expected}, not {version}"
            )

    # --- resolution --------------------------------------------------------------------------------
    def resolve(self, title: str, category: str, version: int) -> ResolvedSchema:
        """The schema registered as `version` of (title, category); SchemaNotRegisteredError if none."""
        key = (title, category, version)
        cached = self._by_key.get(key)
        if cached is not None:
            return cached
        subject = subject_for(title, category)
        validate_version(version)
        try:
            registered = _call(
                f"looking up {subject!r} version {version}",
                lambda: self.client.get_version(subject, version),
                self.url,
            )
        except SchemaRegistryError as exc:
            if is_not_found(exc):
                raise SchemaNotRegisteredError(
                    f"no schema registered for title={title!r} category={category!r} version={version} "
                    f"(subject {subject!r}); register it first with `refinery-client register` or "
                    "SchemaCatalog.register()"
                ) from None
            raise
        schema = registered.schema
        if registered.schema_id is None or schema.schema_str is None:
            raise RegistryUnavailableError(f"registry answer for {subject!r} v{version} has no id or schema")
        resolved = self._resolved(
            registered.schema_id,
            schema.schema_str,
            schema.schema_type or "AVRO",
            subject,
            version,
            schema.references or [],
        )
        with self._lock:
            self._by_key[key] = resolved
        return resolved

    def by_id(self, schema_id: int) -> ResolvedSchema:
        """The schema with this id (for decoding); SchemaNotRegisteredError if the registry has none."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = _call(
                f"fetching schema id {schema_id}", lambda: self.client.get_schema(schema_id), self.url
            )
        except SchemaRegistryError as exc:
            if is_not_found(exc):
                raise SchemaNotRegisteredError(f"the registry has no schema with id {schema_id}") from None
            raise
        if schema.schema_str is None:
            raise RegistryUnavailableError(f"registry answer for schema id {schema_id} has no schema text")
        return self._resolved(
            schema_id, schema.schema_str, schema.schema_type or "AVRO", None, None, schema.references or []
        )

    def _resolved(
        self,
        schema_id: int,
        schema_str: str,
        schema_type: str,
        subject: str | None,
        version: int | None,
        references: list[Any],
    ) -> ResolvedSchema:
        cached = self._by_id.get(schema_id)
        if cached is not None and subject is None:
            return cached
        resolved = parse_schema(
            schema_id, schema_str, schema_type, subject, version, self._dependencies(references)
        )
        with self._lock:
            self._by_id.setdefault(schema_id, resolved)
        return resolved

    def _dependencies(self, references: list[Any]) -> list[tuple[str, str]]:
        """(name, text) of referenced schemas, recursively (used for Protobuf imports)."""
        out: list[tuple[str, str]] = []
        for ref in references:
            fetch: Callable[[], RegisteredSchema] = functools.partial(
                self.client.get_version, ref.subject, ref.version
            )
            registered = _call(f"fetching reference {ref.subject!r}", fetch, self.url)
            out.extend(self._dependencies(registered.schema.references or []))
            out.append((ref.name, registered.schema.schema_str or ""))
        return out


def _schema(schema_str: str, schema_type: str) -> Schema:
    schema_type = schema_type.upper()
    if schema_type not in SCHEMA_TYPES:
        raise SchemaRejectedError(f"schema type {schema_type!r} is not one of {', '.join(SCHEMA_TYPES)}")
    return Schema(schema_str, schema_type)


def parse_schema(
    schema_id: int,
    schema_str: str,
    schema_type: str,
    subject: str | None = None,
    version: int | None = None,
    dependencies: list[tuple[str, str]] | None = None,
) -> ResolvedSchema:
    """Parse schema text once into the object that validates and encodes payloads of its type."""
    schema_type = _schema(schema_str, schema_type).schema_type or "AVRO"
    base = ResolvedSchema(schema_id, schema_type, schema_str, subject, version)
    try:
        if schema_type == "AVRO":
            parsed = fastavro.parse_schema(json.loads(schema_str))
            fields = None
            if isinstance(parsed, dict) and parsed.get("type") == "record":
                fields = frozenset(f["name"] for f in parsed["fields"])
            return dataclasses.replace(
                base,
                avro=parsed,
                avro_fields=fields,
                avro_fast_check=compile_avro_fast_check(parsed),
                avro_encoder=compile_avro_encoder(parsed),
            )
        if schema_type == "JSON":
            document = json.loads(schema_str)
            validator_cls = jsonschema.validators.validator_for(document)
            validator_cls.check_schema(document)
            return dataclasses.replace(
                base,
                json_validator=validator_cls(document),
                json_fast_check=compile_fast_check(document, validator_cls),
            )
        return dataclasses.replace(base, proto=compile_proto(schema_str, dependencies or ()))
    except (
        ValueError,
        TypeError,
        KeyError,
        jsonschema.SchemaError,
        fastavro.schema.SchemaParseException,
    ) as exc:
        raise SchemaRejectedError(f"schema id {schema_id} ({schema_type}) cannot be parsed: {exc}") from None

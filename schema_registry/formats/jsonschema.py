"""JSON Schema documents: checked against their metaschema by the `jsonschema` library.

The dialect is the one named by `$schema` (Draft 4, 6, 7, 2019-09, 2020-12), Draft 7 when absent; an
unknown `$schema` is rejected. References are other JSON Schema documents addressed by their name
(the `$ref` URL); every `$ref` must resolve, against the schema itself, its references, or the
published metaschemas. The canonical form is the document dumped with sorted keys and no whitespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import validators
from jsonschema_specifications import REGISTRY as METASCHEMAS

from schema_registry.formats.types import InvalidSchemaError, ParsedSchema, SchemaType

DEFAULT_DIALECT = jsonschema.Draft7Validator
# Keywords whose values are instance data, not subschemas: never walked for `$ref`.
DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


class JsonSchema(ParsedSchema):
    """A valid JSON Schema; `resolver` looks up `$ref`s (local, references, metaschemas)."""

    schema_type = SchemaType.JSON

    def __init__(
        self,
        raw: str,
        references: Mapping[str, str] | None,
        document: Any,
        registry: referencing.Registry[Any],
        dialect: type[Any],
    ) -> None:
        super().__init__(raw, references)
        self.document = document
        self.dialect = dialect
        self.registry = registry
        self.resolver = registry.resolver_with_root(self._resource(document))
        self._canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def _resource(self, document: Any) -> referencing.Resource[Any]:
        return referencing.Resource.from_contents(
            document, default_specification=_specification(self.dialect)
        )

    @property
    def canonical(self) -> str:
        return self._canonical

    def normalized(self) -> str:
        return self._canonical

    def canonical_string(self) -> str:
        """Compact JSON in the submitted key order, as Confluent stores it (Jackson's `toString()`)."""
        return json.dumps(self.document, separators=(",", ":"), ensure_ascii=False)


def parse_json_schema(schema_str: str, references: Mapping[str, str] | None = None) -> JsonSchema:
    document = _load(schema_str, "schema")
    dialect = _check(document, "schema")
    resources: dict[str, tuple[referencing.Resource[Any], referencing.Specification[Any]]] = {}
    for name, text in (references or {}).items():
        ref_document = _load(text, f"reference '{name}'")
        specification = _specification(_check(ref_document, f"reference '{name}'"))
        resources[name] = (specification.create_resource(ref_document), specification)
    registry: referencing.Registry[Any] = METASCHEMAS.with_resources(
        (name, resource) for name, (resource, _) in resources.items()
    )
    parsed = JsonSchema(schema_str, references, document, registry, dialect)
    _check_refs(parsed.document, parsed.resolver, _specification(dialect), "schema")
    for name, (resource, specification) in resources.items():
        resolver = registry.resolver(base_uri=name)
        _check_refs(resource.contents, resolver, specification, f"reference '{name}'")
    return parsed


def _load(text: str, where: str) -> Any:
    if not isinstance(text, str):
        raise InvalidSchemaError(f"{where}: schema must be a string, got {type(text).__name__}")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidSchemaError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(document, dict | bool):
        raise InvalidSchemaError(f"{where}: a JSON Schema must be an object or a boolean")
    return document


def _check(document: Any, where: str) -> type[Any]:
    """The validator class for the document's dialect, after checking the document against it."""
    dialect: type[Any] = DEFAULT_DIALECT
    if isinstance(document, dict) and "$schema" in document:
        uri = document["$schema"]
        if not isinstance(uri, str):
            raise InvalidSchemaError(f"{where}: '$schema' must be a string")
        dialect = validators.validator_for(document, default=None)  # type: ignore[arg-type]
        if dialect is None:
            raise InvalidSchemaError(f"{where}: unknown '$schema' {uri!r}")
    try:
        dialect.check_schema(document)
    except jsonschema.SchemaError as exc:
        location = "/" + "/".join(str(p) for p in exc.path)
        raise InvalidSchemaError(f"{where}: {exc.message} at {location}") from None
    except RecursionError:
        raise InvalidSchemaError(f"{where}: schema is nested too deeply") from None
    return dialect


def _specification(dialect: type[Any]) -> referencing.Specification[Any]:
    return referencing.jsonschema.specification_with(dialect.META_SCHEMA["$schema"])


def _check_refs(
    node: Any,
    resolver: Any,  # referencing.Resolver (not exported at the package level)
    specification: referencing.Specification[Any],
    where: str,
    path: str = "",
) -> None:
    """Every `$ref` must point at something: a dangling one would only fail later, at validation time."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_refs(item, resolver, specification, where, f"{path}/{i}")
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str) and path:
        resolver = resolver.in_subresource(specification.create_resource(node))
    ref = node.get("$ref")
    if isinstance(ref, str):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            raise InvalidSchemaError(f"{where}: unresolvable $ref {ref!r} at {path or '/'}: {exc}") from None
    for key, value in node.items():
        if key not in DATA_KEYWORDS:
            _check_refs(value, resolver, specification, where, f"{path}/{key}")

"""The vocabulary shared by every schema format: types, compatibility levels, the parsed-schema contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar

from common.errors import InvalidInputError


class SchemaType(StrEnum):
    AVRO = "AVRO"
    PROTOBUF = "PROTOBUF"
    JSON = "JSON"


class CompatibilityLevel(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.endswith("_TRANSITIVE")

    @property
    def checks_backward(self) -> bool:
        """New schema must read data written with the old one."""
        return self.startswith(("BACKWARD", "FULL"))

    @property
    def checks_forward(self) -> bool:
        """Old schema must read data written with the new one."""
        return self.startswith(("FORWARD", "FULL"))


class InvalidSchemaError(InvalidInputError):
    """A schema text that cannot be parsed or is not a valid schema of its type (Confluent 42201)."""


class InvalidCompatibilityLevelError(InvalidInputError):
    """A compatibility level name that does not exist (Confluent 42203)."""


class ParsedSchema(ABC):
    """A schema that parsed and validated, with the forms the registry stores and compares.

    Two schemas are the same schema when their type and `canonical` form are equal; `==` and `hash`
    follow that rule.
    """

    schema_type: ClassVar[SchemaType]

    def __init__(self, raw: str, references: Mapping[str, str] | None = None) -> None:
        self.raw = raw
        self.references: Mapping[str, str] = MappingProxyType(dict(references or {}))

    @property
    @abstractmethod
    def canonical(self) -> str:
        """The form that decides whether two submissions are the same schema."""

    def canonical_string(self) -> str:
        """The text Confluent stores for this schema (its `ParsedSchema.canonicalString()`)."""
        return self.raw

    @abstractmethod
    def normalized(self) -> str:
        """A valid schema text of the same type, equivalent to `raw`, stored when `normalize=true`."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedSchema):
            return NotImplemented
        return self.schema_type == other.schema_type and self.canonical == other.canonical

    def __hash__(self) -> int:
        return hash((self.schema_type, self.canonical))

    def __repr__(self) -> str:
        text = self.canonical if len(self.canonical) <= 80 else self.canonical[:77] + "..."
        return f"<{type(self).__name__} {text}>"


class ProblemLog:
    """Collects compatibility problems in the one message format every format's checker uses:
    `KIND at /path: text`, where `{reader}` / `{writer}` in the text name the schemas by their role."""

    roles: tuple[str, str]
    problems: list[str]

    def report(self, kind: str, path: str, description: str) -> None:
        reader_role, writer_role = self.roles
        text = description.format(reader=f"the {reader_role} schema", writer=f"the {writer_role} schema")
        self.problems.append(f"{kind} at {path or '/'}: {text}")

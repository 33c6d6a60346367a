"""FastAPI dependencies (Annotated aliases) shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from schema_registry.api.asgi import decode_subject
from schema_registry.contexts import normalize
from schema_registry.contracts import parse_metadata, parse_rule_set
from schema_registry.metrics import RegistryMetrics
from schema_registry.references import parse_references, parse_schema_type
from schema_registry.service import RegistryService, SchemaRequest

# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread pool,
# a thread hop per dependency per request for what is an attribute read.


async def get_service(request: Request) -> RegistryService:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> RegistryMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def subject_param(
    subject: Annotated[
        str, Path(description="subject name, `:.ctx:name` in a named context; '/' may be sent as %2F")
    ],
) -> str:
    return normalize(decode_subject(subject))


class SchemaBody(BaseModel):
    """A schema in a request body. Other unknown fields are accepted and ignored, as Confluent does.
    A missing or empty `schema` means the subject's latest schema (a new version with new metadata or
    rules) when registering, and is 42201 "Empty schema" otherwise."""

    model_config = ConfigDict(extra="ignore")

    schema_: str = Field(default="", alias="schema", description="the schema text")
    schemaType: str | None = None
    references: list[dict[str, Any]] | None = None
    id: int | None = Field(default=None, description="IMPORT mode only: keep this schema id")
    version: int | None = Field(default=None, description="IMPORT mode only: keep this version")
    metadata: Any = Field(default=None, description="data contract metadata: tags, properties, sensitive")
    ruleSet: Any = Field(default=None, description="data contract rules: migrationRules, domainRules")
    ruleset: Any = Field(default=None, description="alias of ruleSet")

    def to_request(self) -> SchemaRequest:
        return SchemaRequest(
            schema=self.schema_,
            schema_type=parse_schema_type(self.schemaType),
            references=parse_references(self.references),
            schema_id=self.id,
            version=self.version,
            metadata=parse_metadata(self.metadata),
            rule_set=parse_rule_set(self.ruleSet if self.ruleSet is not None else self.ruleset),
        )


ServiceDep = Annotated[RegistryService, Depends(get_service)]
MetricsDep = Annotated[RegistryMetrics, Depends(get_metrics)]
SubjectDep = Annotated[str, Depends(subject_param)]
DeletedQuery = Annotated[bool, Query(description="include soft-deleted entries")]
NormalizeQuery = Annotated[bool, Query(description="normalize the schema before storing or comparing")]
PermanentQuery = Annotated[bool, Query(description="hard delete (only after a soft delete)")]
ReferenceFormatQuery = Annotated[
    str,
    Query(
        alias="referenceFormat",
        description="`qualified`: references of a named context's schema name their context",
    ),
]

"""/schemas: every schema, schemas by global id, and the supported schema types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.exceptions import HTTPException
from starlette.responses import Response

from schema_registry.api.deps import DeletedQuery, ReferenceFormatQuery, ServiceDep
from schema_registry.api.responses import (
    MEDIA_TYPE,
    json_bytes_response,
    render_json,
    schema_fields,
    version_json,
    with_reference_format,
)
from schema_registry.references import SCHEMA_TYPES
from schema_registry.service import RegistryService

router = APIRouter(prefix="/schemas", tags=["schemas"])
_JAVA_INT = re.compile(r"[+-]?[0-9]+")


_ID_SCHEMA = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}


async def schema_id_param(
    schema_id: Annotated[str, Path(description="global schema id", json_schema_extra=_ID_SCHEMA)],
) -> int:
    """The id as Confluent's `@PathParam Integer` reads it: anything that is not a 32-bit integer is
    no such resource (404, not a 422 validation error)."""
    if _JAVA_INT.fullmatch(schema_id) and -(2**31) <= int(schema_id) < 2**31:
        return int(schema_id)
    raise HTTPException(404)


SchemaId = Annotated[int, Depends(schema_id_param)]
SubjectFilter = Annotated[
    str | None,
    Query(description="prefer this subject's use of the id; `:.ctx:` looks the id up in that context"),
]
PrefixQuery = Annotated[
    str,
    Query(
        alias="subjectPrefix",
        description="only subjects starting with this (default: the default context; `:*:` every one)",
    ),
]
LatestOnlyQuery = Annotated[bool, Query(alias="latestOnly", description="only each subject's latest version")]
OffsetQuery = Annotated[int, Query(description="skip this many results")]
LimitQuery = Annotated[int, Query(description="at most this many results (negative: all)")]


@router.get("")
async def list_schemas(
    service: ServiceDep,
    subject_prefix: PrefixQuery = "",
    deleted: DeletedQuery = False,
    latest_only: LatestOnlyQuery = False,
    offset: OffsetQuery = 0,
    limit: LimitQuery = -1,
) -> list[dict[str, Any]]:
    """Every schema version, by subject then version (Confluent's `GET /schemas`)."""
    found = service.schemas(prefix=subject_prefix, deleted=deleted, latest_only=latest_only)
    found = found[max(offset, 0) :]
    return [version_json(item) for item in (found[:limit] if limit >= 0 else found)]


@router.get("/types")
async def schema_types() -> list[str]:
    return list(SCHEMA_TYPES)


@router.get("/ids/{schema_id}", response_model=dict[str, Any])
async def get_schema(
    service: ServiceDep,
    schema_id: SchemaId,
    subject: SubjectFilter = None,
    reference_format: ReferenceFormatQuery = "",
) -> Response:
    """The hottest read (every consumer's deserializer): answered from the rendered-answer cache."""
    body = service.answers.answer(
        ("id", schema_id, subject, reference_format),
        lambda: render_json(_by_id(service, schema_id, subject, reference_format)),
    )
    return json_bytes_response(body)


def _by_id(
    service: RegistryService, schema_id: int, subject: str | None, reference_format: str
) -> dict[str, Any]:
    """Confluent names the subject and version it found when asked with `?subject=`."""
    item = with_reference_format(service.schema_by_id(schema_id, subject=subject), reference_format)
    if subject is None:
        return schema_fields(item)
    return {"subject": item.subject, "version": item.version, **schema_fields(item)}


@router.get("/ids/{schema_id}/schema", response_class=Response)
async def get_schema_text(
    service: ServiceDep, schema_id: SchemaId, subject: SubjectFilter = None
) -> Response:
    return Response(service.schema_by_id(schema_id, subject=subject).schema, media_type=MEDIA_TYPE)


@router.get("/ids/{schema_id}/subjects")
async def get_schema_subjects(
    service: ServiceDep, schema_id: SchemaId, subject: SubjectFilter = None, deleted: DeletedQuery = False
) -> list[str]:
    users = service.subject_versions_for_id(schema_id, subject=subject, deleted=deleted)
    return sorted({item.subject for item in users})


@router.get("/ids/{schema_id}/versions")
async def get_schema_versions(
    service: ServiceDep, schema_id: SchemaId, subject: SubjectFilter = None, deleted: DeletedQuery = False
) -> list[dict[str, Any]]:
    return [
        {"subject": item.subject, "version": item.version}
        for item in service.subject_versions_for_id(schema_id, subject=subject, deleted=deleted)
    ]


@router.get("/guids/{guid}")
async def get_schema_by_guid(service: ServiceDep, guid: str) -> dict[str, Any]:
    """The schema with this GUID (the UUID of its MD5, as Confluent computes it)."""
    return schema_fields(service.schema_by_guid(guid))


@router.get("/guids/{guid}/ids")
async def get_ids_by_guid(service: ServiceDep, guid: str) -> list[dict[str, Any]]:
    """The ids of the schema with this GUID in each context (each context has its own ids)."""
    return [{"context": context, "id": schema_id} for context, schema_id in service.guids.ids(guid)]

"""/schemas: schemas by global id, and the supported schema types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from schema_registry.api.deps import DeletedQuery, ServiceDep
from schema_registry.api.responses import MEDIA_TYPE, json_bytes_response, render_json, schema_fields
from schema_registry.references import SCHEMA_TYPES

router = APIRouter(prefix="/schemas", tags=["schemas"])
SchemaId = Annotated[int, Path(description="global schema id")]
SubjectFilter = Annotated[str | None, Query(description="prefer this subject's use of the id")]


@router.get("/types")
async def schema_types() -> list[str]:
    return list(SCHEMA_TYPES)


@router.get("/ids/{schema_id}", response_model=dict[str, Any])
async def get_schema(service: ServiceDep, schema_id: SchemaId, subject: SubjectFilter = None) -> Response:
    """The hottest read (every consumer's deserializer): answered from the rendered-answer cache."""
    body = service.answers.answer(
        ("id", schema_id, subject),
        lambda: render_json(schema_fields(service.schema_by_id(schema_id, subject=subject))),
    )
    return json_bytes_response(body)


@router.get("/ids/{schema_id}/schema", response_class=Response)
async def get_schema_text(
    service: ServiceDep, schema_id: SchemaId, subject: SubjectFilter = None
) -> Response:
    return Response(service.schema_by_id(schema_id, subject=subject).schema, media_type=MEDIA_TYPE)


@router.get("/ids/{schema_id}/subjects")
async def get_schema_subjects(
    service: ServiceDep, schema_id: SchemaId, deleted: DeletedQuery = False
) -> list[str]:
    return sorted({item.subject for item in service.subject_versions_for_id(schema_id, deleted=deleted)})


@router.get("/ids/{schema_id}/versions")
async def get_schema_versions(
    service: ServiceDep, schema_id: SchemaId, deleted: DeletedQuery = False
) -> list[dict[str, Any]]:
    return [
        {"subject": item.subject, "version": item.version}
        for item in service.subject_versions_for_id(schema_id, deleted=deleted)
    ]

"""/subjects: list, register, look up, read and delete subject versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from schema_registry.api.deps import (
    DeletedQuery,
    MetricsDep,
    NormalizeQuery,
    PermanentQuery,
    ReferenceFormatQuery,
    SchemaBody,
    ServiceDep,
    SubjectDep,
)
from schema_registry.api.responses import (
    MEDIA_TYPE,
    json_bytes_response,
    render_json,
    version_json,
    with_reference_format,
)
from schema_registry.contexts import WILDCARD, context_of
from schema_registry.errors import IncompatibleSchemaError, RegistryError
from schema_registry.records import SchemaValue

router = APIRouter(prefix="/subjects", tags=["subjects"])


@router.get("")
async def list_subjects(
    service: ServiceDep,
    deleted: DeletedQuery = False,
    deleted_only: Annotated[bool, Query(alias="deletedOnly", description="only deleted subjects")] = False,
    subject_prefix: Annotated[
        str,
        Query(
            alias="subjectPrefix",
            description="name prefix; `:.ctx:` lists a context, `:*:` (the default) every context",
        ),
    ] = WILDCARD,
    offset: Annotated[int, Query(description="skip this many")] = 0,
    limit: Annotated[int, Query(description="at most this many (negative: all)")] = -1,
) -> list[str]:
    names = service.subjects(deleted=deleted, deleted_only=deleted_only, prefix=subject_prefix)
    names = names[max(offset, 0) :]
    return names[:limit] if limit >= 0 else names


@router.get("/{subject}/versions")
async def list_versions(service: ServiceDep, subject: SubjectDep, deleted: DeletedQuery = False) -> list[int]:
    return service.versions(subject, deleted=deleted)


@router.post("/{subject}/versions")
def register(
    service: ServiceDep,
    metrics: MetricsDep,
    subject: SubjectDep,
    body: SchemaBody,
    normalize: NormalizeQuery = False,
) -> dict[str, Any]:
    before = service.store.max_id_in(context_of(subject))
    try:
        item = service.register(subject, body.to_request(), normalize=normalize)
    except IncompatibleSchemaError:
        metrics.registrations.labels("rejected").inc()
        metrics.compatibility_failures.inc()
        raise
    except RegistryError:
        metrics.registrations.labels("rejected").inc()
        raise
    metrics.registrations.labels("new" if item.schema_id > before else "existing").inc()
    return {"id": item.schema_id, **_registered(item)}


def _registered(item: SchemaValue) -> dict[str, Any]:
    return {k: v for k, v in version_json(item).items() if k != "id"}


@router.post("/{subject}", response_model=dict[str, Any])
async def lookup(
    service: ServiceDep,
    subject: SubjectDep,
    body: SchemaBody,
    normalize: NormalizeQuery = False,
    deleted: DeletedQuery = False,
) -> Response:
    """Answered from the rendered-answer cache; a miss parses the schema in the thread pool."""
    request = body.to_request()
    key = ("lookup", subject, request, normalize, deleted)
    answer = service.answers.get(key)
    if answer is None:
        answer = await run_in_threadpool(
            service.answers.answer,
            key,
            lambda: render_json(
                version_json(service.lookup(subject, request, normalize=normalize, deleted=deleted))
            ),
        )
    return json_bytes_response(answer)


@router.get("/{subject}/versions/{version}")
async def get_version(
    service: ServiceDep,
    subject: SubjectDep,
    version: str,
    deleted: DeletedQuery = False,
    reference_format: ReferenceFormatQuery = "",
) -> dict:
    item = service.version(subject, version, deleted=deleted)
    return version_json(with_reference_format(item, reference_format))


@router.get("/{subject}/versions/{version}/schema", response_class=Response)
async def get_version_schema(
    service: ServiceDep, subject: SubjectDep, version: str, deleted: DeletedQuery = False
) -> Response:
    return Response(service.version(subject, version, deleted=deleted).schema, media_type=MEDIA_TYPE)


@router.get("/{subject}/versions/{version}/referencedby")
def referenced_by(service: ServiceDep, subject: SubjectDep, version: str) -> list[int]:
    return service.referenced_by(subject, version)


@router.delete("/{subject}")
def delete_subject(service: ServiceDep, subject: SubjectDep, permanent: PermanentQuery = False) -> list[int]:
    return service.delete_subject(subject, permanent=permanent)


@router.delete("/{subject}/versions/{version}")
def delete_version(
    service: ServiceDep, subject: SubjectDep, version: str, permanent: PermanentQuery = False
) -> int:
    return service.delete_version(subject, version, permanent=permanent)

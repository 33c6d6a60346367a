"""Response shapes shared by the routers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi.responses import JSONResponse
from starlette.responses import Response

from schema_registry.contexts import DEFAULT_CONTEXT, context_of
from schema_registry.errors import ErrorCode
from schema_registry.records import SchemaValue
from schema_registry.references import in_context_of

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryJSONResponse(JSONResponse):
    """JSON with Confluent's content type, whatever the client asked for."""

    media_type = MEDIA_TYPE


def render_json(content: Any) -> bytes:
    """The exact body RegistryJSONResponse sends for `content` (for answers cached as bytes)."""
    return RegistryJSONResponse.render(RegistryJSONResponse, content)  # type: ignore[arg-type]


def json_bytes_response(body: bytes) -> Response:
    """A pre-rendered JSON answer: no response model validation, no re-serialization."""
    return Response(body, media_type=MEDIA_TYPE)


def schema_fields(item: SchemaValue) -> dict[str, Any]:
    """`schema`, plus `schemaType`, `references`, `metadata` and `ruleSet` when they differ from the
    defaults (Confluent leaves empty fields out)."""
    doc: dict[str, Any] = {}
    if item.schema_type != "AVRO":
        doc["schemaType"] = item.schema_type
    if item.references:
        doc["references"] = [r.to_json() for r in item.references]
    if item.metadata is not None:
        doc["metadata"] = json.loads(item.metadata)
    if item.rule_set is not None:
        doc["ruleSet"] = json.loads(item.rule_set)
    doc["schema"] = item.schema
    return doc


def version_json(item: SchemaValue) -> dict[str, Any]:
    return {"subject": item.subject, "version": item.version, "id": item.schema_id, **schema_fields(item)}


def with_reference_format(item: SchemaValue, reference_format: str) -> SchemaValue:
    """`referenceFormat=qualified`: a named context's schema shows each reference with the context it is
    read in (`inner` of `:.ctx:outer` as `:.ctx:inner`), as Confluent does; otherwise as stored."""
    if reference_format != "qualified" or not item.references or context_of(item.subject) == DEFAULT_CONTEXT:
        return item
    return replace(item, references=in_context_of(item.subject, item.references))


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}


def refuse(code: ErrorCode, message: str, headers: dict[str, str] | None = None) -> RegistryJSONResponse:
    """An error response built outside the exception handlers (middleware)."""
    return RegistryJSONResponse(error_body(int(code), message), status_code=code.http_status, headers=headers)


def is_write(method: str, path: str) -> bool:
    """Requests that change state. POST /compatibility/... and POST /subjects/{s} (lookup) only read."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if path.startswith("/compatibility/"):
        return False
    parts = path.strip("/").split("/")
    return not (method == "POST" and len(parts) == 2 and parts[0] == "subjects")

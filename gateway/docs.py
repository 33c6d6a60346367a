"""The request and response shapes of `POST /v1/events`, for the OpenAPI document only: the endpoint
reads the raw body itself (JSON array, NDJSON or protobuf, possibly compressed; `gateway.events`), so
these models describe it without validating every request twice."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(examples=["match_started"])
    version: int = Field(ge=1, examples=[1])
    payload: dict[str, Any] | None = Field(
        default=None, description="The payload as a JSON object, validated against the registered schema"
    )
    payload_base64: str | None = Field(
        default=None, description="Bytes already in the registered format (sent as `raw`, like SDK bytes)"
    )
    id: str | None = Field(
        default=None, description="Client event id (a UUID); becomes the message id. A UUIDv7 when absent."
    )
    time: str | int | None = Field(
        default=None, description="Client time (RFC 3339 or Unix ms), kept as attribute `client_time`"
    )
    source: str | None = Field(default=None, description="One of the key's sources (default: its only one)")
    key: str | None = Field(default=None, description="Record key (default: payload match_id, player_id)")
    attributes: dict[str, str] | None = None
    env: str | None = Field(default=None, description="Optional; must equal the API key's env (else 403)")
    title: str | None = Field(default=None, description="Optional; must equal the API key's title (else 403)")


class EventResult(BaseModel):
    index: int
    id: str | None
    status: Literal["accepted", "rejected", "failed"]
    field: str | None = Field(default=None, description="rejected: the offending field")
    error: str | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    failed: int
    events: list[EventResult]
    error_code: int | None = None
    message: str | None = None


class ErrorBody(BaseModel):
    error_code: int
    message: str
    field: str | None = None
    index: int | None = None


REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": EventIn.model_json_schema()},
            "example": [
                {
                    "category": "session_heartbeat",
                    "version": 1,
                    "id": "0190b7a4-5c1e-7d2f-9a3b-4c5d6e7f8091",
                    "payload": {
                        "session_id": "s-1",
                        "player_id": "p-1",
                        "sent_at_ms": 1764496800000,
                        "latency_ms": 31.5,
                    },
                    "attributes": {"platform": "pc"},
                }
            ],
        },
        "application/x-ndjson": {"schema": {"type": "string", "description": "one EventIn per line"}},
        "application/x-protobuf": {
            "schema": {"type": "string", "format": "binary", "description": "refinery.gateway.v1.EventBatch"}
        },
    },
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchResult, "description": "Every event accepted (Kafka acknowledged it)"},
    207: {"model": BatchResult, "description": "Some events accepted, some rejected (see `events`)"},
    400: {"model": ErrorBody, "description": "Malformed body (JSON, NDJSON, protobuf or compression)"},
    401: {"model": ErrorBody, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "An event outside the key's scope (`field` names it)"},
    408: {"model": ErrorBody, "description": "The body did not arrive in time"},
    413: {"model": ErrorBody, "description": "Body, decompressed body or batch too large"},
    415: {"model": ErrorBody, "description": "Unsupported Content-Type or Content-Encoding"},
    422: {"model": BatchResult, "description": "Every event rejected (see `events`)"},
    429: {"model": ErrorBody, "description": "The key's rate limit: retry after `Retry-After` seconds"},
    503: {
        "model": BatchResult,
        "description": "Kafka unavailable or the send queue full (nothing sent: an error body), or some "
        "events not delivered (a batch body: resend the failed ones); retry after `Retry-After` seconds",
    },
}

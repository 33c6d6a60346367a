"""One place that turns exceptions into Confluent error bodies; registered once on the app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.errors import RefineryError
from schema_registry.api.responses import RegistryJSONResponse, error_body
from schema_registry.errors import ErrorCode, RegistryError

log = logging.getLogger(__name__)


async def registry_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return RegistryJSONResponse(error_body(int(exc.code), exc.message), status_code=exc.code.http_status)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    if error.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    if error.get("type") == "missing" and where == "body":
        return "the request needs a JSON body"
    return f"{where}: {error.get('msg', 'invalid value')}"


async def validation_error(_request: Request, exc: Exception) -> Response:
    """Malformed requests: 422 with a message naming each bad field (42201 when it is the schema)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    code = ErrorCode.INVALID_REQUEST
    if any(tuple(e.get("loc", ()))[:2] in (("body", "schema"), ("body",)) for e in errors):
        code = ErrorCode.INVALID_SCHEMA
    message = "Invalid request: " + "; ".join(_describe(e) for e in errors)
    return RegistryJSONResponse(error_body(int(code), message), status_code=422)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return RegistryJSONResponse(
        error_body(exc.status_code, f"HTTP {exc.status_code} {exc.detail}"),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def refinery_error(_request: Request, exc: Exception) -> Response:
    """Our own errors without a Confluent code: bad input is the client's to fix, the rest is ours."""
    code, status = (
        (ErrorCode.INVALID_REQUEST, 422) if isinstance(exc, ValueError) else (ErrorCode.STORE_ERROR, 500)
    )
    return RegistryJSONResponse(error_body(int(code), str(exc)), status_code=status)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", extra={"path": request.url.path})
    return RegistryJSONResponse(
        error_body(int(ErrorCode.STORE_ERROR), f"Internal error: {type(exc).__name__}"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(RefineryError, refinery_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)

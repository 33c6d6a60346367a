"""/contexts: the schema contexts there are, and deleting an empty one (Confluent's `ContextsResource`).

The `/contexts/{context}/...` URL prefix for the rest of the API is `context_paths`, before routing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.exceptions import HTTPException
from starlette.responses import Response

from schema_registry.api.deps import ServiceDep
from schema_registry.contexts import DEFAULT_CONTEXT, context_prefix, split

router = APIRouter(prefix="/contexts", tags=["contexts"])


@router.get("")
async def list_contexts(
    service: ServiceDep,
    offset: Annotated[int, Query(description="skip this many")] = 0,
    limit: Annotated[int, Query(description="at most this many (negative: all)")] = -1,
    context_prefix_: Annotated[
        str | None, Query(alias="contextPrefix", description="only contexts starting with this")
    ] = None,
) -> list[str]:
    """The default context `.` first, then every named context by name."""
    names = service.contexts()
    if context_prefix_:
        names = [n for n in names if n.startswith(context_prefix_)]
    names = names[max(offset, 0) :]
    return names[:limit] if limit >= 0 else names


@router.delete("/{context}", status_code=204, response_class=Response)
def delete_context(
    service: ServiceDep,
    context: Annotated[str, Path(description="the context, as `.ctx` or `:.ctx:`")],
) -> Response:
    """Delete an empty context (42211 while it has subjects, soft-deleted ones included)."""
    name = split(context_prefix(context) or ":.:").context
    if name == DEFAULT_CONTEXT:
        raise HTTPException(404, "Not Found")
    service.delete_context(name)
    return Response(status_code=204)

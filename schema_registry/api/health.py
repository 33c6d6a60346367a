"""`GET /health`: 200 `{"status": "ok"}` while the process serves requests (liveness, for compose and
orchestrators). Open without credentials (`auth.OPEN_PATHS`), never forwarded to the leader."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


@router.get("/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}

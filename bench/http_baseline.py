"""The registry benchmark's baseline: the same server stack (FastAPI on uvicorn, one process) answering
the same three requests with constant bodies, so the ratio isolates the registry's own work.

    python -m bench.http_baseline PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()
SCHEMA = {"schema": '{"type":"record","name":"MatchStarted","fields":[{"name":"match_id","type":"string"}]}'}


@app.get("/schemas/ids/{schema_id}")
async def schema_by_id(schema_id: int) -> dict[str, Any]:
    return SCHEMA


@app.post("/subjects/{subject}")
async def lookup(subject: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"subject": subject, "id": 1, "version": 1, **SCHEMA}


@app.post("/subjects/{subject}/versions")
async def register(subject: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": 1}


@app.get("/subjects")
async def subjects() -> list[str]:
    return []


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)

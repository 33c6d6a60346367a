"""The gateway benchmark's latency baseline: the same server stack (FastAPI on uvicorn, httptools and
uvloop, the same number of processes) reading the same POST bodies and answering a constant 202, so the
ratio isolates the gateway's own work (auth, parsing, validation, Kafka round trip).

    python -m bench.gateway_baseline PORT [WORKERS]
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()
ANSWER = b'{"accepted": 100, "rejected": 0, "failed": 0}'


@app.post("/v1/events")
async def events(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, 202, media_type="application/json")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run(
        "bench.gateway_baseline:app", host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
        access_log=False, http="httptools", loop="uvloop", workers=workers if workers > 1 else None,
    )  # fmt: skip

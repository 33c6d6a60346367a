"""HTTP middleware: metrics, auth, and forwarding writes from followers to the leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI, Request
from starlette.responses import Response

from schema_registry.api.auth import Authenticator
from schema_registry.api.responses import is_write, refuse
from schema_registry.errors import ErrorCode
from schema_registry.kafka_log import KafkaLog
from schema_registry.leadership import LeaderElection
from schema_registry.metrics import RegistryMetrics

CallNext = Callable[[Request], Awaitable[Response]]
FORWARDED_HEADER = "x-refinery-registry-forwarded"
_FORWARD_HEADERS = ("content-type", "accept", "authorization")


def install_metrics(app: FastAPI, metrics: RegistryMetrics) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next: CallNext) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response


def install_auth(app: FastAPI, authenticator: Authenticator) -> None:
    @app.middleware("http")
    async def authenticate(request: Request, call_next: CallNext) -> Response:
        refusal = authenticator.check(request.method, request.url.path, request.headers.get("authorization"))
        return refusal if refusal is not None else await call_next(request)


class LeaderForwarder:
    """On a follower, send writes to the leader and answer with the leader's response."""

    def __init__(
        self, election: LeaderElection, log: KafkaLog, metrics: RegistryMetrics, *, wait_for_leader_s: float
    ) -> None:
        self._election = election
        self._log = log
        self._metrics = metrics
        self._wait_for_leader_s = wait_for_leader_s
        self._client = httpx.AsyncClient(timeout=60.0)

    async def close(self) -> None:
        await self._client.aclose()

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        if self._election.is_leader or not is_write(request.method, request.url.path):
            return await call_next(request)
        if request.headers.get(FORWARDED_HEADER):
            return refuse(
                ErrorCode.NO_LEADER, "the request was forwarded to an instance that is not the leader"
            )
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if request.url.query:
            path += "?" + request.url.query
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD_HEADERS}
        headers[FORWARDED_HEADER] = self._election.own_url
        body = await request.body()
        deadline = time.monotonic() + self._wait_for_leader_s
        while True:
            if self._election.is_leader:  # we won an election while waiting
                return await call_next(request)
            url = await asyncio.to_thread(self._election.leader_url, max_age_s=1.0)
            if url is not None and url != self._election.own_url:
                try:
                    answer = await self._client.request(
                        request.method, url + path, content=body, headers=headers
                    )
                    break
                except httpx.ConnectError:
                    pass  # a leader that just died: its group session has not expired yet
                except httpx.HTTPError as exc:
                    self._metrics.forwarded.labels("error").inc()
                    return refuse(
                        ErrorCode.FORWARDING_ERROR, f"Error while forwarding the request to the leader: {exc}"
                    )
            if time.monotonic() > deadline:
                return refuse(ErrorCode.NO_LEADER, "no schema registry leader is available; retry the write")
            await asyncio.sleep(0.5)
        self._metrics.forwarded.labels(str(answer.status_code)).inc()
        if answer.status_code < 300:
            await asyncio.to_thread(self._log.catch_up)  # read your own write on this replica too
        return Response(
            answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type")
        )

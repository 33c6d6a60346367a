"""HTTP middleware (plain ASGI, no per-request task groups): metrics, auth, and forwarding writes from
followers to the leader."""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema_registry.api.asgi import replay_body
from schema_registry.api.auth import Authenticator
from schema_registry.api.responses import is_write, refuse
from schema_registry.errors import ErrorCode
from schema_registry.kafka_log import KafkaLog
from schema_registry.leadership import LeaderElection
from schema_registry.metrics import RegistryMetrics

FORWARDED_HEADER = "x-refinery-registry-forwarded"
_FORWARD_HEADERS = ("content-type", "accept", "authorization")


class MetricsMiddleware:
    """Request count and latency by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self._metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._authenticator.enabled:
            authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            refusal = self._authenticator.check(
                scope["method"], scope["path"], authorization.decode("latin-1") if authorization else None
            )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


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

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def forwarding(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != "http"
                or self._election.is_leader
                or not is_write(scope["method"], scope["path"])
            ):
                await app(scope, receive, send)
                return
            request = Request(scope, receive)
            body = await request.body()
            response = await self._forward(request, body)
            if response is None:  # we won an election while waiting
                await app(scope, replay_body(body, receive), send)
            else:
                await response(scope, receive, send)

        return forwarding

    async def _forward(self, request: Request, body: bytes) -> Response | None:
        if request.headers.get(FORWARDED_HEADER):
            return refuse(
                ErrorCode.NO_LEADER, "the request was forwarded to an instance that is not the leader"
            )
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if request.url.query:
            path += "?" + request.url.query
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD_HEADERS}
        headers[FORWARDED_HEADER] = self._election.own_url
        deadline = time.monotonic() + self._wait_for_leader_s
        while True:
            if self._election.is_leader:
                return None
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

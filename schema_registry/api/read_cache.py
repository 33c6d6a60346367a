"""Whole-response cache for the hot reads, in front of routing: a schema by id, a subject version, and a
subject lookup (`POST /subjects/{s}`, keyed by its raw body).

These answers depend only on the request (path, query, body) and the store, so a 200 answer is replayed
byte for byte (same headers) until the store changes (`AnswerCache`). A hit skips route matching,
dependency solving, body validation and rendering. Auth and metrics run outside this middleware.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema_registry.answers import AnswerCache
from schema_registry.api.asgi import replay_body
from schema_registry.store import SchemaStore

CACHED_GETS = re.compile(r"/schemas/ids/[^/]+|/subjects/[^/]+/versions/[^/]+")
CACHED_POSTS = re.compile(r"/subjects/[^/]+")
MAX_CACHED_BODY = 256 * 1024

# route (for the metrics label), response start message, response body
CachedResponse = tuple[Any, Message, bytes]


class ReadCacheMiddleware:
    def __init__(self, app: ASGIApp, store: SchemaStore) -> None:
        self.app = app
        self._store = store
        self._cache: AnswerCache[CachedResponse] = AnswerCache(store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and CACHED_GETS.fullmatch(path):
            body = b""
        elif method == "POST" and CACHED_POSTS.fullmatch(path):
            body, complete = await _read_body(receive)
            if not complete:  # the client went away: let the app see that
                await self.app(scope, receive, send)
                return
            receive = replay_body(body, receive)
            if len(body) > MAX_CACHED_BODY:
                await self.app(scope, receive, send)
                return
        else:
            await self.app(scope, receive, send)
            return
        key = (method, path, scope["query_string"], body)
        hit = self._cache.get(key)
        if hit is not None:
            scope["route"] = hit[0]
            await send(hit[1])
            await send({"type": "http.response.body", "body": hit[2], "more_body": False})
            return
        await self._answer_and_keep(key, scope, receive, send)

    async def _answer_and_keep(self, key: tuple, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self._store.generation
        start: Message | None = None
        chunks: list[bytes] = []
        whole = True

        async def keeping_send(message: Message) -> None:
            nonlocal start, whole
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                whole = whole and len(chunks) == 1 and not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, keeping_send)
        if start is not None and start["status"] == 200 and whole and chunks:
            self._cache.put(key, (scope.get("route"), start, chunks[0]), generation)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether it arrived whole (False: the client went away first)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True

"""Plain ASGI middleware that makes requests from real clients route and parse, as Confluent's would.

- Subjects containing '/' (sent as %2F): Starlette decodes the path before matching routes, so
  `/subjects/a%2Fb/versions` would be routed as `/subjects/a/b/versions`. We re-decode the raw path with
  each encoded slash turned into a private-use character that routes as part of one segment;
  `decode_subject` turns it back into '/'.
- Content negotiation, as Confluent's resources declare it: answers are
  `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json` (qs 0.9) or
  `application/json` (qs 0.5), whichever the `Accept` header rates best; an `Accept` none of them
  satisfies (`text/html`) is 406. Bodies may be any of those three or `application/octet-stream`, or
  come without a content type; any other content type (`text/html`, form encoding) is 415.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SLASH_STAND_IN = "\uf8ff"
_STAND_IN_ENCODED = b"%EF%A3%BF"  # SLASH_STAND_IN, percent-encoded UTF-8
_ENCODED_SLASH = re.compile(rb"%2[fF]")


def decode_subject(subject: str) -> str:
    return subject.replace(SLASH_STAND_IN, "/")


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands an already read (whole) body to the app again, then defers to the
    server's (for the disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


VND_V1 = b"application/vnd.schemaregistry.v1+json"
# what the API produces, with Confluent's server-side quality (`@Produces` ..._WEIGHTED)
PRODUCED = ((VND_V1, 1.0), (b"application/vnd.schemaregistry+json", 0.9), (b"application/json", 0.5))
CONSUMED = frozenset(
    {VND_V1, b"application/vnd.schemaregistry+json", b"application/json", b"application/octet-stream"}
)
NOT_NEGOTIATED = ("/metrics", "/docs", "/openapi.json", "/redoc")


def _media(value: bytes) -> bytes:
    return value.split(b";")[0].strip().lower()


def _ranges(accept: bytes) -> list[tuple[bytes, float]]:
    """The media ranges of an Accept header with their q values."""
    out = []
    for part in accept.split(b","):
        media, *params = part.split(b";")
        q = 1.0
        for param in params:
            name, _, value = param.partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if media.strip():
            out.append((media.strip().lower(), q))
    return out


def negotiate(accept: bytes | None) -> bytes | None:
    """The content type to answer with, or None when the Accept header admits none of ours (406)."""
    if not accept or not accept.strip():
        return VND_V1
    ranges = _ranges(accept)
    best, best_score = None, 0.0
    for media, server_quality in PRODUCED:
        kind = media.split(b"/")[0] + b"/*"
        matching = [
            (3 if r == media else 2 if r == kind else 1, q) for r, q in ranges if r in (media, kind, b"*/*")
        ]
        if not matching:
            continue
        score = max(matching)[1] * server_quality  # the most specific range decides
        if score > best_score:
            best, best_score = media, score
    return best


def _refusal(status: int, phrase: str) -> Response:
    body = json.dumps({"error_code": status, "message": f"HTTP {status} {phrase}"}).encode()
    return Response(body, status_code=status, media_type=VND_V1.decode())


class ClientToleranceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw and _ENCODED_SLASH.search(raw):
            stand_in = _ENCODED_SLASH.sub(_STAND_IN_ENCODED, raw)
            scope = {**scope, "path": unquote(stand_in.decode("latin-1"), encoding="utf-8")}
        if scope["path"].startswith(NOT_NEGOTIATED):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        chosen = negotiate(headers.get(b"accept"))
        if chosen is None:
            await _refusal(406, "Not Acceptable")(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT"):
            content_type = _media(headers.get(b"content-type", b""))
            if content_type and content_type not in CONSUMED:
                await _refusal(415, "Unsupported Media Type")(scope, receive, send)
                return
            others = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*others, (b"content-type", b"application/json")]}
        if chosen != VND_V1:
            send = _answering_as(chosen, send)
        await self.app(scope, receive, send)


def _answering_as(media: bytes, send: Send) -> Send:
    """A send that labels our JSON answers with the negotiated content type instead of the default."""

    async def relabel(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, media if k == b"content-type" and _media(v) == VND_V1 else v)
                for k, v in message["headers"]
            ]
            message = {**message, "headers": headers}
        await send(message)

    return relabel

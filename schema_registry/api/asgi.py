"""Plain ASGI middleware that makes requests from real clients route and parse.

- Subjects containing '/' (sent as %2F): Starlette decodes the path before matching routes, so
  `/subjects/a%2Fb/versions` would be routed as `/subjects/a/b/versions`. We re-decode the raw path with
  each encoded slash turned into a private-use character that routes as part of one segment;
  `decode_subject` turns it back into '/'.
- Bodies: every body of this API is JSON, so a request without a JSON content type (curl's default
  form encoding, text/plain, none at all) is read as JSON instead of failing on its content type.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

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


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";")[0].strip().lower()
    return media.endswith(b"/json") or media.endswith(b"+json")


class ClientToleranceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and _ENCODED_SLASH.search(raw):
                stand_in = _ENCODED_SLASH.sub(_STAND_IN_ENCODED, raw)
                scope = {**scope, "path": unquote(stand_in.decode("latin-1"), encoding="utf-8")}
            if scope["method"] in ("POST", "PUT"):
                headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                content_type = dict(scope["headers"]).get(b"content-type", b"")
                if not _is_json(content_type):
                    scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)

"""Subjects containing '/' (sent as %2F) survive routing.

Starlette decodes the path before matching routes, so `/subjects/a%2Fb/versions` would be routed as
`/subjects/a/b/versions`. This middleware re-decodes the raw path with each encoded slash turned into a
private-use character that routes as part of one segment; `decode_subject` turns it back into '/'.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

SLASH_STAND_IN = "\uf8ff"
_ENCODED_SLASH = re.compile(rb"%2[fF]")
_STAND_IN_ENCODED = b"%EF%A3%BF"  # SLASH_STAND_IN, percent-encoded UTF-8


def decode_subject(subject: str) -> str:
    return subject.replace(SLASH_STAND_IN, "/")


class EncodedSlashMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and _ENCODED_SLASH.search(raw):
            stand_in = _ENCODED_SLASH.sub(_STAND_IN_ENCODED, raw)
            scope = {**scope, "path": unquote(stand_in.decode("latin-1"), encoding="utf-8")}
        await self.app(scope, receive, send)

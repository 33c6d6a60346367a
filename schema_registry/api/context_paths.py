"""The `/contexts/{context}/...` URL prefix, as Confluent's `ContextFilter` reads it (before routing).

A client can point at `http://registry/contexts/.ctx` as its base URL and use the API unchanged: the
prefix is taken off and the context put into the request instead. The segment after each `subjects`
(and after a root `config` or `mode`) is qualified with the context unless it names one; a root
`/config` or `/mode` becomes the context's own (`/config/:.ctx:`); `schemas/ids/...` get
`?subject=:.ctx:...` and `/subjects` and `/schemas` get `?subjectPrefix=:.ctx:...` (unless the value
names a context already); `/contexts/.ctx` alone becomes `/contexts/:.ctx:`. `ctx`, `.ctx` and
`:.ctx:` name the same context, `:.:` the default one. A context name with a colon is 400.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from schema_registry.api.responses import RegistryJSONResponse, error_body
from schema_registry.contexts import DEFAULT_CONTEXT, ContextNameError, context_prefix, has_context

PREFIX = "/contexts/"


def rewrite_path(path: str) -> tuple[str, str]:
    """The path without its `/contexts/{context}` prefix, with subjects qualified, and the context's
    subject prefix ("" for the default context). Raises ContextNameError."""
    parts = path.strip("/").split("/")
    context = DEFAULT_CONTEXT
    out: list[str] = []
    awaiting_context = awaiting_subject = config_or_mode = False
    first = True
    for part in parts:
        if awaiting_context:
            context, awaiting_context = part, False
            continue
        if first and part == "contexts":
            awaiting_context = True
            continue
        if awaiting_subject:
            if not has_context(part):
                part = context_prefix(context) + part
            awaiting_subject = False
        else:
            root_setting = first and part in ("config", "mode")
            if part == "subjects" or root_setting:
                awaiting_subject = True
                config_or_mode = config_or_mode or root_setting
        out.append(part)
        if first and part:
            first = False
    prefix = context_prefix(context)
    rest = "/".join(out)
    if config_or_mode and awaiting_subject:  # a root /config or /mode: the context's own setting
        rest = f"{rest}/{prefix}" if prefix else rest
    elif awaiting_context:  # "/contexts/" and nothing more
        rest = "contexts"
    elif not rest and prefix:
        rest = f"contexts/{prefix}"
    return "/" + rest, prefix


def rewrite_query(path: str, query: bytes, prefix: str) -> bytes:
    """Put the context into `subject` (`/schemas/ids/...`) or `subjectPrefix` (`/subjects`, `/schemas`)."""
    bare = path.strip("/")
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if bare.startswith("schemas/ids"):
        name = "subject"
    elif bare in ("schemas", "subjects"):
        name = "subjectPrefix"
    else:
        return query
    if not any(k == name for k, _ in pairs):
        pairs.append((name, ""))
    pairs = [(k, prefix + v if k == name and not has_context(v) else v) for k, v in pairs]
    return urlencode(pairs).encode("latin-1")


class ContextPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            path, prefix = rewrite_path(scope["path"])
        except ContextNameError as exc:
            body = error_body(int(exc.code), exc.message)
            await RegistryJSONResponse(body, status_code=exc.code.http_status)(scope, receive, send)
            return
        query = rewrite_query(path, scope.get("query_string", b""), prefix)
        await self.app({**scope, "path": path, "query_string": query}, receive, send)

"""Route-set web views on Faust's web server: GET/POST /routes and GET /routes/history.

Errors use the Confluent-style body `{"error_code": ..., "message": ...}` like the schema registry, and
so does auth, which is the registry's roles model (`common.auth`) configured by
`REFINERY_WORKER_AUTH_USERS` / `_AUTH_TOKENS`: with auth on, reading needs `read`, applying a set needs
`write`, and forcing one past the drop guard (`?force=true`) needs `admin`. Without credentials: 401 /
40101; with too low a role: 403 / 40301; a drastic drop without `?force=true`: 409 / 40901.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust import web

from common.auth import AuthRefused, Identity, Role, RoleAuthenticator
from refinery.control.app import app
from refinery.control.route_changes import RouteChangeRefused, apply_route_set
from refinery.control.route_store import RouteStoreError, read_route_log
from refinery.routing.rules import RuleError, load_route_set

INVALID_ROUTE_SET = 42201  # Confluent's "unprocessable entity" family, as for an invalid schema
INVALID_REQUEST = 42202
STORE_ERROR = 50001  # Confluent's "error in the backend data store"
FORCE_FLAG = "?force=true"

AUTHENTICATOR = RoleAuthenticator(app.worker_settings.auth_users, app.worker_settings.auth_tokens)


def _routes_doc() -> dict[str, Any]:
    routing = app.routing
    watcher = getattr(routing, "watcher", None)
    router = watcher.current() if watcher is not None else None
    route_set = getattr(router, "route_set", None)
    rates = app.metrics.route_rates.snapshot()
    routes = []
    for route in getattr(route_set, "routes", ()):
        doc = route.to_doc()
        doc["routed"] = rates.get(route.name, {"total": 0.0, "per_second": 0.0})
        routes.append(doc)
    doc = {"version": getattr(route_set, "version", None), "routes": routes}
    publication = getattr(watcher, "publication", lambda: None)()
    if publication is not None:
        doc["published"] = {"who": publication.who, "when": publication.when}
    return doc


def _error(view: web.View, status: int, code: int, message: str, **headers: str) -> web.Response:
    return view.json({"error_code": code, "message": message}, status=status, headers=headers or None)


def _refused(view: web.View, refused: AuthRefused) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="refinery"'} if refused.http_status == 401 else {}
    return _error(view, refused.http_status, refused.error_code, refused.message, **headers)


def _who(request: web.Request, identity: Identity | None) -> str:
    if identity is not None:
        return identity.name
    remote = getattr(request, "remote", None)
    return f"anonymous@{remote}" if remote else "anonymous"


def _force(request: web.Request) -> bool | None:
    """The `force` query flag; None when its value is neither true nor false."""
    value = request.query.get("force", "false").strip().lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(value)


@app.page("/routes")
class RoutesView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        try:
            AUTHENTICATOR.authorize(request.headers.get("Authorization"), Role.READ)
        except AuthRefused as refused:
            return _refused(self, refused)
        return self.json(_routes_doc())

    async def post(self, request: web.Request) -> web.Response:
        """Apply a new route set (YAML or JSON body). An invalid set is refused; the old one stays. A set
        with no routes, or one dropping more than half of the live routes, needs `?force=true`."""
        force = _force(request)
        if force is None:
            return _error(self, 422, INVALID_REQUEST, "force must be true or false")
        try:
            identity = AUTHENTICATOR.authorize(
                request.headers.get("Authorization"), Role.ADMIN if force else Role.WRITE
            )
        except AuthRefused as refused:
            return _refused(self, refused)
        text = (await self.read_request_content(request)).decode("utf-8", "replace")
        try:
            route_set = load_route_set(text)
        except RuleError as exc:
            return _error(self, 422, INVALID_ROUTE_SET, str(exc))
        settings = app.worker_settings
        try:
            applied = await asyncio.to_thread(
                apply_route_set,
                app.kafka_settings.client_config(),
                settings.routes_topic,
                route_set,
                who=_who(request, identity),
                force=force,
            )
        except RouteChangeRefused as refusal:
            return _error(self, 409, refusal.error_code, refusal.with_hint(FORCE_FLAG))
        except RouteStoreError as exc:
            return _error(self, 500, STORE_ERROR, f"route set not applied (the live set is unchanged): {exc}")
        diff = applied.diff
        return self.json(
            {
                **applied.publication.to_doc(),
                "routes": route_set.route_names(),
                "diff": {"added": diff.added, "removed": diff.removed, "changed": diff.changed},
            }
        )


@app.page("/routes/history")
class RouteHistoryView(web.View):
    async def get(self, request: web.Request) -> web.Response:
        """Every published set, newest first: version, who, when (UTC), route count, forced."""
        try:
            AUTHENTICATOR.authorize(request.headers.get("Authorization"), Role.READ)
        except AuthRefused as refused:
            return _refused(self, refused)
        settings = app.worker_settings
        try:
            route_log = await asyncio.to_thread(
                read_route_log, app.kafka_settings.client_config(), settings.routes_topic
            )
        except RouteStoreError as exc:
            return _error(self, 500, STORE_ERROR, str(exc))
        live = route_log.live.route_set.version if route_log.live is not None else None
        return self.json({"live": live, "history": [p.to_doc() for p in route_log.history]})

"""`refinery routes apply FILE` and `refinery routes show`: Faust CLI commands of the app."""

from __future__ import annotations

import asyncio

from faust.cli import AppCommand, argument

from refinery.control.app import app
from refinery.control.route_store import apply_routes_file, show_routes
from refinery.routing.rules import RuleError


@app.command(
    argument("action", type=str),
    argument("file", required=False),
)
async def routes(self: AppCommand, action: str, file: str | None = None) -> None:
    """Manage the live route set: `routes apply FILE` validates and publishes, `routes show` prints it."""
    settings, kafka = app.worker_settings, app.kafka_settings
    if action == "show":
        text = await asyncio.to_thread(show_routes, kafka.client_config(), settings.routes_topic)
        self.say(text)
        return
    if action != "apply" or not file:
        raise SystemExit("usage: refinery routes apply FILE | refinery routes show")
    try:
        route_set = await asyncio.to_thread(
            apply_routes_file, kafka.client_config(), settings.routes_topic, file
        )
    except (RuleError, OSError) as exc:
        raise SystemExit(f"route set not applied (the live set is unchanged): {exc}") from None
    self.say(f"applied route set {getattr(route_set, 'version', '')}")

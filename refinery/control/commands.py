"""`refinery routes validate | diff | apply FILE`, `refinery routes show | history`: Faust CLI commands.

    validate FILE   check a route file; one-line summary; exit 0 (valid) or 2 (invalid); never touches Kafka
    diff FILE       added / removed / changed routes against the live set; exit 0 (2: invalid file);
                    read-only (never creates the routes topic)
    apply FILE      validate, check the drop guard, publish with who and when; exit 0, 2 (invalid file or
                    refused by the drop guard: pass --force), 1 (credentials refused, Kafka unreachable)
    show            the live set; read-only (never creates the routes topic)
    history         every published set, newest first
Every action but validate first checks that Kafka accepts a connection and otherwise exits 1 with one
line naming the address and the cause ("Kafka at 127.0.0.1:1 is unreachable: connection refused").

The CLI writes to the routes topic directly, not through a worker, so its auth check identifies the
operator rather than enforcing access: with `REFINERY_WORKER_AUTH_USERS` set, `apply` needs --user and
--password (or REFINERY_WORKER_CLI_USER / _CLI_PASSWORD) of a user with the `write` role (`admin` with
--force), and records `<user> (cli:<os user>)` as who published. Anyone holding Kafka credentials that may
write the routes topic can bypass this; what protects the topic itself is Kafka ACLs (see the README).
"""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

import click
from faust.cli import AppCommand, argument, option

from common.auth import UNAUTHORIZED, AuthRefused, Role, RoleAuthenticator
from common.config import WorkerSettings
from common.kafka_log import kafka_unreachable, with_log
from refinery.control.app import app
from refinery.control.route_changes import (
    RouteChangeRefused,
    apply_route_set,
    diff_route_sets,
    drop_refusal,
    format_diff,
)
from refinery.control.route_records import cli_identity
from refinery.control.route_store import RouteStoreError, read_route_log, show_routes
from refinery.routing.rules import RouteSet, RuleError, load_route_file

ACTIONS = ("validate", "diff", "apply", "show", "history")
FILE_ACTIONS = ("validate", "diff", "apply")
USAGE = "usage: refinery routes validate|diff|apply FILE [--force] [--user U --password P] | show | history"


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code)


def _load(file: str) -> RouteSet:
    try:
        return load_route_file(file)
    except RuleError as exc:
        _fail(f"invalid route set {file}: {exc}", 2)


def operator_identity(settings: WorkerSettings, user: str | None, password: str | None, needed: Role) -> str:
    """`who` for a CLI publish: `cli:<os user>` with auth off; with auth on the user must prove a name with
    the `needed` role (AuthRefused otherwise) and is recorded as `<user> (cli:<os user>)`."""
    auth = RoleAuthenticator(settings.auth_users, settings.auth_tokens)
    if not auth.enabled:
        return cli_identity()
    name = user or settings.cli_user
    if password is None and settings.cli_password is not None:
        password = settings.cli_password.get_secret_value()
    identity = auth.user(name, password) if name and password is not None else None
    return cli_identity(auth.require(identity, needed).name)


def summary(route_set: RouteSet) -> str:
    dedup = sum(1 for route in route_set.routes if route.dedup)
    catch_all = route_set.catch_all or "none"
    return (
        f"valid: {len(route_set.routes)} routes ({dedup} with dedup), catch_all {catch_all}, "
        f"version {route_set.version}"
    )


@app.command(
    argument("action", type=click.Choice(ACTIONS)),
    argument("file", required=False),
    option("--force", is_flag=True, default=False, help="apply: publish even if the drop guard refuses"),
    option("--user", default=None, help="apply with auth on: user name (or REFINERY_WORKER_CLI_USER)"),
    option(
        "--password",
        default=None,
        help="apply with auth on (prefer REFINERY_WORKER_CLI_PASSWORD: flags show in ps)",
    ),
)
async def routes(
    self: AppCommand,
    action: str,
    file: str | None = None,
    force: bool = False,
    user: str | None = None,
    password: str | None = None,
) -> None:
    """Manage the live route set: validate, diff or apply a route file; show the live set or its history.

    \b
    validate FILE  check a route file; never touches Kafka; exit 0, or 2 naming the problem
    diff FILE      routes added, removed, changed against the live set (read-only)
    apply FILE     validate, check the drop guard, publish (who and when are recorded)
    show           the live set (read-only: never creates the routes topic)
    history        every published set, newest first
    """
    settings, kafka = app.worker_settings, app.kafka_settings
    if (action in FILE_ACTIONS) != bool(file):
        _fail(USAGE, 2)
    if action != "validate":
        # One line naming the address and the cause, instead of a wait and librdkafka's retry log.
        problem = kafka_unreachable(kafka.bootstrap_servers)
        if problem is not None:
            _fail(problem, 1)
    client_config = with_log(kafka.client_config())
    try:
        if action == "validate":
            print(summary(_load(str(file))))
        elif action == "diff":
            new = _load(str(file))
            live = (await asyncio.to_thread(read_route_log, client_config, settings.routes_topic)).live
            live_set = live.route_set if live is not None else None
            live_version = live_set.version if live_set is not None else None
            print(format_diff(diff_route_sets(live_set, new), live_version, new))
            refusal = drop_refusal(live_set, new)
            if refusal is not None:
                print(f"apply would be refused: {refusal.with_hint('--force')}")
        elif action == "apply":
            await _apply(settings, client_config, str(file), force, user, password)
        elif action == "show":
            print(await asyncio.to_thread(show_routes, client_config, settings.routes_topic), end="")
        else:
            route_log = await asyncio.to_thread(read_route_log, client_config, settings.routes_topic)
            live_version = route_log.live.route_set.version if route_log.live is not None else None
            for pub in route_log.history:
                in_force = pub.version == live_version
                if in_force:
                    live_version = None  # only the newest entry of that version is the set in force
                marks = (" forced" if pub.forced else "") + (" (live)" if in_force else "")
                who = pub.who or "unknown"
                print(f"{pub.when or '-'}  {pub.version}  {pub.route_count:>4} routes  {who}{marks}")
    except RouteStoreError as exc:
        _fail(str(exc), 1)


async def _apply(
    settings: WorkerSettings, client_config: dict[str, object], file: str, force: bool, user: str | None,
    password: str | None,
) -> None:  # fmt: skip
    needed = Role.ADMIN if force else Role.WRITE
    try:
        who = operator_identity(settings, user, password, needed)
    except AuthRefused as refused:
        if refused.error_code == UNAUTHORIZED:
            _fail(
                f"route set not applied: auth is on (error {refused.error_code}); pass --user and --password "
                f"(or REFINERY_WORKER_CLI_USER / REFINERY_WORKER_CLI_PASSWORD) of a user with the "
                f"{needed.label} role",
                1,
            )
        _fail(f"route set not applied (error {refused.error_code}): {refused.message}", 1)
    route_set = _load(file)
    try:
        applied = await asyncio.to_thread(
            apply_route_set, client_config, settings.routes_topic, route_set, who=who, force=force
        )
    except RouteChangeRefused as refusal:
        _fail(f"route set not applied (the live set is unchanged): {refusal.with_hint('--force')}", 2)
    pub, diff = applied.publication, applied.diff
    print(
        f"applied route set {pub.version} ({pub.route_count} routes: {len(diff.added)} added, "
        f"{len(diff.removed)} removed, {len(diff.changed)} changed) as {pub.who} at {pub.when}"
        + (" (forced)" if pub.forced else "")
    )

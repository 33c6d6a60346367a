"""Changing the live route set as a reviewable act: diff against the live set, refuse drastic drops,
publish with who and when. Used by `POST /routes` and `refinery routes apply | diff`.

The drop guard refuses, unless forced, a set with no routes (every record would go unmatched, or all
to the catch-all) and a set that drops more than half of the live set's route names (renaming a route
counts as dropping it). Forcing is a separate, explicit act: `?force=true` on `POST /routes`, `--force`
on the CLI, and with auth on it needs the `admin` role where a guarded change needs `write`.

Checking and publishing are two steps: two operators changing routes at the same moment can both pass
the guard against the same live set (the later publish wins; both are in the history).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.errors import RefineryError
from refinery.control.route_records import Publication
from refinery.control.route_store import publish_route_set, read_route_log
from refinery.routing.rules import RouteSet

DROP_REFUSED = 40901  # Confluent-style: 409 conflict with the live state


@dataclass(frozen=True)
class RouteDiff:
    """What replacing `live` by `new` changes, by route name (in each set's own order)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # set-level changes: catch_all, envs

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.other)


def diff_route_sets(live: RouteSet | None, new: RouteSet) -> RouteDiff:
    live_routes = {route.name: route for route in (live.routes if live is not None else ())}
    new_names = set(new.route_names())
    diff = RouteDiff(removed=[name for name in live_routes if name not in new_names])
    for route in new.routes:
        old = live_routes.get(route.name)
        if old is None:
            diff.added.append(route.name)
        elif old.to_doc() != route.to_doc():
            diff.changed.append(route.name)
        else:
            diff.unchanged.append(route.name)
    if live is not None and live.catch_all != new.catch_all:
        diff.other.append(f"catch_all: {live.catch_all!r} -> {new.catch_all!r}")
    if live is not None and live.envs != new.envs:
        diff.other.append(f"envs: {_envs(live.envs)} -> {_envs(new.envs)}")
    kept_before = [name for name in live_routes if name in new_names]
    if kept_before != [name for name in new.route_names() if name in live_routes]:
        diff.other.append("order of the kept routes changed (a record goes to every route it matches)")
    return diff


def _envs(envs: tuple[str, ...] | None) -> str:
    return "undeclared" if envs is None else "[" + ", ".join(envs) + "]"


def format_diff(diff: RouteDiff, live_version: str | None, new: RouteSet) -> str:
    lines = [f"live set: {live_version or 'none published'} -> new set: {new.version}"]
    lines += [f"+ {name}" for name in diff.added]
    lines += [f"- {name}" for name in diff.removed]
    lines += [f"~ {name}" for name in diff.changed]
    lines += [f"! {text}" for text in diff.other]
    lines.append(
        f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
        f"{len(diff.unchanged)} unchanged" + ("" if not diff.empty else " (no change)")
    )
    return "\n".join(lines)


class RouteChangeRefused(RefineryError):
    """The drop guard refused a route set; `message` says how many live routes it would drop and the
    caller adds which flag forces it."""

    error_code = DROP_REFUSED

    def __init__(self, message: str, dropped: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.dropped = dropped

    def with_hint(self, flag: str) -> str:
        return f"{self.message}; pass {flag} to apply it anyway"


def drop_refusal(live: RouteSet | None, new: RouteSet) -> RouteChangeRefused | None:
    """None when `new` may replace `live` without forcing, else why not."""
    live_names = live.route_names() if live is not None else []
    dropped = [name for name in live_names if name not in set(new.route_names())]
    if not new.routes:
        where = "go to the catch-all" if new.catch_all else "go unmatched"
        drops = f"; it would drop all {len(live_names)} live routes" if live_names else ""
        return RouteChangeRefused(f"the route set has no routes: every record would {where}{drops}", dropped)
    if live_names and 2 * len(dropped) > len(live_names):
        names = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        return RouteChangeRefused(
            f"the route set would drop {len(dropped)} of the {len(live_names)} live routes ({names})", dropped
        )
    return None


@dataclass(frozen=True)
class AppliedChange:
    publication: Publication
    diff: RouteDiff


def apply_route_set(
    client_config: Mapping[str, Any],
    topic: str,
    route_set: RouteSet,
    *,
    who: str,
    force: bool = False,
    read_timeout_s: float = 15.0,
) -> AppliedChange:
    """Read the live set, refuse a drastic drop unless `force` (RouteChangeRefused), then publish with
    `who`. The route set must already be validated (RuleError is the loader's business)."""
    live = read_route_log(client_config, topic, timeout_s=read_timeout_s).live
    live_set = live.route_set if live is not None else None
    refusal = drop_refusal(live_set, route_set)
    if refusal is not None and not force:
        raise refusal
    publication = publish_route_set(client_config, topic, route_set, who=who, forced=refusal is not None)
    return AppliedChange(publication, diff_route_sets(live_set, route_set))

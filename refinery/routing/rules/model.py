"""The route-set data model: predicates over header fields, destinations, routes and route sets.

Everything here is immutable and validated by `refinery.routing.rules.loader`; `dump_route_set` renders the
one canonical text of a set, whose hash is the set's `version`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml

from common.errors import InvalidInputError
from common.headers import FIELD_HEADERS, attribute_header

ATTRIBUTE_FIELD_PREFIX = "attribute."
_ATTRIBUTE_ALIASES = ("attribute.", "attributes.")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
CATCH_ALL_ROUTE = "catch_all"  # reserved route name reported for records sent to the catch-all topic


class RuleError(InvalidInputError):
    """A route set that cannot be used. `route` and `field` name where the problem is (when known)."""

    def __init__(self, message: str, *, route: str | None = None, field: str | None = None) -> None:
        where = f"route {route!r}: " if route else ""
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")
        self.route = route
        self.field = field


def known_fields_text() -> str:
    return ", ".join([*FIELD_HEADERS, "attribute.<name>"])


def canonical_field(name: str) -> str | None:
    """The canonical rule field for `name` ('attributes.x' -> 'attribute.x'), or None if unknown."""
    if name in FIELD_HEADERS:
        return name
    for alias in _ATTRIBUTE_ALIASES:
        if name.startswith(alias):
            attr = name[len(alias) :]
            return ATTRIBUTE_FIELD_PREFIX + attr if _ATTRIBUTE_NAME.match(attr) else None
    return None


def header_for(field: str) -> str:
    """The record header that carries a canonical rule field."""
    if field.startswith(ATTRIBUTE_FIELD_PREFIX):
        return attribute_header(field[len(ATTRIBUTE_FIELD_PREFIX) :])
    return FIELD_HEADERS[field]


# ---- predicates -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Equals:
    field: str
    value: str

    def to_doc(self) -> dict[str, Any]:
        return {self.field: self.value}


@dataclass(frozen=True, slots=True)
class OneOf:
    field: str
    values: frozenset[str]

    def to_doc(self) -> dict[str, Any]:
        return {self.field: {"in": sorted(self.values)}}


@dataclass(frozen=True, slots=True)
class Glob:
    """Shell-style pattern (`fnmatch`: `*`, `?`, `[seq]`, `[!seq]`) matched against the whole value."""

    field: str
    pattern: str

    def to_doc(self) -> dict[str, Any]:
        return {self.field: {"glob": self.pattern}}


@dataclass(frozen=True, slots=True)
class Not:
    item: Predicate

    def to_doc(self) -> dict[str, Any]:
        return {"not": self.item.to_doc()}


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every item is true (and so for no items)."""

    items: tuple[Predicate, ...]

    def to_doc(self) -> dict[str, Any]:
        return {"all": [item.to_doc() for item in self.items]}


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Predicate, ...]

    def to_doc(self) -> dict[str, Any]:
        return {"any": [item.to_doc() for item in self.items]}


Predicate = Equals | OneOf | Glob | Not | AllOf | AnyOf


# ---- destinations -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixedTopic:
    topic: str

    def to_doc(self) -> dict[str, Any]:
        return {"topic": self.topic}


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A destination like `{env}.{source}.{title}.{category}-v{version}` filled from header fields.

    `pieces` alternates literal text and `FieldRef`s; `fixed_env` is the literal env part, or None when
    the env part is `{env}` (the record's own env).
    """

    text: str
    pieces: tuple[str | FieldRef, ...]
    fixed_env: str | None
    fields: tuple[str, ...] = dataclasses.field(
        init=False, compare=False
    )  # the distinct fields used, in order

    def __post_init__(self) -> None:
        fields = tuple(dict.fromkeys(p.field for p in self.pieces if isinstance(p, FieldRef)))
        object.__setattr__(self, "fields", fields)

    def to_doc(self) -> dict[str, Any]:
        return {"template": self.text}


@dataclass(frozen=True, slots=True)
class FieldRef:
    field: str


Destination = FixedTopic | TopicTemplate


# ---- routes and route sets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    match: Predicate
    destination: Destination
    dedup: bool = False
    description: str = ""

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name}
        if self.description:
            doc["description"] = self.description
        doc["match"] = self.match.to_doc()
        doc["to"] = self.destination.to_doc()
        if self.dedup:
            doc["dedup"] = True
        return doc


@dataclass(frozen=True)
class RouteSet:
    """An ordered, validated set of routes. `catch_all` (a topic or a template with `{env}`) receives
    records no route matches; `envs`, when declared, lists every env the deployment knows (used to
    prove that a route such as `not: {env: prod}` only ever sees `dev` records)."""

    routes: tuple[Route, ...]
    catch_all: str | None = None
    envs: tuple[str, ...] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.envs is not None:
            doc["envs"] = list(self.envs)
        doc["routes"] = [route.to_doc() for route in self.routes]
        if self.catch_all is not None:
            doc["catch_all"] = self.catch_all
        return doc

    @cached_property
    def canonical_text(self) -> str:
        return dump_route_set(self)

    @cached_property
    def version(self) -> str:
        """Content hash of the canonical text: equal sets have equal versions."""
        return hashlib.sha256(self.canonical_text.encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        return self.version

    def route_names(self) -> list[str]:
        return [route.name for route in self.routes]


def dump_route_set(rs: RouteSet) -> str:
    """The canonical YAML text of a route set (loads back to an equal set)."""
    return yaml.safe_dump(
        rs.to_doc(), sort_keys=False, default_flow_style=None, allow_unicode=True, width=1000
    )

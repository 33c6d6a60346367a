"""Load and validate route sets from YAML text. Every problem raises RuleError naming the route and field.

YAML is read with PyYAML's BaseLoader, so every scalar stays a string: `title: 0123` is the title
"0123", `env: no` is the env "no" (no YAML 1.1 surprises), and duplicate keys are refused.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from common import contract
from common.errors import TopicNameError
from common.topics import INGEST_TITLE, parse_topic, validate_component
from refinery.routing.rules.envs import env_violation
from refinery.routing.rules.model import (
    CATCH_ALL_ROUTE,
    AllOf,
    AnyOf,
    Destination,
    Equals,
    FixedTopic,
    Glob,
    Not,
    OneOf,
    Predicate,
    Route,
    RouteSet,
    RuleError,
    canonical_field,
    known_fields_text,
)
from refinery.routing.rules.templates import parse_template

MAX_DEPTH = 32
MAX_NODES = 100_000
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_TOP_KEYS = ("envs", "routes", "catch_all")
_ROUTE_KEYS = ("name", "description", "match", "to", "dedup")
_CONDITION_OPS = ("eq", "in", "glob", "not")
_NULLS = ("", "~", "null", "Null", "NULL")
_BOOLS = {"true": True, "false": False}
_INT_HEADERS = {"version": contract.VERSION, "schema_id": contract.SCHEMA_ID}


class _StrictLoader(yaml.BaseLoader):
    """BaseLoader (all scalars are strings) that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key if isinstance(key, str) else id(key))
        return super().construct_mapping(node, deep=deep)


def load_route_file(path: str | Path) -> RouteSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read route file {str(path)!r}: {exc}") from None
    return load_route_set(text)


def load_route_set(text: str) -> RouteSet:
    """Parse and validate a route set; raise RuleError (and nothing else) when it cannot be used."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise RuleError(f"route set is not valid YAML: {exc}") from None
    except RecursionError:
        raise RuleError("route set is nested too deeply") from None
    return _Parser().route_set(doc)


def _kind(node: object) -> str:
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return kinds.get(type(node), type(node).__name__)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def route_set(self, doc: object) -> RouteSet:
        if doc is None or doc == "":
            raise RuleError("route set is empty; expected a mapping with a 'routes' list")
        if not isinstance(doc, dict):
            raise RuleError(f"route set must be a mapping with a 'routes' list, got {_kind(doc)}")
        _no_unknown_keys(doc, _TOP_KEYS, "route set", RuleError)
        envs = self._envs(doc.get("envs"))
        if "routes" not in doc:
            raise RuleError("route set has no 'routes' list")
        raw_routes = doc["routes"]
        if not isinstance(raw_routes, list):
            raise RuleError(f"'routes' must be a list, got {_kind(raw_routes)}", field="routes")
        routes: list[Route] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_routes):
            route = self.route(raw, index, envs)
            if route.name in seen:
                raise RuleError(f"duplicate route name {route.name!r} (route #{index + 1})", field="name")
            seen.add(route.name)
            routes.append(route)
        catch_all = self._catch_all(doc.get("catch_all"))
        return RouteSet(routes=tuple(routes), catch_all=catch_all, envs=envs)

    def _envs(self, raw: object) -> tuple[str, ...] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
            raise RuleError("must be a non-empty list of env names", field="envs")
        for env in raw:
            try:
                validate_component("env", env)
            except TopicNameError as exc:
                raise RuleError(str(exc), field="envs") from None
        if len(set(raw)) != len(raw):
            raise RuleError("lists an env twice", field="envs")
        return tuple(raw)

    def _catch_all(self, raw: object) -> str | None:
        if raw is None or raw in _NULLS:
            return None
        if not isinstance(raw, str):
            raise RuleError(f"must be a topic template string or null, got {_kind(raw)}", field="catch_all")

        def fail(message: str) -> RuleError:
            return RuleError(message, field="catch_all")

        template = parse_template(raw, fail)
        if template.fixed_env is not None:
            raise fail(
                f"{raw!r} would collect unmatched records of every env in one env's topic; "
                "use a template whose env part is {env}, e.g. '{env}.refinery.unrouted.all-v1'"
            )
        return raw

    def route(self, raw: object, index: int, envs: tuple[str, ...] | None) -> Route:
        label = f"#{index + 1}"
        if not isinstance(raw, dict):
            raise RuleError(f"route {label} must be a mapping, got {_kind(raw)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RuleError(f"route {label} has no name (every route needs a non-empty 'name')")
        if not _ROUTE_NAME.match(name) or name == CATCH_ALL_ROUTE:
            raise RuleError(
                f"route {label} name {name!r} is not allowed: use 1-100 letters, digits, '_', '-' or '.'"
                f" (and not the reserved name {CATCH_ALL_ROUTE!r})"
            )

        def err(message: str, field: str | None = None) -> RuleError:
            return RuleError(message, route=name, field=field)

        _no_unknown_keys(raw, _ROUTE_KEYS, "route", lambda m, field=None: err(m, field))
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise err(f"must be a string, got {_kind(description)}", "description")
        dedup_raw = raw.get("dedup", "false")
        if not isinstance(dedup_raw, str) or dedup_raw.lower() not in _BOOLS:
            raise err(f"must be true or false, got {dedup_raw!r}", "dedup")
        if "match" not in raw:
            raise err("has no 'match' (use {} to match every record)", "match")
        match = self.predicate(raw["match"], "match", 0, err, envs)
        if "to" not in raw:
            raise err("has no destination ('to: {topic: ...}' or 'to: {template: ...}')", "to")
        destination = self.destination(raw["to"], err)
        fixed_env = destination.fixed_env if not isinstance(destination, FixedTopic) else None
        if isinstance(destination, FixedTopic):
            fixed_env = parse_topic(destination.topic).env
        if fixed_env is not None:
            problem = env_violation(match, fixed_env, envs)
            if problem:
                raise err(problem, "to")
        return Route(name, match, destination, _BOOLS[dedup_raw.lower()], description)

    def destination(self, raw: object, err: Callable[..., RuleError]) -> Destination:
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("topic", "template"):
            raise err("must be {topic: <name>} or {template: <pattern>}", "to")
        ((kind, value),) = raw.items()
        if not isinstance(value, str):
            raise err(f"must be a string, got {_kind(value)}", f"to.{kind}")
        if kind == "template":
            return parse_template(value, lambda m: err(m, "to.template"))
        try:
            name = parse_topic(value)
        except TopicNameError as exc:
            raise err(f"{value!r} is not a valid topic name: {exc}", "to.topic") from None
        if name.title == INGEST_TITLE:
            raise err(
                f"{value!r} is an ingest topic (title {INGEST_TITLE!r}); routing there would loop", "to.topic"
            )
        return FixedTopic(value)

    def predicate(
        self, node: object, path: str, depth: int, err: Callable[..., RuleError], envs: tuple[str, ...] | None
    ) -> Predicate:
        self._count(depth, path, err)
        if not isinstance(node, dict):
            raise err(
                f"expected a mapping such as {{env: prod}}, got {_kind(node)} {reprlib.repr(node)}", path
            )
        items: list[Predicate] = []
        for key, value in node.items():
            sub = f"{path}.{key}"
            if key in ("all", "any"):
                if not isinstance(value, list):
                    raise err(f"'{key}' takes a list of conditions, got {_kind(value)}", sub)
                if key == "any" and not value:
                    raise err("'any' needs at least one condition", sub)
                parsed = tuple(
                    self.predicate(v, f"{sub}[{i}]", depth + 1, err, envs) for i, v in enumerate(value)
                )
                items.append(AllOf(parsed) if key == "all" else AnyOf(parsed))
            elif key == "not":
                items.append(Not(self.predicate(value, sub, depth + 1, err, envs)))
            else:
                field = canonical_field(key) if isinstance(key, str) else None
                if field is None:
                    raise err(
                        f"unknown field {key!r}; known fields: {known_fields_text()}, or all/any/not", sub
                    )
                items.append(self.condition(field, value, sub, depth + 1, err, envs))
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def condition(
        self,
        field: str,
        node: object,
        path: str,
        depth: int,
        err: Callable[..., RuleError],
        envs: tuple[str, ...] | None,
    ) -> Predicate:
        self._count(depth, path, err)
        if isinstance(node, str):
            return Equals(field, _value(field, node, path, err, envs))
        if isinstance(node, list):
            return OneOf(field, self._values(field, node, path, err, envs))
        if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _CONDITION_OPS:
            raise err(
                "expected a value, a list, or one of {eq: v}, {in: [..]}, {glob: pattern}, {not: ..}; "
                f"got {reprlib.repr(node)}",
                path,
            )
        ((op, arg),) = node.items()
        sub = f"{path}.{op}"
        if op == "not":
            return Not(self.condition(field, arg, sub, depth + 1, err, envs))
        if op == "in":
            if not isinstance(arg, list):
                raise err(f"'in' takes a list of values, got {_kind(arg)}", sub)
            return OneOf(field, self._values(field, arg, sub, err, envs))
        if not isinstance(arg, str):
            raise err(f"'{op}' takes a single value, got {_kind(arg)}", sub)
        if op == "eq":
            return Equals(field, _value(field, arg, sub, err, envs))
        _check_glob(arg, sub, err)
        return Glob(field, arg)

    def _values(
        self,
        field: str,
        node: list[Any],
        path: str,
        err: Callable[..., RuleError],
        envs: tuple[str, ...] | None,
    ) -> frozenset[str]:
        if not node:
            raise err("an empty list can never match", path)
        if not all(isinstance(v, str) for v in node):
            raise err("a list of values may only hold plain values", path)
        return frozenset(_value(field, v, path, err, envs) for v in node)

    def _count(self, depth: int, path: str, err: Callable[..., RuleError]) -> None:
        self.nodes += 1
        if depth > MAX_DEPTH:
            raise err(f"conditions are nested more than {MAX_DEPTH} levels deep", path)
        if self.nodes > MAX_NODES:
            raise err(f"route set has more than {MAX_NODES} conditions", path)


def _no_unknown_keys(
    doc: dict[Any, Any], allowed: tuple[str, ...], what: str, err: Callable[..., RuleError]
) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise err(
            f"unknown key {unknown[0]!r} in {what}; allowed keys: {', '.join(allowed)}", field=str(unknown[0])
        )


def _value(
    field: str, value: str, path: str, err: Callable[..., RuleError], envs: tuple[str, ...] | None
) -> str:
    """Refuse values that no valid record can carry, so typos fail at load time instead of never matching."""
    if field in ("env", "source", "title", "category"):
        try:
            validate_component(field, value)
        except TopicNameError as exc:
            raise err(f"{exc}; no record can match it", path) from None
        if field == "env" and envs is not None and value not in envs:
            raise err(f"env {value!r} is not one of the declared envs ({', '.join(envs)})", path)
    elif field in _INT_HEADERS and contract.header_problem(_INT_HEADERS[field], value.encode()):
        limit = contract.INT_LIMITS[_INT_HEADERS[field]]
        raise err(
            f"{field} {value!r} must be a positive integer (no sign or leading zero, at most {limit}); "
            "no record can match it",
            path,
        )
    elif field == "format" and value not in contract.FORMATS:
        raise err(f"format {value!r} is unknown; use one of {', '.join(contract.FORMATS)}", path)
    return value


def _check_glob(pattern: str, path: str, err: Callable[..., RuleError]) -> None:
    if not pattern:
        raise err("glob pattern is empty", path)
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                raise err(f"invalid glob {pattern!r}: '[' at position {i} is never closed", path)
            i = close
        i += 1

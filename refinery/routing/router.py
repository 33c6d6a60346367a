"""Compiled routing: `Router.route(headers)` -> the destinations of one record.

A route set is compiled once. Because a routing decision depends only on the few headers the rules
mention, `route()` reads those headers into a tuple and looks the decision up in a bounded cache: a
handful of dict lookups per record. A cache miss evaluates the compiled predicates, visiting only the
routes that can match the record's value of the most selective indexed header.

Fan-out: a record goes to every matching route, once per distinct topic (routes are tried in order and
the first route to name a topic is reported; `dedup` is on if any of them asked for it). A record no
route matches goes to the set's `catch_all` (reported as route `catch_all`) or, without one, gets `[]`.

Errors: when a matching route's template cannot make a valid topic from the record's headers (a
missing header, a value with characters topic names cannot hold, a result that is an ingest topic),
`route()` raises `RoutingError` naming the route, with a short `reason` code for the dead-letter
record and `partial`, the destinations that did resolve. It never raises anything else.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from common.errors import InvalidInputError
from common.headers import ENV
from refinery.routing.rules.model import (
    CATCH_ALL_ROUTE,
    AllOf,
    Equals,
    FixedTopic,
    Glob,
    Not,
    OneOf,
    Predicate,
    Route,
    RouteSet,
    RuleError,
    TopicTemplate,
    header_for,
)
from refinery.routing.rules.templates import TemplateValueError, parse_template, render

DEFAULT_CACHE_SIZE = 65_536
HeaderValues = Mapping[str, bytes | None]
Test = Callable[[HeaderValues], bool]


class RoutingError(InvalidInputError):
    """A record matched a route whose destination cannot be built from its headers.

    `reason` is a short code for dead-letter headers: missing_header, invalid_topic, ingest_topic or
    bad_header_value. `partial` holds the destinations that did resolve for the same record."""

    def __init__(
        self,
        message: str,
        *,
        route: str,
        reason: str,
        header: str | None = None,
        partial: tuple[Destination, ...] = (),
    ) -> None:
        super().__init__(message)
        self.route = route
        self.reason = reason
        self.header = header
        self.partial = partial


@dataclass(frozen=True, slots=True)
class Destination:
    route: str
    topic: str
    dedup: bool


@dataclass(frozen=True, slots=True)
class _Failure:
    """A cached routing failure (we cache the facts and raise a fresh exception each time)."""

    route: str
    message: str
    reason: str
    header: str | None
    partial: tuple[Destination, ...]

    def error(self) -> RoutingError:
        return RoutingError(
            self.message, route=self.route, reason=self.reason, header=self.header, partial=self.partial
        )


def _compile(p: Predicate) -> Test:
    if isinstance(p, Equals):
        header, value = header_for(p.field), p.value.encode()
        return lambda h: h.get(header) == value
    if isinstance(p, OneOf):
        header, values = header_for(p.field), frozenset(v.encode() for v in p.values)
        return lambda h: h.get(header) in values
    if isinstance(p, Glob):
        header, matcher = header_for(p.field), re.compile(fnmatch.translate(p.pattern)).match

        def glob(h: HeaderValues) -> bool:
            raw = h.get(header)
            return raw is not None and matcher(raw.decode("utf-8", "surrogateescape")) is not None

        return glob
    if isinstance(p, Not):
        inner = _compile(p.item)
        return lambda h: not inner(h)
    tests = tuple(_compile(item) for item in p.items)
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:  # the common case: two conditions, without a loop
        first, second = tests
        if isinstance(p, AllOf):
            return lambda h: first(h) and second(h)
        return lambda h: first(h) or second(h)
    if isinstance(p, AllOf):

        def all_of(h: HeaderValues) -> bool:
            for test in tests:
                if not test(h):
                    return False
            return True

        return all_of

    def any_of(h: HeaderValues) -> bool:
        for test in tests:
            if test(h):
                return True
        return False

    return any_of


def _headers_in(p: Predicate) -> Iterable[str]:
    if isinstance(p, Equals | OneOf | Glob):
        yield header_for(p.field)
    elif isinstance(p, Not):
        yield from _headers_in(p.item)
    else:
        for item in p.items:
            yield from _headers_in(item)


def _conjuncts(p: Predicate) -> Iterable[Predicate]:
    if isinstance(p, AllOf):
        for item in p.items:
            yield from _conjuncts(item)
    else:
        yield p


class _CompiledRoute:
    __slots__ = (
        "dedup",
        "env_guard",
        "fixed",
        "index_values",
        "name",
        "template",
        "template_headers",
        "test",
    )

    def __init__(self, route: Route) -> None:
        self.name = route.name
        self.dedup = route.dedup
        self.test = _compile(route.match)
        dest = route.destination
        self.fixed: str | None = dest.topic if isinstance(dest, FixedTopic) else None
        self.template: TopicTemplate | None = dest if isinstance(dest, TopicTemplate) else None
        self.template_headers = _template_headers(self.template) if self.template is not None else ()
        env = self.fixed.split(".", 1)[0] if self.fixed is not None else dest.fixed_env  # type: ignore[union-attr]
        # Belt and braces for the env rule: a fixed-env destination only takes records of that env.
        self.env_guard: bytes | None = env.encode() if env is not None else None
        # header -> values one of which the record must carry for this route to match (for indexing)
        self.index_values: dict[str, frozenset[bytes]] = {}
        for c in _conjuncts(route.match):
            if isinstance(c, Equals | OneOf):
                vals = frozenset(v.encode() for v in ([c.value] if isinstance(c, Equals) else c.values))
                header = header_for(c.field)
                self.index_values[header] = self.index_values.get(header, vals) & vals
        if self.env_guard is not None:
            self.index_values[ENV] = self.index_values.get(ENV, frozenset([self.env_guard])) & {
                self.env_guard
            }

    def matches(self, h: HeaderValues) -> bool:
        return self.test(h) and (self.env_guard is None or h.get(ENV) == self.env_guard)

    def topic(self, h: HeaderValues) -> str:
        if self.fixed is not None:
            return self.fixed
        assert self.template is not None
        return render(self.template, _field_values(self.template_headers, h))


def _template_headers(template: TopicTemplate) -> tuple[tuple[str, str], ...]:
    return tuple((field, header_for(field)) for field in template.fields)


def _field_values(fields: tuple[tuple[str, str], ...], h: HeaderValues) -> dict[str, str | None]:
    """Field values for a template (None = header missing), decoded from the record's header bytes."""
    out: dict[str, str | None] = {}
    for field, header in fields:
        raw = h.get(header)
        try:
            out[field] = None if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TemplateValueError(
                f"header {header!r} is not valid UTF-8", reason="bad_header_value", header=header
            ) from None
    return out


def _key_function(headers: tuple[str, ...]) -> Callable[[Mapping[str, object]], tuple[object, ...]]:
    """`lambda h: (h.get("ce_env"), h.get("ce_title"), ...)`, built as code: about three times faster
    than `tuple(map(h.get, headers))` (itemgetter is faster still but raises on a missing header)."""
    gets = "".join(f"h.get({name!r}), " for name in headers)
    return eval(f"lambda h: ({gets})", {"__builtins__": {}})  # type: ignore[no-any-return]


class Router:
    """The compiled form of a RouteSet. Thread-safe; build with `compile_router`."""

    def __init__(self, route_set: RouteSet, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.route_set = route_set
        self._routes = tuple(_CompiledRoute(r) for r in route_set.routes)
        self._catch_all: TopicTemplate | None = None
        if route_set.catch_all is not None:
            self._catch_all = parse_template(route_set.catch_all, lambda m: RuleError(m, field="catch_all"))
        headers: dict[str, None] = {}
        for route in route_set.routes:
            headers.update(dict.fromkeys(_headers_in(route.match)))
        templates = [r.template for r in self._routes if r.template is not None]
        templates += [self._catch_all] if self._catch_all is not None else []
        for template in templates:
            headers.update(dict.fromkeys(header_for(f) for f in template.fields))
        if any(r.env_guard is not None for r in self._routes):
            headers[ENV] = None
        self.key_headers: tuple[str, ...] = tuple(headers)
        self._key_of = _key_function(self.key_headers)
        self._cache: dict[tuple[object, ...], tuple[Destination, ...] | _Failure] = {}
        self._cache_size = cache_size
        self._build_index()

    def _build_index(self) -> None:
        """Pick the header whose value narrows the candidate routes most, and bucket routes by it."""
        best: tuple[float, str] | None = None
        for header in self.key_headers:
            indexed = [r for r in self._routes if header in r.index_values]
            if not indexed:
                continue
            distinct = len(set().union(*(r.index_values[header] for r in indexed)))
            postings = sum(len(r.index_values[header]) for r in indexed)
            cost = len(self._routes) - len(indexed) + postings / distinct
            if best is None or cost < best[0]:
                best = (cost, header)
        self._index_header = best[1] if best else None
        header = self._index_header or ""
        buckets: dict[bytes, list[_CompiledRoute]] = {}
        for r in self._routes:
            for value in r.index_values.get(header, ()):
                buckets.setdefault(value, [])
        unindexed: list[_CompiledRoute] = []
        for r in self._routes:  # in route order, so every bucket keeps the set's order
            if header in r.index_values:
                for value in r.index_values[header]:
                    buckets[value].append(r)
            else:
                unindexed.append(r)
                for bucket in buckets.values():
                    bucket.append(r)
        self._unindexed = tuple(unindexed)
        self._buckets = {value: tuple(bucket) for value, bucket in buckets.items()}

    def route(self, headers: Mapping[str, bytes]) -> list[Destination]:
        """Destinations for a record with these headers; [] when unmatched and there is no catch-all.
        Raises RoutingError (only) when a matched destination cannot be built from the headers."""
        key = self._key_of(headers)
        try:
            hit = self._cache.get(key)
        except TypeError:  # an unhashable header value: decide without caching
            hit = self._decide(key)
        if hit is None:
            hit = self._decide(key)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = hit
        if type(hit) is tuple:
            return list(hit)
        raise hit.error()  # type: ignore[union-attr]

    def _decide(self, key: tuple[object, ...]) -> tuple[Destination, ...] | _Failure:
        values: dict[str, bytes | None] = {}
        for header, value in zip(self.key_headers, key, strict=True):
            if value is None or type(value) is bytes:
                values[header] = value  # type: ignore[assignment]
            elif isinstance(value, str):
                values[header] = value.encode("utf-8", "surrogatepass")
            elif isinstance(value, bytearray | memoryview):
                values[header] = bytes(value)
            else:
                message = f"header {header!r} has a {type(value).__name__} value; expected bytes"
                return _Failure("", message, "bad_header_value", header, ())
        if self._index_header is None:
            candidates = self._routes
        else:
            candidates = self._buckets.get(values.get(self._index_header) or b"", self._unindexed)
        found: dict[str, Destination] = {}
        failures: list[_Failure] = []
        for route in candidates:
            if not route.matches(values):
                continue
            try:
                topic = route.topic(values)
            except TemplateValueError as exc:
                failures.append(
                    _Failure(route.name, f"route {route.name!r}: {exc}", exc.reason, exc.header, ())
                )
                continue
            previous = found.get(topic)
            if previous is None:
                found[topic] = Destination(route.name, topic, route.dedup)
            elif route.dedup and not previous.dedup:
                found[topic] = Destination(previous.route, topic, True)
        if failures:
            first = failures[0]
            return _Failure(first.route, first.message, first.reason, first.header, tuple(found.values()))
        if not found and self._catch_all is not None:
            try:
                topic = render(self._catch_all, _field_values(_template_headers(self._catch_all), values))
            except TemplateValueError as exc:
                return _Failure(CATCH_ALL_ROUTE, f"catch_all: {exc}", exc.reason, exc.header, ())
            return (Destination(CATCH_ALL_ROUTE, topic, False),)
        return tuple(found.values())


def compile_router(rs: RouteSet, *, cache_size: int = DEFAULT_CACHE_SIZE) -> Router:
    """Compile a validated route set for routing."""
    return Router(rs, cache_size=cache_size)


__all__ = ["Destination", "Router", "RoutingError", "compile_router"]

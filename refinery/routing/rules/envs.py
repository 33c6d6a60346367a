"""The env rule: no route may send one env's records to another env's topic.

A route whose destination has a literal env (a fixed topic, or a template whose env part is not
`{env}`) must have a match that only ever admits that env. We prove it statically by computing, for each
predicate, an upper bound (envs for which it can be true) and a lower bound (envs for which it is always
true), so `not` flips them. Without a declared env universe, `not: {env: prod}` admits every env but
prod (unbounded); with `envs: [prod, dev]` it admits exactly `dev`. The router also checks the record's
env header against the destination's env at route time, so records from undeclared envs (or with no env
header) never reach a fixed-env destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from refinery.routing.rules.model import AllOf, Equals, Glob, Not, OneOf, Predicate


@dataclass(frozen=True, slots=True)
class EnvSet:
    """A set of envs: `values`, or (cofinite) every env except `values`."""

    values: frozenset[str]
    cofinite: bool = False

    def union(self, other: EnvSet) -> EnvSet:
        if self.cofinite and other.cofinite:
            return EnvSet(self.values & other.values, True)
        if self.cofinite:
            return EnvSet(self.values - other.values, True)
        if other.cofinite:
            return EnvSet(other.values - self.values, True)
        return EnvSet(self.values | other.values)

    def intersect(self, other: EnvSet) -> EnvSet:
        if self.cofinite and other.cofinite:
            return EnvSet(self.values | other.values, True)
        if self.cofinite:
            return EnvSet(other.values - self.values)
        if other.cofinite:
            return EnvSet(self.values - other.values)
        return EnvSet(self.values & other.values)


class EnvBounds:
    """Computes (upper, lower) env bounds of predicates, within an optional declared universe."""

    def __init__(self, universe: tuple[str, ...] | None) -> None:
        self.universe = frozenset(universe) if universe is not None else None
        self.all = EnvSet(self.universe) if self.universe is not None else EnvSet(frozenset(), True)
        self.none = EnvSet(frozenset())

    def _exact(self, values: frozenset[str]) -> EnvSet:
        return EnvSet(values).intersect(self.all)

    def complement(self, s: EnvSet) -> EnvSet:
        return self.all.intersect(EnvSet(s.values, not s.cofinite))

    def bounds(self, p: Predicate) -> tuple[EnvSet, EnvSet]:
        if isinstance(p, Equals | OneOf | Glob):
            if p.field != "env":
                return self.all, self.none
            if isinstance(p, Equals):
                exact = self._exact(frozenset([p.value]))
            elif isinstance(p, OneOf):
                exact = self._exact(p.values)
            elif self.universe is not None:
                exact = EnvSet(frozenset(e for e in self.universe if fnmatchcase(e, p.pattern)))
            else:
                return self.all, self.none
            return exact, exact
        if isinstance(p, Not):
            upper, lower = self.bounds(p.item)
            return self.complement(lower), self.complement(upper)
        upper, lower = (self.all, self.all) if isinstance(p, AllOf) else (self.none, self.none)
        for item in p.items:
            u, lo = self.bounds(item)
            if isinstance(p, AllOf):
                upper, lower = upper.intersect(u), lower.intersect(lo)
            else:
                upper, lower = upper.union(u), lower.union(lo)
        return upper, lower


def env_violation(match: Predicate, destination_env: str, universe: tuple[str, ...] | None) -> str | None:
    """Why a route with this match may not write to a topic of `destination_env` (None: it may)."""
    upper, _ = EnvBounds(universe).bounds(match)
    if upper.cofinite:
        hint = "" if universe is not None else " (or declare `envs:` so that a `not` on env can be resolved)"
        return (
            f"the destination is an env {destination_env!r} topic but the match does not restrict env to "
            f"{destination_env!r}; add `env: {destination_env}` to the match{hint}"
        )
    others = sorted(upper.values - {destination_env})
    if others:
        return (
            f"the match admits env(s) {', '.join(others)} but the destination is an env "
            f"{destination_env!r} topic: no route may send one env's data to another env's topic"
        )
    if not upper.values:
        return "the match can never be true for any env, so the route would never match"
    return None

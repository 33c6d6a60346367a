"""Declarative routing rules: YAML route sets, their validation and canonical form.

See `refinery.rules.loader` for the YAML shape and `refinery.rules.envs` for the env rule.
"""

from refinery.rules.loader import load_route_file, load_route_set
from refinery.rules.model import (
    CATCH_ALL_ROUTE,
    AllOf,
    AnyOf,
    Equals,
    FieldRef,
    FixedTopic,
    Glob,
    Not,
    OneOf,
    Predicate,
    Route,
    RouteSet,
    RuleError,
    TopicTemplate,
    dump_route_set,
    header_for,
)

__all__ = [
    "CATCH_ALL_ROUTE",
    "AllOf",
    "AnyOf",
    "Equals",
    "FieldRef",
    "FixedTopic",
    "Glob",
    "Not",
    "OneOf",
    "Predicate",
    "Route",
    "RouteSet",
    "RuleError",
    "TopicTemplate",
    "dump_route_set",
    "header_for",
    "load_route_file",
    "load_route_set",
]

"""Declarative routing rules: YAML route sets, their validation and canonical form.

    envs: [prod, dev]                 # optional: every env there is (see the env rule below)
    routes:                           # tried in order; a record goes to every route it matches
      - name: prod-1234-by-category   # unique; letters, digits, '_', '-', '.'
        description: optional text
        match: {env: prod, title: "1234"}           # a mapping = all of its entries
        to: {template: "{env}.{source}.{title}.{category}-v{version}"}
      - name: matches-2x
        match: {all: [{env: prod}, {title: {glob: "2*"}}, {category: match_started}]}
        to: {topic: prod.telemetry.2xxx.match_started-v1}
        dedup: true                   # optional, default false
    catch_all: "{env}.refinery.unrouted.all-v1"     # optional: where unmatched records go

Fields: env, source, title, category, version, schema_id, format, producer, message_id and
`attribute.<name>` (or `attributes.<name>`), read from the record headers (`common.headers`).
Conditions on a field: a value (equality), a list or `{in: [...]}`, `{eq: v}`, `{glob: "2*"}` (fnmatch,
whole value), `{not: <condition>}`. Combinators: `{all: [...]}`, `{any: [...]}`, `{not: {...}}`; `{}`
matches every record. All scalars are strings (no YAML 1.1 typing: `title: 0123` is "0123").

Destinations: `{topic: <convention name>}` or `{template: ...}` with `{field}` placeholders; both must
give `{env}.{source}.{title}.{category}-v{version}` names and never an ingest topic (title `ingest`).
The env rule: when the destination's env is fixed (a topic, or a template whose env part is not
`{env}`), the match must admit only that env: `env: dev`, or `not: {env: prod}` together with
`envs: [prod, dev]`. The catch-all must use `{env}`. Violations are load errors (`RuleError`).
"""

from refinery.routing.rules.loader import load_route_file, load_route_set
from refinery.routing.rules.model import (
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

"""Route-set YAML: parsing every predicate kind, canonical round trip, and every validation error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidInputError
from refinery.routing.rules import (
    AllOf,
    AnyOf,
    Equals,
    FixedTopic,
    Glob,
    Not,
    OneOf,
    RuleError,
    TopicTemplate,
    dump_route_set,
    load_route_file,
    load_route_set,
)

WORKLOAD_ROUTES = Path(__file__).resolve().parents[3] / "refinery" / "routes" / "workload.yaml"


def one_route(
    match: str, to: str = "{template: '{env}.{source}.{title}.{category}-v{version}'}", **extra: str
) -> str:
    lines = [f"    {k}: {v}" for k, v in extra.items()]
    return "routes:\n  - name: r\n" + f"    match: {match}\n    to: {to}\n" + "\n".join(lines)


def match_of(match: str) -> object:
    return load_route_set(one_route(match)).routes[0].match


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("{env: prod}", Equals("env", "prod")),
        ("{title: 1234}", Equals("title", "1234")),
        ("{title: 0123}", Equals("title", "0123")),  # no YAML octal: every scalar stays a string
        ("{env: no}", Equals("env", "no")),  # no YAML 1.1 booleans either
        ("{env: {eq: prod}}", Equals("env", "prod")),
        ("{version: 2}", Equals("version", "2")),
        ("{schema_id: 42}", Equals("schema_id", "42")),
        ("{format: avro}", Equals("format", "avro")),
        ("{attribute.platform: pc}", Equals("attribute.platform", "pc")),
        ("{attributes.platform: pc}", Equals("attribute.platform", "pc")),
        ("{title: [3456, 4567]}", OneOf("title", frozenset({"3456", "4567"}))),
        ("{title: {in: [3456]}}", OneOf("title", frozenset({"3456"}))),
        ("{title: {glob: '2*'}}", Glob("title", "2*")),
        ("{env: {not: prod}}", Not(Equals("env", "prod"))),
        ("{not: {env: prod}}", Not(Equals("env", "prod"))),
        ("{env: prod, title: 1}", AllOf((Equals("env", "prod"), Equals("title", "1")))),
        ("{all: [{env: prod}]}", AllOf((Equals("env", "prod"),))),
        ("{any: [{env: prod}, {env: dev}]}", AnyOf((Equals("env", "prod"), Equals("env", "dev")))),
        ("{}", AllOf(())),
    ],
)
def test_every_predicate_kind_parses(match: str, expected: object) -> None:
    assert match_of(match) == expected


def test_route_fields_and_destinations() -> None:
    rs = load_route_set(
        textwrap.dedent(
            """
            envs: [prod, dev]
            routes:
              - name: a
                description: all prod kills
                match: {env: prod}
                to: {topic: prod.telemetry.all.kills-v2}
                dedup: true
              - name: b
                match: {}
                to: {template: "{env}.x.{attribute.platform}.y-v3"}
            catch_all: "{env}.refinery.unrouted.all-v1"
            """
        )
    )
    a, b = rs.routes
    assert (a.name, a.description, a.dedup, a.destination) == (
        "a",
        "all prod kills",
        True,
        FixedTopic("prod.telemetry.all.kills-v2"),
    )
    assert isinstance(b.destination, TopicTemplate)
    assert b.destination.fields == ("env", "attribute.platform")
    assert b.destination.fixed_env is None
    assert (b.dedup, rs.catch_all, rs.envs) == (False, "{env}.refinery.unrouted.all-v1", ("prod", "dev"))


def test_dump_load_round_trip_and_version() -> None:
    rs = load_route_file(WORKLOAD_ROUTES)
    text = dump_route_set(rs)
    again = load_route_set(text)
    assert again == rs
    assert again.version == rs.version == rs.hash
    assert dump_route_set(again) == text
    reordered = load_route_set(text.replace("prod-purchases", "prod-purchases-2"))
    assert reordered.version != rs.version


def test_catch_all_null_forms() -> None:
    for value in ("null", "~", "''"):
        assert load_route_set(f"routes: []\ncatch_all: {value}").catch_all is None
    assert load_route_set("routes: []").routes == ()


TEMPLATE = "{template: '{env}.{source}.{title}.{category}-v{version}'}"

# (yaml text, expected route in message or None, substrings the message must contain)
INVALID = [
    ("", None, ["empty"]),
    ("[1, 2]", None, ["must be a mapping"]),
    ("routes: [", None, ["not valid YAML"]),
    ("routes: {}", None, ["'routes' must be a list"]),
    ("envs: [prod]", None, ["no 'routes'"]),
    ("routs: []", None, ["unknown key 'routs'", "allowed keys"]),
    ("routes: []\nroutes: []", None, ["duplicate key 'routes'"]),
    ("routes: [hello]", None, ["route #1 must be a mapping"]),
    ("routes: [{match: {}, to: {topic: a.b.c.d-v1}}]", None, ["route #1 has no name"]),
    ("routes: [{name: '', match: {}}]", None, ["no name"]),
    ("routes: [{name: 'a b', match: {}}]", None, ["'a b' is not allowed"]),
    ("routes: [{name: catch_all, match: {}}]", None, ["reserved"]),
    (one_route("{env: prod}", TEMPLATE, colour="red"), "r", ["unknown key 'colour'"]),
    (one_route("{env: prod}", TEMPLATE, dedup="maybe"), "r", ["dedup", "true or false"]),
    ("routes: [{name: r, to: {topic: a.b.c.d-v1}}]", "r", ["has no 'match'"]),
    ("routes: [{name: r, match: {}}]", "r", ["has no destination"]),
    (one_route("{titel: x}"), "r", ["match.titel", "unknown field 'titel'", "known fields"]),
    (one_route("{attribute.: x}"), "r", ["unknown field 'attribute.'"]),
    (one_route("[env]"), "r", ["expected a mapping"]),
    (one_route("{all: {env: prod}}"), "r", ["'all' takes a list"]),
    (one_route("{any: []}"), "r", ["'any' needs at least one"]),
    (one_route("{title: []}"), "r", ["empty list can never match"]),
    (one_route("{title: [[1]]}"), "r", ["plain values"]),
    (one_route("{title: {regex: x}}"), "r", ["{glob: pattern}"]),
    (one_route("{title: {in: x}}"), "r", ["'in' takes a list"]),
    (one_route("{title: {glob: [x]}}"), "r", ["'glob' takes a single value"]),
    (one_route("{title: {glob: ''}}"), "r", ["glob pattern is empty"]),
    (one_route("{title: {glob: '2[0-9'}}"), "r", ["invalid glob", "never closed"]),
    (one_route("{title: 'a.b'}"), "r", ["match.title", "no record can match"]),
    (one_route("{version: v2}"), "r", ["version 'v2' must be a positive integer"]),
    (one_route("{schema_id: 0}"), "r", ["schema_id '0'"]),
    (one_route("{format: xml}"), "r", ["format 'xml' is unknown"]),
    ("envs: [prod]\n" + one_route("{env: dev}"), "r", ["env 'dev' is not one of the declared envs"]),
    ("envs: []\nroutes: []", None, ["envs", "non-empty list"]),
    ("envs: [prod, prod]\nroutes: []", None, ["envs", "twice"]),
    ("envs: ['a.b']\nroutes: []", None, ["envs"]),
    (one_route("{env: prod}", "prod.x.y.z-v1"), "r", ["to", "{topic: <name>}"]),
    (one_route("{env: prod}", "{topic: 'prod.x.y'}"), "r", ["to.topic", "not a valid topic name"]),
    (one_route("{env: prod}", "{topic: prod.telemetry.ingest.all-v1}"), "r", ["ingest topic", "loop"]),
    (one_route("{env: prod}", "{template: ''}"), "r", ["template is empty"]),
    (one_route("{}", "{template: '{env}.{src}.a.b-v1'}"), "r", ["to.template", "unknown field {src}"]),
    (one_route("{}", "{template: '{env}.{source.a.b-v1'}"), "r", ["unbalanced"]),
    (one_route("{}", "{template: '{env}.{source}.a-v1'}"), "r", ["3 dot-separated parts"]),
    (one_route("{}", "{template: '{env}.{source}.a.b'}"), "r", ["must end in '-v'"]),
    (one_route("{}", "{template: '{env}.{source}.a.b-v{title}'}"), "r", ["version after '-v'"]),
    (one_route("{}", "{template: '{env}.{source}.a.b-v01'}"), "r", ["version after '-v'"]),
    (one_route("{}", "{template: '{env}.{source}.ingest.all-v1'}"), "r", ["ingest topic", "loop"]),
    (one_route("{}", "{template: '{env}.s p.a.b-v1'}"), "r", ["source part has characters"]),
    (one_route("{}", "{template: '{env}.s\U0001f600.a.b-v1'}"), "r", ["non-ASCII"]),
    (one_route("{}", "{template: '{env}.s\ue000.a.b-v1'}"), "r", ["non-ASCII"]),
    (one_route("{}", "{template: '{env}..a.b-v1'}"), "r", ["source part is empty"]),
    (one_route("{env: prod}", "{template: 'x{env}.s.a.b-v1'}"), "r", ["env part must be exactly {env}"]),
    (one_route("{env: prod}", "{template: '{source}.s.a.b-v1'}"), "r", ["env part must be exactly {env}"]),
    (one_route("{}", "{template: '{env}.s.%s.b-v1'}" % ("t" * 250)), "r", ["Kafka allows at most 249"]),
    # the env rule
    (
        one_route("{category: crash_report}", "{topic: dev.t.all.crash-v1}"),
        "r",
        ["does not restrict env to 'dev'"],
    ),
    (one_route("{env: prod}", "{topic: dev.t.all.crash-v1}"), "r", ["admits env(s) prod", "another env"]),
    (one_route("{env: [prod, dev]}", "{topic: dev.t.a.b-v1}"), "r", ["admits env(s) prod"]),
    (one_route("{any: [{env: dev}, {title: x}]}", "{topic: dev.t.a.b-v1}"), "r", ["does not restrict env"]),
    (one_route("{not: {env: prod}}", "{topic: dev.t.a.b-v1}"), "r", ["declare `envs:`"]),
    (
        "envs: [prod, dev, qa]\n" + one_route("{not: {env: prod}}", "{topic: dev.t.a.b-v1}"),
        "r",
        ["admits env(s) qa"],
    ),
    (one_route("{env: prod}", "{template: 'dev.{source}.a.b-v1'}"), "r", ["admits env(s) prod"]),
    (one_route("{all: [{env: dev}, {env: prod}]}", "{topic: dev.t.a.b-v1}"), "r", ["can never be true"]),
    ("routes: []\ncatch_all: prod.refinery.unrouted.all-v1", None, ["catch_all", "every env", "{env}"]),
    ("routes: []\ncatch_all: '{env}.x'", None, ["catch_all", "dot-separated"]),
    ("routes: []\ncatch_all: [a]", None, ["catch_all", "template string or null"]),
]


@pytest.mark.parametrize(
    ("text", "route", "needles"), INVALID, ids=[f"invalid{i}" for i in range(len(INVALID))]
)
def test_validation_errors_name_the_problem(text: str, route: str | None, needles: list[str]) -> None:
    with pytest.raises(RuleError) as info:
        load_route_set(text)
    message = str(info.value)
    assert isinstance(info.value, InvalidInputError)
    assert info.value.route == route
    if route:
        assert message.startswith(f"route {route!r}: ")
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_duplicate_route_names() -> None:
    text = "routes:\n" + "".join(
        f"  - {{name: same, match: {{}}, to: {{template: '{{env}}.a.b.c-v{i}'}}}}\n" for i in (1, 2)
    )
    with pytest.raises(RuleError, match="duplicate route name 'same'"):
        load_route_set(text)


def test_env_rule_accepts_pinned_and_declared_envs() -> None:
    pinned = one_route("{env: dev, category: crash_report}", "{topic: dev.t.all.crash-v1}")
    assert load_route_set(pinned).routes[0].destination == FixedTopic("dev.t.all.crash-v1")
    declared = "envs: [prod, dev]\n" + one_route("{not: {env: prod}}", "{topic: dev.t.a.b-v1}")
    assert load_route_set(declared).routes[0].name == "r"
    glob = "envs: [prod, dev]\n" + one_route("{env: {glob: 'd*'}}", "{topic: dev.t.a.b-v1}")
    assert load_route_set(glob).routes[0].name == "r"


def test_deeply_nested_and_aliased_input_is_refused_cleanly() -> None:
    deep = "{not: " * 40 + "{env: prod}" + "}" * 40
    with pytest.raises(RuleError, match="nested more than"):
        load_route_set(one_route(deep))
    # each element doubles the previous one through YAML aliases: 2**24 nodes if expanded naively
    chain = ["&a0 {env: prod}"] + [f"&a{i} {{all: [*a{i - 1}, *a{i - 1}]}}" for i in range(1, 25)]
    with pytest.raises(RuleError, match="more than 100000 conditions"):
        load_route_set(one_route("{all: [" + ", ".join(chain) + "]}"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read route file"):
        load_route_file(tmp_path / "missing.yaml")


yamlish = st.recursive(
    st.one_of(
        st.sampled_from(
            ["env", "title", "all", "any", "not", "glob", "in", "1234", "prod", "{env}", "*", "[", ""]
        ),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(inner, inner), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200), yamlish, yamlish.map(lambda m: f"routes: [{{name: r, match: {m}, to: {m}}}]")
    )
)
def test_loading_arbitrary_text_raises_only_rule_error(text: str) -> None:
    try:
        rs = load_route_set(text)
    except RuleError:
        return
    assert load_route_set(dump_route_set(rs)) == rs

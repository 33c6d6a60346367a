"""Compiled routing: predicates on real headers, fan-out, catch-all, template errors, the index and cache."""

from __future__ import annotations

import random
from fnmatch import fnmatchcase

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.headers import ENV, TITLE, VERSION
from refinery.routing.router import Destination, Router, RoutingError, compile_router
from refinery.routing.rules import (
    AllOf,
    AnyOf,
    Equals,
    FixedTopic,
    Glob,
    Not,
    OneOf,
    Predicate,
    RouteSet,
    header_for,
    load_route_set,
)
from refinery.routing.rules.templates import render
from tests.refinery.routing.route_samples import record_headers

TEMPLATE = "{template: '{env}.{source}.{title}.{category}-v{version}'}"


def router_for(yaml_routes: str, **top: str) -> Router:
    extra = "".join(f"{k}: {v}\n" for k, v in top.items())
    return compile_router(load_route_set(extra + "routes:\n" + yaml_routes))


def single(match: str, to: str = TEMPLATE) -> Router:
    return router_for(f"  - {{name: r, match: {match}, to: {to}}}\n")


def matches(router: Router, **fields: object) -> bool:
    return bool(router.route(record_headers(**fields)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ("{env: prod}", {"env": "prod"}, {"env": "dev"}),
        ("{title: [3456, 4567]}", {"title": "4567"}, {"title": "1234"}),
        ("{title: {glob: '2*'}}", {"title": "2345"}, {"title": "1234"}),
        ("{title: {glob: '?3[4-5]?'}}", {"title": "2345"}, {"title": "2365"}),
        ("{category: {glob: '*_*'}}", {"category": "crash_report"}, {"category": "purchase"}),
        ("{env: {not: prod}}", {"env": "dev"}, {"env": "prod"}),
        ("{not: {title: {in: [1234, 2345]}}}", {"title": "3456"}, {"title": "2345"}),
        (
            "{all: [{env: prod}, {title: 1234}]}",
            {"env": "prod", "title": "1234"},
            {"env": "prod", "title": "2345"},
        ),
        (
            "{any: [{title: 1234}, {category: purchase}]}",
            {"category": "purchase", "title": "9"},
            {"title": "9"},
        ),
        ("{attribute.platform: pc}", {"platform": "pc"}, {"platform": "ps"}),
        ("{attribute.platform: {glob: 'p*'}}", {"platform": "ps"}, {"platform": None}),
        ("{attribute.region: eu}", {"region": "eu"}, {}),
        ("{version: 2}", {"version": 2}, {"version": 1}),
        ("{schema_id: 42}", {"schema_id": 42}, {"schema_id": 4}),
        ("{format: protobuf}", {"category": "purchase"}, {"category": "match_started"}),
        ("{}", {}, None),
    ],
)
def test_each_predicate_kind_routes(
    match: str, hit: dict[str, object], miss: dict[str, object] | None
) -> None:
    router = single(match)
    assert matches(router, **hit)
    if miss is not None:
        assert not matches(router, **miss)


def test_template_fills_from_headers() -> None:
    router = single("{}", "{template: '{env}.{attribute.platform}.{title}.x_{category}-v{version}'}")
    [dest] = router.route(
        record_headers(env="dev", title="77", category="purchase", version=3, platform="ps")
    )
    assert dest == Destination("r", "dev.ps.77.x_purchase-v3", False)


def test_fan_out_goes_to_each_distinct_topic_once() -> None:
    router = router_for(
        "  - {name: a, match: {env: prod}, to: {topic: prod.t.all.x-v1}}\n"
        "  - {name: b, match: {title: 1234}, to: {template: '{env}.t.all.x-v1'}, dedup: true}\n"
        "  - {name: c, match: {}, to: {template: '{env}.t.{title}.y-v1'}}\n"
    )
    assert router.route(record_headers(env="prod", title="1234")) == [
        Destination("a", "prod.t.all.x-v1", True),  # b named the same topic and asked for dedup
        Destination("c", "prod.t.1234.y-v1", False),
    ]
    assert router.route(record_headers(env="dev", title="1234")) == [
        Destination("b", "dev.t.all.x-v1", True),
        Destination("c", "dev.t.1234.y-v1", False),
    ]


def test_unmatched_is_empty_without_catch_all_and_catch_all_otherwise() -> None:
    plain = single("{env: qa}")
    assert plain.route(record_headers(env="prod")) == []
    with_catch_all = router_for(
        "  - {name: r, match: {env: qa}, to: {topic: qa.t.a.b-v1}}\n",
        catch_all="'{env}.refinery.unrouted.all-v1'",
    )
    assert with_catch_all.route(record_headers(env="prod")) == [
        Destination("catch_all", "prod.refinery.unrouted.all-v1", False)
    ]
    assert with_catch_all.route(record_headers(env="qa")) == [Destination("r", "qa.t.a.b-v1", False)]


def test_catch_all_without_env_header_is_a_routing_error() -> None:
    router = router_for("  []\n", catch_all="'{env}.refinery.unrouted.all-v1'")
    with pytest.raises(RoutingError) as info:
        router.route({TITLE: b"1234"})
    assert (info.value.route, info.value.reason, info.value.header) == ("catch_all", "missing_header", ENV)


def test_fixed_env_destinations_only_take_records_of_that_env() -> None:
    router = router_for(
        "  - {name: r, match: {not: {env: prod}}, to: {topic: dev.t.all.crash-v1}}\n", envs="[prod, dev]"
    )
    assert router.route(record_headers(env="dev")) == [Destination("r", "dev.t.all.crash-v1", False)]
    assert router.route(record_headers(env="qa")) == []  # an env the set does not know
    assert router.route({TITLE: b"1234"}) == []  # no env header at all


@pytest.mark.parametrize(
    ("headers", "reason", "header", "needle"),
    [
        ({ENV: b"prod"}, "missing_header", "ce_title", "needs header 'ce_title'"),
        ({ENV: b"prod", TITLE: b"a.b"}, "invalid_topic", "ce_title", "cannot be part of a topic name"),
        ({ENV: b"prod", TITLE: b""}, "invalid_topic", "ce_title", "cannot be part of a topic name"),
        ({ENV: b"prod", TITLE: b"a b"}, "invalid_topic", None, "not a valid topic name"),
        ({ENV: b"prod", TITLE: b"ingest"}, "ingest_topic", "ce_title", "would loop"),
        ({ENV: b"prod", TITLE: b"\xff"}, "bad_header_value", "ce_title", "not valid UTF-8"),
        ({ENV: b"prod", TITLE: b"t" * 250}, "invalid_topic", None, "at most 249"),
    ],
)
def test_bad_header_values_raise_routing_error(
    headers: dict[str, bytes], reason: str, header: str | None, needle: str
) -> None:
    router = router_for(
        "  - {name: fixed, match: {env: prod}, to: {topic: prod.t.all.x-v1}}\n"
        "  - {name: by-title, match: {env: prod}, to: {template: '{env}.t.{title}.x-v1'}}\n"
    )
    for _ in range(2):  # the second call is answered from the decision cache, with a fresh exception
        with pytest.raises(RoutingError) as info:
            router.route(headers)
        err = info.value
        assert (err.route, err.reason, err.header) == ("by-title", reason, header)
        assert str(err).startswith("route 'by-title': ") and needle in str(err)
        assert err.partial == (Destination("fixed", "prod.t.all.x-v1", False),)


def test_version_in_template_must_be_a_valid_version() -> None:
    router = single("{}")
    with pytest.raises(RoutingError, match="not a valid topic name") as info:
        router.route({**record_headers(), VERSION: b"01"})
    assert info.value.reason == "invalid_topic"


def test_str_and_bytearray_header_values_route_like_bytes() -> None:
    router = single("{title: {glob: '12*'}}")
    expected = router.route(record_headers(title="1234"))
    as_str = {k: v.decode() for k, v in record_headers(title="1234").items()}
    as_bytearray = {k: bytearray(v) for k, v in record_headers(title="1234").items()}
    assert router.route(as_str) == router.route(as_bytearray) == expected != []  # type: ignore[arg-type]
    with pytest.raises(RoutingError, match="expected bytes"):
        router.route({**record_headers(), TITLE: 12})  # type: ignore[dict-item]


def test_small_cache_still_routes_correctly() -> None:
    router = compile_router(single("{}").route_set, cache_size=2)
    for title in ["1", "2", "3", "1", "4", "2"] * 3:
        assert [d.topic for d in router.route(record_headers(title=title))] == [
            f"prod.telemetry.{title}.match_started-v1"
        ]


# ---- the index and cache agree with a direct evaluation of the rules ---------------------------------


def holds(p: Predicate, h: dict[str, bytes]) -> bool:
    if isinstance(p, Equals | OneOf | Glob):
        raw = h.get(header_for(p.field))
        if raw is None:
            return False
        if isinstance(p, Equals):
            return raw.decode() == p.value
        if isinstance(p, OneOf):
            return raw.decode() in p.values
        return fnmatchcase(raw.decode(), p.pattern)
    if isinstance(p, Not):
        return not holds(p.item, h)
    results = [holds(item, h) for item in p.items]
    return all(results) if isinstance(p, AllOf) else any(results) if isinstance(p, AnyOf) else False


def expected_topics(rs: RouteSet, h: dict[str, bytes]) -> list[str]:
    out: list[str] = []
    for route in rs.routes:
        if not holds(route.match, h):
            continue
        dest = route.destination
        if isinstance(dest, FixedTopic):
            if dest.topic.split(".")[0] != h[ENV].decode():
                continue
            topic = dest.topic
        else:
            values = {f: h[header_for(f)].decode() for f in dest.fields}
            topic = render(dest, values)
        if topic not in out:
            out.append(topic)
    return out


def scale_route_set(rng: random.Random) -> tuple[RouteSet, list[str]]:
    """The workload's scale variant: route 1's shape for 1,000 (env, title) pairs over 500 titles."""
    titles = [str(1000 + i) for i in range(500)]
    pairs = rng.sample([(env, t) for env in ("prod", "dev") for t in titles], 1000)
    text = "routes:\n" + "".join(
        f"  - {{name: r{i}, match: {{env: {env}, title: '{t}'}}, to: {TEMPLATE}}}\n"
        for i, (env, t) in enumerate(pairs)
    )
    text += "  - {name: dev-all, match: {env: dev}, to: {topic: dev.all.all.all-v1}}\n"
    return load_route_set(text), titles


def test_indexed_routing_agrees_with_direct_evaluation_at_scale() -> None:
    rng = random.Random(7)
    rs, titles = scale_route_set(rng)
    router = compile_router(rs)
    for _ in range(1500):
        h = record_headers(
            env=rng.choice(["prod", "dev"]),
            title=rng.choice([*titles[:50], "9999"]),
            category=rng.choice(["match_started", "player_killed", "purchase"]),
            version=rng.choice([1, 2]),
        )
        assert [d.topic for d in router.route(h)] == expected_topics(rs, h)


header_values = st.one_of(
    st.binary(max_size=12), st.sampled_from([b"prod", b"dev", b"1234", b"2", b"pc", b"ingest"])
)
header_names = st.sampled_from(
    ["ce_env", "ce_source", "ce_title", "ce_type", "ce_version", "attr.platform", "x"]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(header_names, header_values, max_size=7))
def test_route_on_arbitrary_headers_raises_only_routing_error(headers: dict[str, bytes]) -> None:
    rs = load_route_set(
        "envs: [prod, dev]\nroutes:\n"
        f"  - {{name: a, match: {{title: {{glob: '1*'}}}}, to: {TEMPLATE}}}\n"
        "  - {name: b, match: {not: {env: prod}}, to: {topic: dev.t.all.x-v1}}\n"
        "  - name: c\n"
        "    match: {attribute.platform: pc}\n"
        "    to: {template: '{env}.p.{attributes.platform}.k-v2'}\n"
        "catch_all: '{env}.refinery.unrouted.all-v1'\n"
    )
    router = compile_router(rs)
    try:
        destinations = router.route(headers)
    except RoutingError as exc:
        assert exc.reason in ("missing_header", "invalid_topic", "ingest_topic", "bad_header_value")
        return
    for d in destinations:
        assert d.topic.split(".")[0] == headers[ENV].decode()

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import TopicNameError
from common.topics import (
    TopicName,
    format_topic,
    ingest_topic,
    is_ingest_topic,
    parse_topic,
    validate_kafka_topic,
)

component = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=40
)


@given(env=component, source=component, title=component, category=component, version=st.integers(1, 10**6))
def test_parse_inverts_format(env: str, source: str, title: str, category: str, version: int) -> None:
    name = format_topic(env, source, title, category, version)
    assert parse_topic(name) == TopicName(env, source, title, category, version)
    assert str(parse_topic(name)) == name


@given(st.text(max_size=300))
def test_parse_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parsed = parse_topic(text)
    except TopicNameError as exc:
        assert exc.part in {"topic", "env", "source", "title", "category", "version"}
    else:
        assert str(parsed) == text


def test_format_example() -> None:
    assert format_topic("prod", "telemetry", "mw", "match_started", 1) == "prod.telemetry.mw.match_started-v1"


def test_category_may_contain_dash_v() -> None:
    name = format_topic("prod", "telemetry", "mw", "foo-v3", 2)
    assert name == "prod.telemetry.mw.foo-v3-v2"
    assert parse_topic(name).category == "foo-v3"


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (("", "telemetry", "mw", "c", 1), "env"),
        (("prod", "tele.metry", "mw", "c", 1), "source"),
        (("prod", "telemetry", "m w", "c", 1), "title"),
        (("prod", "telemetry", "mw", "c/d", 1), "category"),
        (("prod", "telemetry", "mw", "c", 0), "version"),
        (("prod", "telemetry", "mw", "c", -3), "version"),
        (("prod", "telemetry", "mw", "c", True), "version"),
        (("prod", "telemetry", "mw", "x" * 250, 1), "topic"),
    ],
)
def test_format_rejects_bad_parts_naming_them(args: tuple, part: str) -> None:
    with pytest.raises(TopicNameError) as info:
        format_topic(*args)
    assert info.value.part == part
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("prod.telemetry.mw.match_started", "version"),
        ("prod.telemetry.mw.match_started-v01", "version"),
        ("prod.telemetry.mw.match_started-vx", "version"),
        ("prod.telemetry.match_started-v1", "topic"),
        ("prod..mw.match_started-v1", "source"),
        ("prod.telemetry.mw.-v1", "category"),
        ("prod.telemetry.mw.a b-v1", "topic"),
        ("..", "topic"),
        ("", "topic"),
    ],
)
def test_parse_rejects_with_part(name: str, part: str) -> None:
    with pytest.raises(TopicNameError) as info:
        parse_topic(name)
    assert info.value.part == part, str(info.value)


def test_kafka_length_limit() -> None:
    assert validate_kafka_topic("a" * 249) == "a" * 249
    with pytest.raises(TopicNameError, match="at most 249"):
        validate_kafka_topic("a" * 250)


def test_ingest_topics() -> None:
    name = ingest_topic("prod", "telemetry")
    assert name == "prod.telemetry.ingest.all-v1"
    assert is_ingest_topic(name)
    assert parse_topic(name).is_ingest
    assert not is_ingest_topic("prod.telemetry.1234.all-v1")
